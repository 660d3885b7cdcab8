"""The accuracy-compute frontier: every row of a comparison (and every evaluation of its models) as a point at its
mean compute and its mean accuracy, and the points that no other point beats on both."""
from __future__ import annotations

import pandas as pd

from ..recipes.evaluations import BY_KEY
from ..judgment.summary import SELF
from .tables import evaluated

COMPUTE = {"pixels": "training pixels per run (millions: images x size², summed over epochs)",
           "seconds": "seconds per run: training (train phase, mean) + that evaluation (median)"}


def points(summary: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One point per row and evaluation: its label, mean accuracy and 95% interval (over seeds), and its compute:
    the training pixels (an evaluation adds none) and the training plus evaluation seconds; `reference` marks rows
    that another row is compared with."""
    own = summary["delta_reason"] == SELF   # a row that is its own reference
    refs = set(summary["reference_config_id"][~own]) | set(summary["config_id"][own])
    out = []
    for name, (_, s) in zip(names, summary.iterrows()):
        base = {"label": name, "reference": s["config_id"] in refs, "pixels": s["pixels_seen"]}
        out.append({**base, "evaluation": "plain", "seconds": s["train_seconds"] + _or0(s["eval_seconds"]),
                    "mean": s["accuracy_mean"], "low": s["accuracy_low"], "high": s["accuracy_high"]})
        for k in evaluated(summary):
            if pd.notna(s[f"accuracy_{k}_mean"]):
                out.append({**base, "evaluation": BY_KEY[k].shown, "seconds": s["train_seconds"] + _or0(s[f"{k}_seconds"]),
                            "mean": s[f"accuracy_{k}_mean"], "low": s[f"accuracy_{k}_low"],
                            "high": s[f"accuracy_{k}_high"]})
    return pd.DataFrame(out, columns=["label", "evaluation", "reference", "pixels", "seconds", "mean", "low", "high"])


def _or0(v) -> float:
    return 0.0 if v is None or pd.isna(v) else float(v)


def on_frontier(p: pd.DataFrame, x: str) -> pd.Series:
    """Points that no other point beats on both: none has at least their accuracy at no more compute `x`, and
    more accuracy or less compute (mean values; their intervals are drawn beside)."""
    ok = p[x].notna() & p["mean"].notna()

    def beaten(i):
        a = p[ok & (p.index != i)]
        return bool(((a[x] <= p.at[i, x]) & (a["mean"] >= p.at[i, "mean"])
                     & ((a[x] < p.at[i, x]) | (a["mean"] > p.at[i, "mean"]))).any())
    return pd.Series([bool(ok[i]) and not beaten(i) for i in p.index], index=p.index)
