"""Comparison tables, from the results table: read records, nothing else.

Every row says what it means (toolkit/records/schema.py): its label and label settings, its role, and its
reference's name, label and config_id. One summary line per (name, config_id): runs are pooled as seeds only when
both are equal. Settings that every row of a table shares are said once, above it, rather than in every label.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .. import judgment, stats
from ..judgment.summary import SHOWN
from ..recipes.identity import label
from ..recipes.evaluations import BY_KEY, KEYS

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
    if not judgment.flag(row, f"{prefix}_inconclusive"):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    if judgment.flag(row, f"{prefix}_limited"):
        return f"{v} (images)"
    needed = stats.shown_needed(row.get(f"{prefix}_needed"))
    return f"{v} ({needed})" if needed else str(v)


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
            "Satterthwaite's degrees of freedom; toolkit/judgment/); the CSV keeps the seeds-only interval, on "
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


def noise_hint(summary: pd.DataFrame, context: dict, auto: bool = False) -> str:
    """After a table with inconclusive rows (of any evaluation): where to learn how many seeds this proxy needs, as
    the command that measures it ("" when every row is settled). `context`: the sweep's, as the launcher gave it."""
    cols = [c for c in summary.columns if c.startswith("delta") and c.endswith("_inconclusive")]
    if summary.empty or not cols:
        return ""
    open_ = summary[summary[cols].fillna(False).astype(bool).any(axis=1)]
    if open_.empty:
        return ""
    name = open_["reference_name"].iloc[0] or open_["name"].iloc[0]
    given = " ".join(f"--{k} {v}" if k in ("dataset", "size", "epochs", "budget") else f"--set {k}={v}"
                     for k, v in context.items())
    seeds = "" if auto else " `--seeds auto` spends more seeds only on the rows that need them."
    return (f"Inconclusive rows: ~N is how many pairs would likely settle each.{seeds} How noisy this proxy is, and "
            f"what a question costs on it: `toolkit noise {name} {given}`".rstrip())
