"""Comparison tables, from the results table: read records, nothing else.

Every row says what it means (toolkit/records/schema.py): its label and label settings, its role, and its
reference's name, label and config_id. One summary line per (name, config_id): runs are pooled as seeds only when
both are equal. Settings that every row of a table shares are said once, above it, rather than in every label.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import judgment, stats
from ..errors import ToolkitError
from ..recipes.recipe import label
from ..recipes.evaluations import BY_KEY, KEYS
from ..records.artifacts import MODEL

GROUP = ["name", "config_id"]
SHOWN = ["dataset", "size", "epochs", "arch", "loader", "budget", "precision", "channels_last"]  # said once above
# the table, or as columns
SELF = "(reference)"
# each paired difference: its pairs, mean, spread of the per-seed differences, the interval of the question asked
# (low, high) and the seeds-only one ("on these very images"), the verdict in words and as a value (direction,
# within, decided, limited: toolkit/judgment.py's Verdict), pairs needed, p, wins by seed, and what it rests on
_STATS = ["pairs", "mean", "std", "low", "high", "method", "seeds_low", "seeds_high", "verdict", "direction", "within",
          "decided", "inconclusive", "limited", "reason", "needed", "p", "wins", "basis", "note"]
COLUMNS = ["label", "name", "config_id", "reference", "reference_config_id", "changes", "reference_name",
           "reference_changes", *SHOWN, "seeds", "n",
           "accuracy_mean", "accuracy_std", "accuracy_low", "accuracy_high", "accuracy_method",
           *(f"delta_{k}" for k in _STATS), "eval_seconds",
           # each evaluation besides the plain one (recipes/evaluations.py): its accuracy, its
           # seconds, what it buys over the same model's plain accuracy (gain_) and its difference with the
           # reference (delta_: the reference's same evaluation when it has one, else its plain accuracy)
           *(c for key in KEYS for c in (
               *(f"accuracy_{key}_{k}" for k in ("pairs", "mean", "std", "low", "high", "method")),
               f"{key}_seconds", f"{key}_vs", *(f"gain_{key}_{k}" for k in _STATS),
               *(f"delta_{key}_{k}" for k in _STATS))),
           "epochs_run", "pixels_seen", "train_seconds", "reach_pixels", "reach_seconds", "reached", "threads", "device",
           "wall_seconds", "n_valid", "margin", "question", "design", "family", "delta_p_family", "stopped", "models"]


def summarize(rows: pd.DataFrame, table: pd.DataFrame, margin: float = stats.MARGIN,
              design: stats.Design | None = None, family: str | None = None,
              question: str = judgment.NEW_IMAGES) -> pd.DataFrame:
    """One line per recipe setting: accuracy over seeds (mean, std, 95% interval), and the paired difference with
    its reference (looked up in the whole `table`), judged by toolkit/judgment.py: its 95% interval for `question`
    (by default on new images like these: seeds and validation images as samples, from the runs' predictions), the
    seeds-only interval beside it, a verdict with the margin of equivalence `margin` (points), and for an
    inconclusive row the pairs that would likely settle it; the same for every other evaluation; and the compute it
    spent: pixels and training seconds, and what it took to reach its reference's final accuracy.

    `design`: the rows were gathered by --seeds auto (`stats.Design`): each verdict is the one of its last look,
    at the design's per-look level, and `stopped` says why the row stopped there.

    `family`: "holm" holds the chance of any false better / worse among the rows at 5% (`apply_family`); "none"
    judges each row on its own; None: holm for a grid (a recipe with several variants), else none. Under a design
    the family is the design's (a grid's runs at alpha / rows per row: design/auto.py)."""
    if question not in judgment.QUESTIONS:
        raise ToolkitError(f"--question must be one of {', '.join(judgment.QUESTIONS)} (got {question!r}).")
    if rows.empty:
        return pd.DataFrame()
    curves = epoch_curves(rows)
    lines = []
    for (name, cid), g in rows.groupby(GROUP, sort=False):
        first = g.iloc[0]
        acc = g.groupby("seed")["accuracy"].mean()
        ref_id = first["reference_config_id"]
        refs = table[table["config_id"] == ref_id] if ref_id and ref_id != cid else table.iloc[:0]
        ref_acc = refs.groupby("seed")["accuracy"].mean()
        is_self = ref_id == cid or (refs.empty and (g["role"] == "reference").all())  # here only as a reference
        line = {"label": first["label"], "name": name, "config_id": cid, **{k: first[k] for k in SHOWN},
                **{k: first[k] for k in ("reference", "reference_name", "changes", "reference_changes")},
                "reference_config_id": ref_id,
                "seeds": ",".join(str(int(s)) for s in acc.index), "wall_seconds": g["wall_seconds"].mean(),
                "n_valid": g["n_valid"].max()}
        line.update(_prefixed("accuracy", stats.mean_interval(acc.values)))
        line.update(_compute(g, curves, ref_acc))
        line.update(margin=margin, question=question, design=design.describe() if design else "")
        has_ref = bool(first["reference_name"])
        pair = Pair(_dirs(g), _dirs(refs), _n_valid(g, refs), margin, design, question)
        line.update(pair.judged("delta", acc, ref_acc, is_self, has_ref, same=_same_models(first, refs)))
        if design and line["delta_pairs"]:
            line["stopped"] = _stopped(line, design)
        line["models"] = ";".join(p for p in (str(Path(d) / MODEL) for d in g["run_dir"] if d) if Path(p).is_file())
        line["eval_seconds"] = g["eval_seconds"].median() if "eval_seconds" in g else None  # median: robust to load
        for key in KEYS:
            line.update(_evaluation(key, g, refs, acc, ref_acc, has_ref, pair))
        if is_self:
            line.update(reference="", reference_name="")
        lines.append(line)
    out = pd.DataFrame(lines, columns=[*COLUMNS, "_ev", *(f"{p}_v" for p in _prefixes())])
    out = apply_family(out, family, margin, design)
    return _flatten(out).drop(columns="_ev")


def _prefixes() -> list[str]:
    return ["delta", *(f"{p}_{k}" for k in KEYS for p in ("gain", "delta"))]


def _dirs(rows: pd.DataFrame) -> pd.Series:
    """Each seed's run folder (the last, where a seed ran twice)."""
    return rows.groupby("seed")["run_dir"].last() if len(rows) else pd.Series(dtype=object)


def _n_valid(g: pd.DataFrame, refs: pd.DataFrame) -> int:
    values = pd.concat([g["n_valid"], refs["n_valid"]]).dropna()
    return int(values.max()) if len(values) else 0


def _same_models(first, refs: pd.DataFrame) -> bool:
    """Whether a row's models are its reference's: the recipes differ only in how the models are evaluated (an
    evaluation's fields), so its plain accuracy is the same training run twice."""
    if refs.empty:
        return False
    from ..records.schema import row_recipe
    from ..recipes.evaluations import EVALUATION_FIELDS
    try:
        a, b = row_recipe(first).to_dict(), row_recipe(refs.iloc[0]).to_dict()
    except (KeyError, ValueError, TypeError, ToolkitError):
        return False
    skip = {"name", "parent", "seed", "notes", *EVALUATION_FIELDS}
    return all(a[k] == b[k] for k in a if k not in skip)


def is_grid(summary: pd.DataFrame) -> bool:
    """Whether the rows hold a grid: some recipe compared with two or more of its own variants (a variant's name is
    `NAME [k=v]`; settings of the context show in a label, never in a name)."""
    variants = summary[summary["name"].astype(str).str.contains(r"\[", regex=True) & summary["delta_mean"].notna()]
    return bool(len(variants)) and int(variants.groupby("reference_config_id").size().max()) >= 2


def apply_family(summary: pd.DataFrame, family: str | None, margin: float, design: stats.Design | None):
    """The rows' verdicts held as one family (Holm's step-down on their t tests' p-values): a better or worse the
    family does not confirm becomes what its equivalence test alone says. Records the rule in `family`."""
    if family not in (None, *stats.FAMILIES):
        raise ToolkitError(f"--family must be one of {', '.join(stats.FAMILIES)} (got {family!r}).")
    grid = is_grid(summary)
    family = family or ("holm" if grid else "none")
    judged = summary["delta_p"].notna()
    if grid:   # a grid's question is its variants': the recipe's own row (vs its parent) is another question
        judged &= summary["name"].astype(str).str.contains(r"\[", regex=True)
    m = int(judged.sum())
    if design is not None:
        summary["family"] = (f"auto at {100 * design.alpha:g}% per row ({m} rows)"
                             if design.alpha < stats.ALPHA else "none")
        return summary
    if family == "none" or m < 2:
        summary["family"] = "none"
        return summary
    reject, adjusted = stats.holm(summary.loc[judged, "delta_p"].to_numpy(float))
    summary["delta_p_family"] = math.nan
    for i, ok, adj in zip(summary.index[judged], reject, adjusted):
        summary.loc[i, "delta_p_family"] = adj
        v = summary.loc[i, "delta_v"]
        if ok or not isinstance(v, judgment.Verdict) or not v.direction:
            continue
        ev = summary.loc[i, "_ev"]
        summary.at[i, "delta_v"] = judgment.unconfirmed(v, ev, stats.ALPHA / m)
    summary["family"] = f"holm over {m} rows"
    return summary


def _flatten(summary: pd.DataFrame) -> pd.DataFrame:
    """Each Verdict as the columns a CSV keeps: its words, direction, within, decided, limited and pairs needed."""
    for p in _prefixes():
        col = f"{p}_v"
        for c in ("verdict", "direction", "within", "decided", "inconclusive", "limited", "reason", "needed"):
            summary[f"{p}_{c}"] = summary[f"{p}_{c}"].astype(object)
        for i, v in summary[col].items():
            if not isinstance(v, judgment.Verdict):
                continue
            summary.loc[i, [f"{p}_verdict", f"{p}_direction", f"{p}_within", f"{p}_decided", f"{p}_inconclusive",
                            f"{p}_limited", f"{p}_reason"]] = [v.text, v.direction, v.within, v.decided,
                                                                v.inconclusive, v.limited, v.reason]
            summary.at[i, f"{p}_needed"] = v.needed if v.inconclusive else None
        summary = summary.drop(columns=col)
    return summary


def _evaluation(key: str, g: pd.DataFrame, refs: pd.DataFrame, acc: pd.Series, ref_acc: pd.Series, has_ref: bool,
                pair: "Pair") -> dict:
    """One evaluation of a row's models (accuracy_<key>): its accuracy over seeds, its seconds, what it buys over
    the same models' plain accuracy, and its difference with the reference's."""
    col = f"accuracy_{key}"
    ev = g.groupby("seed")[col].mean().dropna() if col in g else pd.Series(dtype=float)
    if not len(ev):
        return {}
    ref_ev = refs.groupby("seed")[col].mean().dropna() if col in refs else pd.Series(dtype=float)
    out = _prefixed(col, stats.mean_interval(ev.values))
    out[f"{key}_seconds"] = g[f"{key}_seconds"].median()   # median: one busy moment moves a mean, not it
    out[f"{key}_vs"] = BY_KEY[key].shown if len(ref_ev) else "plain"
    own = Pair(pair.t_dirs, pair.t_dirs, pair.n_valid, pair.margin, pair.design, pair.question)
    out.update(own.judged(f"gain_{key}", ev, acc, False, True, t_key=key, r_key="plain"))
    out.update(pair.judged(f"delta_{key}", ev, ref_ev if len(ref_ev) else ref_acc, False, has_ref, t_key=key,
                           r_key=key if len(ref_ev) else "plain"))
    return out


def _compute(g: pd.DataFrame, curves: pd.DataFrame, ref_acc: pd.Series) -> dict:
    """Compute spent (means over seeds) and, per seed, the pixels and seconds it took to first reach the final
    accuracy of the reference's run with the same seed (averaged over the seeds that reached it)."""
    pixels = g["pixels_seen"]
    if pixels.isna().any() and not curves.empty:  # runs from before pixels were counted: from their epoch logs
        last = curves.groupby("run_id")["cum_pixels"].last()
        pixels = pixels.fillna(g["run_id"].map(last))
    out = {"epochs_run": g["epochs_done"].mean(), "pixels_seen": pixels.mean(),
           "train_seconds": g["train_seconds"].mean(), "threads": _one(g["threads"]), "device": _one(g["device"])}
    reach = []
    for _, run in g.iterrows():
        if run["seed"] not in ref_acc.index or curves.empty:
            continue
        c = curves[curves["run_id"] == run["run_id"]]
        hit = c[c["accuracy"] >= ref_acc[run["seed"]] - stats.EQUAL]
        reach.append((hit["cum_pixels"].iloc[0], hit["cum_seconds"].iloc[0]) if len(hit) else None)
    got = [r for r in reach if r is not None]
    out["reached"] = f"{len(got)}/{len(reach)}" if reach else ""
    if got:
        out.update(reach_pixels=sum(p for p, _ in got) / len(got), reach_seconds=sum(t for _, t in got) / len(got))
    return out


def _one(values: pd.Series):
    """The value every run shares, or a range-like note when they differ (runs on different machines)."""
    distinct = values.dropna().unique()
    return distinct[0] if len(distinct) == 1 else ("" if not len(distinct) else "mixed")


def _prefixed(prefix: str, e: stats.Estimate) -> dict:
    return {"n" if prefix == "accuracy" else f"{prefix}_pairs": e.n, f"{prefix}_mean": e.mean,
            f"{prefix}_std": e.std, f"{prefix}_low": e.low, f"{prefix}_high": e.high, f"{prefix}_method": e.method}


class Pair:
    """How a row's differences are judged: the run folders of both sides by seed (their predictions), the number of
    validation images, the margin, the design of --seeds auto, and the question asked (toolkit/judgment.py)."""

    def __init__(self, t_dirs, r_dirs, n_valid: int, margin: float, design, question: str):
        self.t_dirs, self.r_dirs, self.n_valid = t_dirs, r_dirs, n_valid
        self.margin, self.design, self.question = margin, design, question

    def judged(self, prefix: str, treatment: pd.Series, reference: pd.Series, is_self: bool, has_ref: bool,
               t_key: str = "plain", r_key: str = "plain", same: bool = False) -> dict:
        """The paired difference over the seeds both sides have: its evidence, its verdict (a Verdict, in
        `<prefix>_v`), and for the delta row the evidence itself (`_ev`, for the family's rule)."""
        common = sorted(set(treatment.index) & set(reference.index))
        if is_self:
            return {f"{prefix}_pairs": 0, f"{prefix}_v": judgment.no_pairs(SELF, self.question, self.margin)}
        if not common:
            why = "no runs of the reference" if has_ref and reference.empty else \
                "no seeds in common" if has_ref else "no reference"
            return {f"{prefix}_pairs": 0, f"{prefix}_v": judgment.no_pairs(why, self.question, self.margin)}
        ev = judgment.pair_evidence(treatment, reference, self.t_dirs, self.r_dirs, t_key, r_key, self.n_valid)
        asked = judgment.asked(ev, self.question)
        seeds = judgment.these_images(ev)
        out = {f"{prefix}_pairs": ev.n, f"{prefix}_mean": ev.mean,
               f"{prefix}_std": float(np.std(ev.diffs, ddof=1)) if ev.n > 1 else math.nan,
               f"{prefix}_low": asked.low, f"{prefix}_high": asked.high, f"{prefix}_method": asked.basis,
               f"{prefix}_seeds_low": seeds.low, f"{prefix}_seeds_high": seeds.high,
               f"{prefix}_p": judgment.p_value(asked), f"{prefix}_wins": judgment.seed_wins(ev.diffs),
               f"{prefix}_basis": ev.basis, f"{prefix}_note": ev.note}
        if same:
            out[f"{prefix}_v"], out[f"{prefix}_p"] = judgment.same_models(self.question, self.margin), math.nan
        elif self.design:
            out[f"{prefix}_v"], out[f"{prefix}_why"] = judgment.look(asked, self.design, self.margin, self.question)
        else:
            out[f"{prefix}_v"] = judgment.judge(asked, self.margin, question=self.question)
        if prefix == "delta":
            out["_ev"] = asked
        return out


def _stopped(line: dict, design: stats.Design) -> str:
    """Where and why a row of --seeds auto stopped (`look 2/4 (5 pairs), decided`); '' while it goes on."""
    why, n = line.get("delta_why", ""), int(line["delta_pairs"])
    if not why:
        return ""
    at = f"look {design.looks.index(n) + 1}/{len(design.looks)}" if n in design.looks else "off the looks"
    return f"{at} ({n} pairs), {why}"


# --- the table as a reader sees it ---------------------------------------------------------------------

def _pct(v, signed=False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def _num(v, fmt: str) -> str:
    return "" if v is None or pd.isna(v) else format(v, fmt)


def _interval(lo, hi, signed=False) -> str:
    return "" if _pct(lo) == "" else f"[{_pct(lo, signed)}, {_pct(hi, signed)}]"


def shared_settings(summary: pd.DataFrame) -> dict:
    """Label settings that every row and every reference of a table has: said once, above the table.

    A lone row without a reference keeps them in its label (`baseline [lr=0.01]`)."""
    refs = summary["reference_changes"][summary["reference_name"].fillna("") != ""]
    items = [json.loads(c or "{}") for c in [*summary["changes"], *refs]]
    if len(items) < 2:
        return {}
    return {k: v for k, v in items[0].items() if all(i.get(k) == v for i in items[1:])}


def labels(summary: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Each row's label and its reference's label, without the settings every row shares."""
    shared = shared_settings(summary)

    def short(name, items):
        if not name:
            return ""
        return label(name, {k: v for k, v in json.loads(items or "{}").items() if shared.get(k) != v})
    return ([short(n, c) for n, c in zip(summary["name"], summary["changes"])],
            [short(n, c) for n, c in zip(summary["reference_name"].fillna(""), summary["reference_changes"])])


def context_line(summary: pd.DataFrame) -> str:
    """What every row shares, said once (e.g. `digits, 16 px, 4 epochs, xresnet18, packed loader, bs=128`)."""
    shown = [shown_as(k, summary[k].iloc[0]) for k in SHOWN if summary[k].nunique() == 1]
    return ", ".join([s for s in shown if s] + [f"{k}={v}" for k, v in shared_settings(summary).items()])


def shown_as(key: str, value) -> str:
    if key == "budget":  # the default goes without saying
        return "" if value in ("epochs", "", None) or pd.isna(value) else "pixels budget"
    if key == "dataset":
        return Path(str(value)).name
    if key in ("size", "epochs"):
        n = int(value)
        return f"{n} px" if key == "size" else f"{n} epoch{'s' if n != 1 else ''}"
    if key == "channels_last":
        return "channels_last" if str(value).lower() in ("true", "1", "1.0") else "contiguous"
    return f"{value} loader" if key == "loader" else str(value)


def to_markdown(summary: pd.DataFrame) -> str:
    """The comparison as a markdown table (accuracies and differences in percentage points) with its footnotes."""
    if summary.empty:
        return "(no finished runs to compare)"
    varying = [k for k in SHOWN if summary[k].nunique() > 1]
    rows, refs = labels(summary)
    t = pd.DataFrame({"experiment": rows, "vs": refs})
    for k in varying:
        t[k] = summary[k].map(lambda v, k=k: shown_as(k, v))
    t["n"] = summary["n"].astype(int).astype(str)
    t["accuracy %"] = summary["accuracy_mean"].map(_pct)
    t["std"] = summary["accuracy_std"].map(_pct)
    t["95% CI"] = [_interval(lo, hi) for lo, hi in zip(summary["accuracy_low"], summary["accuracy_high"])]
    t["pairs"] = summary["delta_pairs"].map(lambda v: "" if pd.isna(v) or not v else str(int(v)))
    t["Δ pts"] = summary["delta_mean"].map(lambda v: _pct(v, True))
    t["Δ 95% CI"] = [_interval(lo, hi, True) for lo, hi in zip(summary["delta_low"], summary["delta_high"])]
    t["Δ>0 on seeds"] = summary["delta_wins"].fillna("")
    t["verdict"] = [verdict_text(s, "delta") for _, s in summary.iterrows()]
    if summary["stopped"].notna().any():
        t["stopped at"] = summary["stopped"].astype(object).fillna("")
    if (summary["epochs_run"].notna() & (summary["epochs_run"] != summary["epochs"])).any():
        t["epochs run"] = summary["epochs_run"].map(lambda v: _num(v, ".0f"))   # a pixel budget changed them
    t["Mpx"] = summary["pixels_seen"].map(lambda v: _num(v / 1e6, ".1f"))
    t["train s"] = summary["train_seconds"].map(lambda v: _num(v, ".0f"))
    t["to vs acc: Mpx"] = [_num(p / 1e6, ".1f") + (f" ({r})" if r else "")
                           for p, r in zip(summary["reach_pixels"], summary["reached"].fillna(""))]
    t["to vs acc: s"] = summary["reach_seconds"].map(lambda v: _num(v, ".0f"))
    left = 2 + len(varying)
    align = ["left"] * left + ["right"] * (len(t.columns) - left)
    for col in ("verdict", "stopped at"):
        if col in t.columns:
            align[list(t.columns).index(col)] = "left"
    table = t.to_markdown(index=False, disable_numparse=True, colalign=align)
    head = context_line(summary)
    more = evaluations_markdown(summary)
    return ((f"{head}\n\n" if head else "") + table + (f"\n\n{more}" if more else "") + "\n\n"
            + footnotes(summary))


def evaluated(summary: pd.DataFrame) -> list[str]:
    """The evaluation keys (recipes/evaluations.py) that some row of `summary` has."""
    return [k for k in KEYS if summary[f"accuracy_{k}_mean"].notna().any()]


def evaluations_markdown(summary: pd.DataFrame) -> str:
    """The evaluations besides the plain one, a line each under its row's plain line: accuracy, what it buys over the
    same models' plain accuracy, its difference with the reference, and its seconds ('' when none was asked for)."""
    keys = evaluated(summary)
    if not keys:
        return ""
    names, _ = labels(summary)
    lines = []
    for name, (_, s) in zip(names, summary.iterrows()):
        mine = [k for k in keys if pd.notna(s[f"accuracy_{k}_mean"])]
        if not mine:
            continue
        lines.append({"experiment": name, "evaluation": "plain", "n": str(int(s["n"])),
                      "accuracy %": _pct(s["accuracy_mean"]), "95% CI": _interval(s["accuracy_low"], s["accuracy_high"]),
                      "eval s": _num(s["eval_seconds"], ".1f")})
        for k in mine:
            lines.append({"experiment": "", "evaluation": BY_KEY[k].shown, "n": str(int(s[f"accuracy_{k}_pairs"])),
                          "accuracy %": _pct(s[f"accuracy_{k}_mean"]),
                          "95% CI": _interval(s[f"accuracy_{k}_low"], s[f"accuracy_{k}_high"]),
                          "vs plain: Δ pts [95% CI]": _delta(s, f"gain_{k}"),
                          "verdict": verdict_text(s, f"gain_{k}"),
                          "vs reference: Δ pts [95% CI]": _delta(s, f"delta_{k}")
                          + (f" vs {s[f'{k}_vs']}" if _delta(s, f"delta_{k}") else ""),
                          "reference verdict": verdict_text(s, f"delta_{k}")
                          if _delta(s, f"delta_{k}") else "",   # no pairs: the main table says why
                          "eval s": _num(s[f"{k}_seconds"], ".1f")})
    cols = ["experiment", "evaluation", "n", "accuracy %", "95% CI", "vs plain: Δ pts [95% CI]", "verdict",
            "vs reference: Δ pts [95% CI]", "reference verdict", "eval s"]
    t = pd.DataFrame(lines, columns=cols).fillna("")
    if not (t["vs reference: Δ pts [95% CI]"] != "").any():   # no reference runs at all: the main table says why
        t = t.drop(columns=["vs reference: Δ pts [95% CI]", "reference verdict"])
    align = ["left", "left"] + ["right"] * (len(t.columns) - 2)
    for col in ("verdict", "reference verdict"):
        if col in t.columns:
            align[list(t.columns).index(col)] = "left"
    return ("Evaluations of the same models (no extra training):\n\n"
            + t.to_markdown(index=False, disable_numparse=True, colalign=align))


def _delta(s, prefix: str) -> str:
    m = s.get(f"{prefix}_mean")
    return "" if _pct(m) == "" else f"{_pct(m, True)} {_interval(s[f'{prefix}_low'], s[f'{prefix}_high'], True)}".strip()


def verdict_text(row, prefix: str = "delta") -> str:
    """A row's verdict as the table shows it: an inconclusive one with the pairs that would likely settle it, or
    `(images)` where no number of seeds would."""
    v = row.get(f"{prefix}_verdict", "")
    if not _flag(row, f"{prefix}_inconclusive"):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    if _flag(row, f"{prefix}_limited"):
        return f"{v} (images)"
    needed = stats.shown_needed(row.get(f"{prefix}_needed"))
    return f"{v} ({needed})" if needed else str(v)


def _flag(row, col: str) -> bool:
    """A verdict's yes/no column (empty where the row has no verdict)."""
    x = row.get(col)
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and bool(x)


def footnotes(summary: pd.DataFrame) -> str:
    """What the table's numbers mean, a bullet each: seeds, Δ, the verdicts and ~N (`_method_notes`), the design of
    --seeds auto, the evaluations, the noise floor, kept weights, and how many rows were judged at once."""
    keys = evaluated(summary)
    notes = [*_method_notes(summary), *_design_notes(summary), *_basis_notes(summary),
             *([_evaluations_note(keys)] if keys else []), *_noise_floor_notes(summary), *_kept_notes(summary),
             *_many_rows_notes(summary)]
    return "\n".join(f"- {n}" for n in notes)


def _method_notes(summary: pd.DataFrame) -> list[str]:
    """Seeds, Δ and its interval, the verdicts with the margin, and what ~N means."""
    seeds = sorted({int(s) for ss in summary["seeds"] for s in ss.split(",")})
    m = stats.points(float(summary["margin"].iloc[0]))
    design = summary["design"].fillna("").iloc[0]
    return [
        f"n: seeds per row (seeds used: {seed_ranges(seeds)}); std and the 95% CI (Student t) need n >= 2.",
        "Δ: accuracy minus the accuracy of the row's reference (vs) with the same seed and the same settings, "
        "averaged over the pairs. " + _question_note(summary),
        f"Verdict, with a margin of equivalence of {m} points (--margin): from {stats.MIN_PAIRS} pairs (else need "
        + ("more seeds), at the level of the look where the row stopped (below), with t intervals: better / worse "
           "when the interval for better / worse excludes zero; " if design else
           "more seeds): better / worse when the 95% CI of Δ excludes zero; ")
        + f"`better, within {m}` (or worse) when, besides, the "
        + ("interval for within / equivalent" if design else f"{100 * (1 - 2 * stats.ALPHA):g}% t interval")
        + f" lies inside {m}: real, but smaller than the margin; `equivalent ({m})` when that interval lies inside "
        f"{m} (two one-sided t tests" + ("" if design else f" at {100 * stats.ALPHA:g}%") + "); `inconclusive` "
        "otherwise.",
        f"~N after inconclusive: the pairs in all that would settle the row with {stats.POWER:.0%} power, taking "
        f"its observed Δ and its spread as the truth: to exclude zero, or to fit inside {m}, whichever needs fewer "
        f"(noncentral t; more seeds shrink the seeds' part of the spread, not the images'); >{stats.MAX_NEEDED} "
        f"beyond {stats.MAX_NEEDED}; `(images)`: more seeds will not settle this, the validation images limit it "
        f"(a larger validation set would). No verdict is drawn from an interval narrower than one validation image "
        f"or from no spread at all. Δ>0 on seeds: on how many of the paired seeds the row beat its reference. A "
        f"spread measured on a few pairs is itself uncertain (from 3 pairs, its 95% interval spans 0.5 to 6.3 "
        f"times the estimate), so N is a rough guide: `toolkit noise NAME` measures this proxy's spread on more "
        f"seeds, and `--seeds auto` spends seeds only on the rows that need them.",
    ]


def _design_notes(summary: pd.DataFrame) -> list[str]:
    design = summary["design"].fillna("").iloc[0]
    return [f"{design}. A row stops once decided, at the last look, or from the second look on when its ~N exceeds "
            f"the largest look (it stays inconclusive); `stopped at` says where. The table's 95% CI is the plain "
            f"one."] if design else []


def _question_note(summary: pd.DataFrame) -> str:
    """What the interval of Δ answers (--question)."""
    if str(summary["question"].iloc[0]) == judgment.THESE_IMAGES:
        return ("Its 95% CI answers the question on these very images (--question these-images): Student t on the "
                "per-seed differences, the validation images held fixed.")
    return ("Its 95% CI answers the question on new images like these: the seeds and the validation images are both "
            "samples (a two-way random-effects estimate on the runs' per-image predictions, crossed, with "
            "Satterthwaite's degrees of freedom; toolkit/judgment.py); the CSV keeps the seeds-only interval, on "
            "these very images, as delta_seeds_low and delta_seeds_high (--question these-images judges by it).")


def _basis_notes(summary: pd.DataFrame) -> list[str]:
    """Rows judged by their accuracies alone (older runs, another split, damaged predictions), and the same models."""
    notes, basis = [], summary["delta_basis"].fillna("")
    labelled = labels(summary)[0]
    older = [n for n, b in zip(labelled, basis) if b == judgment.ACCURACIES]
    if older:
        notes.append(f"Judged by their accuracies alone, on these very images, the spread of their paired "
                     f"differences floored at one validation image (runs recorded before predictions were kept, or "
                     f"a single pair): {', '.join(older)}.")
    for n, b, note in zip(labelled, basis, summary["delta_note"].fillna("")):
        if b in (judgment.OTHER_SPLIT, judgment.DAMAGED):
            notes.append(f"{n}: {note}")
    same = [n for n, r in zip(labelled, summary["delta_reason"].fillna("")) if r == judgment.SAME_MODELS]
    if same:
        notes.append(f"same models: {', '.join(same)} trains the very models of its reference (they differ only in "
                     f"how the models are evaluated), so its plain accuracy is no test; its evaluations are "
                     f"compared below.")
    return notes


def _evaluations_note(keys: list[str]) -> str:
    return ("Evaluations: " + "; ".join(f"{BY_KEY[k].shown}: {BY_KEY[k].what}" for k in keys) + ". vs plain: the "
            "evaluation's accuracy minus the same models' plain accuracy, paired by seed (what it buys); vs "
            "reference: minus the reference's accuracy under the same evaluation when it has one, else its "
            "plain accuracy; verdicts follow the same rules. eval s: seconds of that evaluation of the "
            "validation set (plain: the last epoch's validation), median over seeds, on this machine's load.")


def _noise_floor_notes(summary: pd.DataFrame) -> list[str]:
    """The binomial standard error of an accuracy on each validation-set size in the table."""
    margin = float(summary["margin"].iloc[0])
    m, notes = stats.points(margin), []
    for n_valid, group in summary.dropna(subset=["n_valid", "accuracy_mean"]).groupby("n_valid"):
        se = sorted(100 * stats.binomial_se(float(p), int(n_valid)) for p in group["accuracy_mean"])
        spread = f"{se[0]:.1f} points" if f"{se[0]:.1f}" == f"{se[-1]:.1f}" else f"{se[0]:.1f} to {se[-1]:.1f} points"
        notes.append(f"Noise floor: an accuracy measured on {int(n_valid):,} validation images has a binomial "
                     f"standard error of {spread} at the accuracies in this table (one image = "
                     f"{100 / n_valid:.2f} points)."
                     + (f" The margin {m} is smaller than that: unless both models err on much the same images, "
                        f"equivalence at {m} is hard to reach here (a larger margin, or a larger validation set, "
                        f"makes it reachable)." if margin < se[-1] else ""))
    return notes


def _kept_notes(summary: pd.DataFrame) -> list[str]:
    kept = [(n, m.split(";")) for n, m in zip(labels(summary)[0], summary["models"].fillna("")) if m]
    return ["Kept weights (`--save-model`; `toolkit export RUN_DIR OUT.pkl` makes a fastai export file): "
            + "; ".join(f"{n}: {', '.join(ms)}" for n, ms in kept) + "."] if kept else []


def _many_rows_notes(summary: pd.DataFrame) -> list[str]:
    """Whether the verdicts hold their error per row or for the rows as one family."""
    compared = int(summary["delta_mean"].notna().sum())
    family = str(summary["family"].fillna("none").iloc[0]) if "family" in summary else "none"
    win = ("Seeds that agree on the direction tell better on average from better on most seeds (Δ>0 on seeds); no "
           "interval on that share is shown, as at a handful of seeds none can mean much.")
    if family.startswith("holm"):
        members = int(summary["delta_p_family"].notna().sum()) if "delta_p_family" in summary else compared
        return [win, f"The {members} rows with a Holm-adjusted p (CSV: delta_p_family) are judged as one family "
                     f"(Holm's step-down on the paired t tests' "
                     f"p-values; --family none judges each alone): the chance of any false better / worse among "
                     f"them is at most 5%. A better / worse the family does not confirm shows what its equivalence "
                     f"test alone says; equivalent verdicts stay per row and are not counted in the family."
                     + (f" The other {compared - members} row(s) (a grid's recipe against its own reference) are "
                        f"judged each on its own." if members < compared else "")]
    if family.startswith("auto at"):
        return [win, f"The rows are one family under --seeds auto: each row's looks run at 5% / rows ({family}), so "
                     f"the chance of any false better / worse, or any false equivalent, among them over all looks "
                     f"is at most 5%."]
    return [win] + ([f"Each verdict is judged on its own row, not corrected for the {compared} rows compared at "
                     f"once: across many rows, expect an occasional verdict by chance (--family holm holds the "
                     f"error for all of them)."] if compared > 1 else [])


def seed_ranges(seeds: list[int]) -> str:
    """[42, 43, 44, 50] -> '42-44, 50'."""
    out, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            out.append(str(start) if start == s else f"{start}-{s}")
            start = None
    return ", ".join(out)


def epoch_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch validation accuracy of every run, from the run folders' epochs.csv, with the compute spent up
    to the end of each epoch: cum_pixels (training images x size^2) and cum_seconds (train phase)."""
    frames = []
    for _, r in rows.iterrows():
        path = Path(r["run_dir"]) / "epochs.csv"
        if not path.exists():
            continue
        e = pd.read_csv(path)
        if "images" not in e:  # logs from before the compute columns: images from the rate and the time
            e["images"] = (e["images_per_second"] * e["train_seconds"]).round()
            e["pixels"] = e["images"] * e["size"] ** 2
        frames.append(e.assign(name=r["name"], config_id=r["config_id"], run_id=r["run_id"],
                               cum_pixels=e["pixels"].cumsum(), cum_seconds=e["train_seconds"].cumsum()))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
