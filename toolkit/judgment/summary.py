"""The computing half of a comparison: one line per recipe setting from the records, its accuracy over seeds, its
paired differences judged (evidence and verdicts: toolkit/judgment/), a family's rule, and the compute it spent.
toolkit/report/ renders these lines; nothing here draws or writes."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..errors import ToolkitError
from ..recipes.evaluations import BY_KEY, KEYS
from ..records.artifacts import MODEL
from .evidence import NEW_IMAGES, QUESTIONS, asked, pair_evidence, these_images
from .verdicts import Verdict, judge, look, no_pairs, p_value, same_models, seed_wins, unconfirmed

GROUP = ["name", "config_id"]
SHOWN = ["dataset", "size", "epochs", "arch", "loader", "budget", "precision", "channels_last"]  # said once above
# the table, or as columns
SELF = "(reference)"
# each paired difference: its pairs, mean, spread of the per-seed differences, the interval of the question asked
# (low, high) and the seeds-only one ("on these very images"), the verdict in words and as a value (direction,
# within, decided, limited: toolkit/judgment/'s Verdict), pairs needed, p, wins by seed, and what it rests on
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
              question: str = NEW_IMAGES) -> pd.DataFrame:
    """One line per recipe setting: accuracy over seeds (mean, std, 95% interval), and the paired difference with
    its reference (looked up in the whole `table`), judged by toolkit/judgment/: its 95% interval for `question`
    (by default on new images like these: seeds and validation images as samples, from the runs' predictions), the
    seeds-only interval beside it, a verdict with the margin of equivalence `margin` (points), and for an
    inconclusive row the pairs that would likely settle it; the same for every other evaluation; and the compute it
    spent: pixels and training seconds, and what it took to reach its reference's final accuracy.

    `design`: the rows were gathered by --seeds auto (`stats.Design`): each verdict is the one of its last look,
    at the design's per-look level, and `stopped` says why the row stopped there.

    `family`: "holm" holds the chance of any false better / worse among the rows at 5% (`apply_family`); "none"
    judges each row on its own; None: holm for a grid (a recipe with several variants), else none. Under a design
    the family is the design's (a grid's runs at alpha / rows per row: sweep/auto.py)."""
    if question not in QUESTIONS:
        raise ToolkitError(f"--question must be one of {', '.join(QUESTIONS)} (got {question!r}).")
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
    """Each seed's run folder; none where a seed ran twice (its accuracy is their mean, which no one run's
    predictions are: that row is judged by its accuracies)."""
    if not len(rows):
        return pd.Series(dtype=object)
    runs = rows.groupby("seed")["run_dir"]
    return runs.last().where(runs.size() == 1, "")


def _n_valid(g: pd.DataFrame, refs: pd.DataFrame) -> int:
    values = pd.concat([g["n_valid"], refs["n_valid"]]).dropna()
    return int(values.max()) if len(values) else 0


def _same_models(first, refs: pd.DataFrame) -> bool:
    """Whether a row's models are its reference's: the recipes differ only in how the models are evaluated (an
    evaluation's fields), so its plain accuracy is the same training run twice."""
    if refs.empty:
        return False
    from ..records.schema import same_settings
    from ..recipes.evaluations import EVALUATION_FIELDS
    try:
        return same_settings(first, refs.iloc[0], skip={"parent", "notes", *EVALUATION_FIELDS})
    except (KeyError, ValueError, TypeError, ToolkitError):
        return False


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
        if ok or not isinstance(v, Verdict) or not v.direction:
            continue
        ev = summary.loc[i, "_ev"]
        summary.at[i, "delta_v"] = unconfirmed(v, ev, stats.ALPHA / m)
    summary["family"] = f"holm over {m} rows"
    return summary


def _flatten(summary: pd.DataFrame) -> pd.DataFrame:
    """Each Verdict as the columns a CSV keeps: its words, direction, within, decided, limited and pairs needed."""
    for p in _prefixes():
        col = f"{p}_v"
        for c in ("verdict", "direction", "within", "decided", "inconclusive", "limited", "reason", "needed"):
            summary[f"{p}_{c}"] = summary[f"{p}_{c}"].astype(object)
        for i, v in summary[col].items():
            if not isinstance(v, Verdict):
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
    validation images, the margin, the design of --seeds auto, and the question asked (toolkit/judgment/)."""

    def __init__(self, t_dirs, r_dirs, n_valid: int, margin: float, design, question: str):
        self.t_dirs, self.r_dirs, self.n_valid = t_dirs, r_dirs, n_valid
        self.margin, self.design, self.question = margin, design, question

    def judged(self, prefix: str, treatment: pd.Series, reference: pd.Series, is_self: bool, has_ref: bool,
               t_key: str = "plain", r_key: str = "plain", same: bool = False) -> dict:
        """The paired difference over the seeds both sides have: its evidence, its verdict (a Verdict, in
        `<prefix>_v`), and for the delta row the evidence itself (`_ev`, for the family's rule)."""
        common = sorted(set(treatment.index) & set(reference.index))
        if is_self:
            return {f"{prefix}_pairs": 0, f"{prefix}_v": no_pairs(SELF, self.question, self.margin)}
        if not common:
            why = "no runs of the reference" if has_ref and reference.empty else \
                "no seeds in common" if has_ref else "no reference"
            return {f"{prefix}_pairs": 0, f"{prefix}_v": no_pairs(why, self.question, self.margin)}
        ev = pair_evidence(treatment, reference, self.t_dirs, self.r_dirs, t_key, r_key, self.n_valid)
        for_q = asked(ev, self.question)
        seeds = these_images(ev)
        out = {f"{prefix}_pairs": ev.n, f"{prefix}_mean": ev.mean,
               f"{prefix}_std": float(np.std(ev.diffs, ddof=1)) if ev.n > 1 else math.nan,
               f"{prefix}_low": for_q.low, f"{prefix}_high": for_q.high, f"{prefix}_method": for_q.basis,
               f"{prefix}_seeds_low": seeds.low, f"{prefix}_seeds_high": seeds.high,
               f"{prefix}_p": p_value(for_q), f"{prefix}_wins": seed_wins(ev.diffs),
               f"{prefix}_basis": ev.basis, f"{prefix}_note": ev.note}
        if same:
            out[f"{prefix}_v"], out[f"{prefix}_p"] = same_models(self.question, self.margin), math.nan
            if self.design:
                out[f"{prefix}_why"] = "same models"   # nothing to decide: --seeds auto runs it no further
        elif self.design:
            out[f"{prefix}_v"], out[f"{prefix}_why"] = look(for_q, self.design, self.margin, self.question)
        else:
            out[f"{prefix}_v"] = judge(for_q, self.margin, question=self.question)
        if prefix == "delta":
            out["_ev"] = for_q
        return out


def _stopped(line: dict, design: stats.Design) -> str:
    """Where and why a row of --seeds auto stopped (`look 2/4 (5 pairs), decided`); '' while it goes on."""
    why, n = line.get("delta_why", ""), int(line["delta_pairs"])
    if not why:
        return ""
    at = f"look {design.looks.index(n) + 1}/{len(design.looks)}" if n in design.looks else "off the looks"
    return f"{at} ({n} pairs), {why}"


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


def check_margin(margin) -> float:
    """--margin: a number of points from 0 (no claim of equivalence is ever made) to 100; None: the default."""
    if margin is None:
        return stats.MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 100:
        raise ToolkitError(f"--margin is a number of accuracy points from 0 to 100, such as 1 or 0.5 (got {margin!r}).")
    return float(margin)


def judged(rows: pd.DataFrame, table: pd.DataFrame, against: str | None = None, margin: float | None = None,
           design: stats.Design | None = None, family: str | None = None,
           question: str = NEW_IMAGES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparison of `rows` (a sweep's, or a selection of the results table), each paired with its reference
    in the whole `table` (or with `against`): (the rows as paired, their summary). `margin`, `design`, `family`
    and `question` as in `summarize`."""
    if rows.empty:
        raise ToolkitError("Nothing to compare: none of these runs has finished. `toolkit runs` lists the run folders "
                           "and their status; compare again once they have finished.")
    table = pair_against(table, against)
    rows = table.loc[rows.index]
    return rows, summarize(rows, table, check_margin(margin), design, family, question)


def pair_against(table: pd.DataFrame, against: str | None = None) -> pd.DataFrame:
    """The table with every row paired as recorded, or with `against` (compare --against X): each row then with X's
    rows of the same context and `auto` (the most recently finished setting of X, should X have run under several
    definitions), from the records alone: no registry, no dataset folder."""
    if against is None or table.empty:
        return table
    theirs = table[table["name"] == against]
    if theirs.empty:
        raise ToolkitError(f"No finished runs of {against!r} in the results table to compare against; run it under "
                           f"the same settings first (`toolkit run ... --against {against}` does).")
    latest = theirs.sort_values("finished_at").groupby(["context", "auto"]).last()
    cols = ["reference", "reference_name", "reference_changes", "reference_config_id"]
    out = table.copy()
    for i, (context, auto) in zip(table.index, zip(table["context"], table["auto"])):
        ref = latest.loc[(context, auto)] if (context, auto) in latest.index else None
        out.loc[i, cols] = [ref["label"], against, ref["changes"], ref["config_id"]] if ref is not None else \
            [against, against, "{}", ""]
    return out
