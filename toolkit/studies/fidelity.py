"""`toolkit fidelity`: does the proxy tell the truth? The same recipes, against the same references, under the same
context, on a proxy and on the full data; each recipe's two verdicts side by side, whether they agree, how well the
proxy ranks the effects, and what each side cost.

Both sides are ordinary sweeps: every run lands in the results table, and a run already there is reused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import judgment
from ..atomic import check_folder, write_atomic
from ..data.datasets import canonical_name
from ..errors import ToolkitError
from ..judgment.summary import check_margin, judged
from ..report.compare import write_comparison
from ..sweep.options import Options
from ..sweep.auto import sweep
from ..sweep.plan import Plan

AGREE, CONFLICT, PROXY_ONLY, FULL_ONLY, UNDECIDED = "agree", "conflict", "proxy only", "full only", "undecided"
COLOURS = {AGREE: "tab:green", CONFLICT: "tab:red", PROXY_ONLY: "tab:orange", FULL_ONLY: "tab:purple",
           UNDECIDED: "tab:gray"}
RESAMPLES = 2000   # bootstrap resamples of the rank correlation (seed 0)
TAU_INTERVAL_FROM = 8   # recipes from which the rank correlation's interval resamples them (fewer: no interval)


def agreement(proxy_call: str | None, full_call: str | None) -> str:
    """agree: the same decided call (toolkit/judgment/ `call`: better within the margin counts as better);
    conflict: opposite calls, or one equivalent and the other better or worse; proxy only / full only: decided on
    one side; else undecided."""
    p, f = proxy_call, full_call
    if p and f:
        return AGREE if p == f else CONFLICT
    return PROXY_ONLY if p else FULL_ONLY if f else UNDECIDED


def rank_correlation(proxy: dict, full: dict, seed: int = 0) -> tuple[float, float, float]:
    """Kendall's tau between the recipes' mean paired differences on the two sides, with a percentile bootstrap
    interval that resamples the recipes and, within each, its pairs on each side: the recipes are the larger source
    of its uncertainty (an interval over seeds alone covered a true tau of 0.67 only 79% of the time at 4 recipes).
    With fewer than TAU_INTERVAL_FROM recipes there are too few to resample: no interval. `proxy`, `full`:
    {recipe: differences}. (The two-level resampling is a short loop: scipy's bootstrap resamples one level.)"""
    from scipy import stats as sps
    names = [n for n in proxy if n in full and len(proxy[n]) and len(full[n])]
    if len(names) < 3:
        return float("nan"), float("nan"), float("nan")
    p = [np.asarray(proxy[n], float) for n in names]
    f = [np.asarray(full[n], float) for n in names]
    point = sps.kendalltau([x.mean() for x in p], [x.mean() for x in f]).statistic
    if len(names) < TAU_INTERVAL_FROM:
        return float(point), float("nan"), float("nan")
    rng, taus = np.random.default_rng(seed), []
    for _ in range(RESAMPLES):
        pick = rng.integers(0, len(names), len(names))
        a = [rng.choice(p[i], len(p[i])).mean() for i in pick]
        b = [rng.choice(f[i], len(f[i])).mean() for i in pick]
        taus.append(sps.kendalltau(a, b).statistic)
    low, high = np.nanquantile(taus, [0.025, 0.975])
    return float(point), float(low), float(high)


@dataclass
class Fidelity:
    """One line per recipe and proxy (`table`), the summary over recipes of each proxy (`lines`), what the report
    cannot vouch for (`notes`), which proxy to use (`choice`), and the files written."""
    table: pd.DataFrame
    lines: list[str]
    notes: list[str]
    choice: pd.DataFrame = field(default_factory=pd.DataFrame)
    written: list[Path] = field(default_factory=list)

    def markdown(self) -> str:
        cols = ["recipe", "vs", "proxy Δ pts", "proxy Δ 95% CI", "proxy verdict", "full Δ pts", "full Δ 95% CI",
                "full verdict", "agreement"]
        several = self.table["proxy"].nunique() > 1
        shown = self.table[(["proxy"] if several else []) + cols]
        return "\n\n".join([*(["\n".join(f"- {n}" for n in self.notes)] if self.notes else []),
                            shown.to_markdown(index=False, disable_numparse=True),
                            "\n".join(f"- {line}" for line in self.lines),
                            "Which proxy should I use?\n\n" + self.choice.to_markdown(index=False, disable_numparse=True)
                            + "\n\n" + "\n".join(f"- {line}" for line in CHOICE_NOTES)])

    def _repr_markdown_(self) -> str:
        return self.markdown()


CHOICE_NOTES = [
    "Time to a verdict: the pairs a fixed number of seeds needs to find a true difference of that size with 80% "
    "power, given the spread of the paired differences measured here, x 2 runs x the seconds per run (as `toolkit "
    "noise` prices a question).",
    "Pick the cheapest proxy that agreed with the full data on the recipes you care about, and had no conflict. "
    "Agreement on a handful of recipes is evidence about those recipes, not a guarantee for the next one.",
]


def _differences(rows: pd.DataFrame) -> dict:
    """{recipe name: paired differences (points) with its reference, by seed} from a sweep's rows."""
    out = {}
    acc = rows.assign(accuracy=pd.to_numeric(rows["accuracy"], errors="coerce"))
    for label, part in acc[acc["role"] == "recipe"].groupby("name"):
        ref_id = part["reference_config_id"].iloc[0]
        ref = acc[acc["config_id"] == ref_id].groupby("seed")["accuracy"].mean()
        mine = part.groupby("seed")["accuracy"].mean()
        common = sorted(set(mine.index) & set(ref.index))
        out[label] = (mine[common].values - ref[common].values) * 100
    return out


def _side(names, context: dict, seeds, options: Options, out: Path, margin: float, max_seeds, log):
    """One side's sweep and its comparison (written to OUT.md/.csv/.png)."""
    done, design = sweep(Plan.of(names, context, limit=options.grid_max), seeds, max_seeds, margin, options, log)
    rows, summary = judged(done.involved, done.table, None, margin, design)
    return done, summary, write_comparison(rows, summary, out)


def _notes(proxy: str, full: str, context: dict) -> list[str]:
    """What the report cannot vouch for: classes that differ, a proxy not made from the full data, a proxy whose
    images are smaller than the recipe's item resize. Classes the full data lacks are refused."""
    from ..data.datasets import load, source_side
    from ..recipes.recipe import Recipe
    p, f = load(proxy), load(full)
    notes = []
    extra = sorted(set(p.classes) - set(f.classes))
    if extra:
        raise ToolkitError(f"The proxy {proxy} has classes the full data {full} lacks ({', '.join(extra[:5])}): its "
                           f"verdicts are about other data. Pass a proxy of {full}.")
    if len(p.classes) < len(f.classes):
        notes.append(f"The proxy has {len(p.classes)} of the full data's {len(f.classes)} classes: each side is "
                     f"judged on its own classes.")
    made_from = (p.describe().get("proxy_of") or {})
    if made_from.get("fingerprint") != f.fingerprint:
        source = made_from.get("source")
        same = source and (source == full or Path(source).resolve() == Path(full).resolve())
        notes.append(f"The proxy {proxy} is not recorded as made from {full} as it is now: " + (
            "its proxy.json names that source, but the source's files have changed since (another fingerprint)"
            if same else f"its proxy.json names {source or 'nothing'}") + "; the report cannot vouch for how the two "
            "relate.")
    size = int(context["size"])
    presize = float(context.get("presize", Recipe.presize))
    need = round(size * presize)
    p_side, f_side = source_side(p), source_side(f)
    if p_side < min(need, f_side):   # the full data serves more of the item resize than the proxy
        notes.append(f"The proxy's images are {p_side} px on their shorter side, smaller than the item resize "
                     f"(presize x size = {need} px) the full data's {f_side} px serve: the two sides do not see "
                     f"the same input.")
    return notes


def fidelity(names, proxy, full: str, context: dict, seeds: int | str = 1, options: Options = Options(),
             out=None, margin: float | None = None, max_seeds: int | None = None, log=print) -> Fidelity:
    """Run (or reuse) `names` and their references on each proxy and on `full` under `context` (which must give the
    size), and judge whether each proxy's verdicts hold on the full data. `proxy`: a dataset, a description such as
    `per_class=100,select=easy` (toolkit/studies/proxies.py builds it once from `full`), or a list of these. Written to
    OUT.md, .csv and .png (default RESULTS/fidelity), each side's own comparison to OUT-full.* and OUT-<proxy>.*."""
    from ..recipes.recipe import Recipe
    from . import proxies as rules
    if not context.get("size"):
        raise ToolkitError("toolkit fidelity needs --size: the proxy and the full data have different default "
                           "sizes, and both sides must train at the same one.")
    margin = check_margin(margin)
    out = Path(out or check_folder(options.results, "--results") / "fidelity")
    check_folder(out.parent, "--out")
    given = [proxy] if isinstance(proxy, (str, Path)) else list(proxy)
    if not given:
        raise ToolkitError("toolkit fidelity needs at least one --proxy.")
    presize = float(context.get("presize", Recipe.presize))
    folders = {}
    for p in given:
        if not rules.is_description(p) and canonical_name(p) == canonical_name(full):
            raise ToolkitError(f"--proxy {p} is the full data itself (--full {full}): a proxy equal to the full "
                               f"data measures nothing about how well a proxy tells the truth. Give a smaller copy "
                               f"(toolkit data proxy), or a rule such as --proxy per_class=100.")
    for p in given:
        folder = (rules.build(p, full, int(context["size"]), presize, log, options.progress, context)
                  if rules.is_description(p) else str(p))
        folders[_label(p, folders)] = (str(p), folder)
    notes = {label: _notes(folder, full, context) for label, (_, folder) in folders.items()}
    log(f"fidelity: the full side, {full}")
    full_side = _side(names, {**context, "dataset": full}, seeds, options, out.with_name(f"{out.name}-full"), margin,
                      max_seeds, log)
    each = {}
    for label, (_, folder) in folders.items():
        log(f"fidelity: the proxy {label}, {folder}")
        side = _side(names, {**context, "dataset": folder}, seeds, options, out.with_name(f"{out.name}-{label}"),
                     margin, max_seeds, log)
        each[label] = _judge(side, full_side, label, folder)
    several = len(each) > 1
    table = pd.concat([e["table"] for e in each.values()], ignore_index=True)
    lines = [f"{label}: {line}" if several else line for label, e in each.items() for line in e["lines"]]
    shown_notes = [f"{label}: {n}" if several else n for label, ns in notes.items() for n in ns]
    full_secs = _seconds(full_side[0].involved)
    choice = rules.choice(each, float(full_secs.median()), _pair_sd(_differences(full_side[0].involved)))
    result = Fidelity(table, lines, shown_notes, choice)
    result.written = _write(result, out, {**context, "proxy": [f for _, f in folders.values()], "full": full})
    return result


def tau_line(tau: float, low: float, high: float, n: int) -> str:
    """The report's line on the rank correlation of `n` recipes' effects (none below 3 recipes)."""
    if not np.isfinite(tau):
        return f"Rank correlation of the effects: none (Kendall's tau needs at least 3 recipes; {n} here)"
    return (f"Rank correlation of the effects (Kendall's tau over {n} recipes): {tau:+.2f}"
            + (f", 95% bootstrap interval over recipes and seeds [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else
               f" (no interval: {n} recipes are too few to resample, and an interval over the seeds alone would claim "
               f"more than it knows; from {TAU_INTERVAL_FROM} recipes one is shown)"))


def _label(given, taken: dict) -> str:
    """A proxy's short name in the report: its folder's (a CSV's folder), or its description; unique."""
    from . import proxies as rules
    p = Path(str(given))
    name = str(given) if rules.is_description(str(given)) else (p.parent.name if p.suffix.lower() == ".csv" else p.name)
    name = "".join(c if c.isalnum() or c in "._=,+-" else "_" for c in name) or "proxy"
    label, k = name, 2
    while label in taken:
        label, k = f"{name}-{k}", k + 1
    return label


def _seconds(rows: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(rows["wall_seconds"], errors="coerce")


def _pair_sd(diffs: dict) -> float:
    """The spread of paired differences (points), pooled over recipes: what a paired comparison sees through."""
    parts = [np.asarray(d, float) for d in diffs.values() if len(d) >= 2]
    dof = sum(len(d) - 1 for d in parts)
    return float(np.sqrt(sum(((d - d.mean()) ** 2).sum() for d in parts) / dof)) if dof else float("nan")


def _judge(proxy_side, full_side, label: str, folder: str) -> dict:
    """One proxy against the full data: its rows, its summary lines, and what the choice of a proxy needs."""
    (pdone, psum, _), (fdone, fsum, _) = proxy_side, full_side
    table = _side_by_side(psum, fsum, label)
    pdiff, fdiff = _differences(pdone.involved), _differences(fdone.involved)
    tau, low, high = rank_correlation({r: pdiff.get(r, []) for r in table["recipe"]},
                                      {r: fdiff.get(r, []) for r in table["recipe"]})
    seconds = {"proxy": _seconds(pdone.involved), "full": _seconds(fdone.involved)}
    tau_text = (f"{tau:+.2f}" + (f" [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else "")
                if np.isfinite(tau) else "")
    rule, n_train = _made_by(folder)
    return {"table": table, "lines": _said(table, tau, low, high, seconds), "rule": rule, "n_train": n_train,
            "n_train_full": int(pd.to_numeric(fdone.involved["n_train"], errors="coerce").max()),
            "seconds": float(seconds["proxy"].median()), "pair_sd": _pair_sd(pdiff), "tau": tau_text}


def _side_by_side(psum: pd.DataFrame, fsum: pd.DataFrame, label: str) -> pd.DataFrame:
    """Each recipe's verdict on the proxy beside its verdict on the full data, and their agreement (by name: a
    label carries the side's own context, such as a CSV's columns)."""
    psum, fsum = psum.drop_duplicates("name").set_index("name"), fsum.drop_duplicates("name").set_index("name")
    rows = []
    for name in psum.index:
        p = psum.loc[name]
        if name not in fsum.index or str(p.get("reference_name", "")) in ("", "nan"):
            continue
        f = fsum.loc[name]
        row = {"proxy": label, "recipe": name, "vs": p["reference_name"]}
        for side, s in (("proxy", p), ("full", f)):
            row[f"{side} Δ pts"] = f"{s['delta_mean'] * 100:+.1f}" if pd.notna(s.get("delta_mean")) else ""
            row[f"{side} Δ 95% CI"] = (f"[{s['delta_low'] * 100:+.1f}, {s['delta_high'] * 100:+.1f}]"
                                       if pd.notna(s.get("delta_low")) else "")
            row[f"{side} verdict"] = s["delta_verdict"]
            row[f"{side} pairs"] = s.get("delta_pairs")
            row[f"{side} call"] = judgment.call(s)
            row[f"{side} low"], row[f"{side} high"] = 100 * s.get("delta_low"), 100 * s.get("delta_high")
        row["agreement"] = agreement(row["proxy call"], row["full call"])
        rows.append(row)
    if not rows:
        raise ToolkitError("No recipe was compared with its reference on both sides: give recipes that have a "
                           "reference (not only `baseline`).")
    return pd.DataFrame(rows)


def _said(table: pd.DataFrame, tau: float, low: float, high: float, seconds: dict) -> list[str]:
    """What the side-by-side says in words: conflicts, the rank correlation, confirmed verdicts, cost, how little a
    handful of recipes proves."""
    decided_proxy = table[table["proxy call"].notna()]
    conflicts = table[table["agreement"] == CONFLICT]["recipe"].tolist()
    lines = ([f"**Conflict:** {', '.join(conflicts)}: the proxy and the full data decide opposite ways."]
             if conflicts else [])
    return lines + [
        tau_line(tau, low, high, len(table)),
        f"Decided proxy verdicts that the full data confirms: {(decided_proxy['agreement'] == AGREE).sum()} of "
        f"{len(decided_proxy)}",
        f"Cost: the proxy side {seconds['proxy'].median():.0f} s per run ({seconds['proxy'].sum() / 60:.1f} min in "
        f"all, {len(seconds['proxy'])} runs); the full side {seconds['full'].median():.0f} s per run "
        f"({seconds['full'].sum() / 60:.1f} min, {len(seconds['full'])} runs); per run the proxy costs "
        f"{seconds['proxy'].median() / seconds['full'].median():.2f} of the full data's",
        f"A handful of recipes proves little about agreement in general: {len(table)} recipe(s) here, so one "
        f"disagreement more or less moves the share by {100 / max(1, len(table)):.0f} points.",
    ]


def _made_by(folder: str) -> tuple[str, int]:
    """How the proxy in `folder` was made (its rule, from its proxy.json), and its training images."""
    from ..data.datasets import load
    ds = load(folder)
    info = ds.describe().get("proxy_of") or {}
    rule = (", ".join(f"{k}={info[k]}" for k in ("per_class", "size", "select") if k in info)
            + (f", classes={len(info['classes'])} of {info.get('of_classes')}"
               if info.get("classes") and len(info["classes"]) < (info.get("of_classes") or 0) else "")
            if info else "not recorded")
    return rule, ds.n_train


def _write(result: Fidelity, out: Path, about: dict) -> list[Path]:
    md = write_atomic(out.with_suffix(".md"), lambda p: Path(p).write_text(
        f"Fidelity: {json.dumps(about)}\n\n{result.markdown()}\n"))
    csv = write_atomic(out.with_suffix(".csv"), lambda p: result.table.to_csv(p, index=False))
    png = write_atomic(out.with_suffix(".png"), lambda p: _figure(result.table, p))
    return [md, csv, png]


def _figure(table: pd.DataFrame, path) -> None:
    """Per proxy, one panel: proxy Δ against full Δ, each with its interval, the diagonal, the points coloured by
    agreement (one scale for all panels)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def num(s):
        return pd.to_numeric(s, errors="coerce").to_numpy(float)

    def bounds(part, side):
        return num(part[f"{side} low"]), num(part[f"{side} high"])
    proxies = list(dict.fromkeys(table["proxy"]))
    every = np.r_[[1.0], *[num(table[c]) for c in ("proxy Δ pts", "full Δ pts")],
                  *[b for side in ("proxy", "full") for b in bounds(table, side)]]
    lim = np.nanmax(np.abs(every)) * 1.15
    fig, axes = plt.subplots(1, len(proxies), figsize=(6.0 * len(proxies), 6), squeeze=False)
    for ax, proxy in zip(axes[0], proxies):
        part = table[table["proxy"] == proxy].reset_index(drop=True)
        x, y = num(part["proxy Δ pts"]), num(part["full Δ pts"])
        (xl, xh), (yl, yh) = bounds(part, "proxy"), bounds(part, "full")
        ax.plot([-lim, lim], [-lim, lim], color="0.6", lw=1, ls="--", label="proxy = full")
        ax.axhline(0, color="0.85", lw=1)
        ax.axvline(0, color="0.85", lw=1)
        for i, r in part.iterrows():
            xerr = [[x[i] - xl[i]], [xh[i] - x[i]]] if np.isfinite(xl[i]) else None
            yerr = [[y[i] - yl[i]], [yh[i] - y[i]]] if np.isfinite(yl[i]) else None
            ax.errorbar(x[i], y[i], xerr=xerr, yerr=yerr, fmt="o", color=COLOURS[r["agreement"]], capsize=3)
            ax.annotate(f"{r['recipe']} ({r['agreement']})", (x[i], y[i]), textcoords="offset points",
                        xytext=(6, 6 if i % 2 == 0 else -12), fontsize=8)   # neighbours apart
        for name, c in COLOURS.items():
            ax.scatter([], [], color=c, label=name)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel=f"Δ accuracy vs reference on {proxy} (points, 95% CI)",
               ylabel="Δ accuracy vs reference on the full data (points, 95% CI)",
               title=f"Does {proxy} tell the truth?")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
