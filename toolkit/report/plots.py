"""The comparison plot: every seed with its mean and interval, the paired differences as a forest plot around zero,
accuracy per epoch against pixels and against seconds, and the accuracy-compute frontier (toolkit/report/frontier.py)."""
from __future__ import annotations

import pandas as pd

from .. import judgment, stats
from . import frontier
from ..judgment.summary import SHOWN, epoch_curves
from .tables import shown_as, verdict_text, context_line, labels


def _color(s, prefix: str = "delta") -> str:
    """By the verdict's value (toolkit/judgment/): better green (within the margin too), worse red, equivalent
    blue, inconclusive grey, anything untested (too few seeds, the same models) orange."""
    decided = judgment.call(s, prefix)
    if decided:
        return {stats.BETTER: "tab:green", stats.WORSE: "tab:red"}.get(decided, "tab:blue")
    return "tab:gray" if judgment.flag(s, f"{prefix}_inconclusive") else "tab:orange"


def plot(rows: pd.DataFrame, summary: pd.DataFrame):
    """Six panels: every seed's accuracy (mean and 95% CI); Δ vs the reference with its 95% CI and a line at
    zero (a forest plot); validation accuracy after each epoch against the pixels and against the training
    seconds spent so far (means over seeds; seconds swing with the load on a shared machine, pixels do not);
    and the frontier: every row and evaluation at its mean accuracy and compute, against pixels and seconds."""
    import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep their inline backend

    k = len(summary)
    top = max(3.8, 0.42 * k + 1.8)
    fig, axes = plt.subplots(3, 2, figsize=(15, top + 4.5 + 5.5), gridspec_kw={"height_ratios": [top, 4.5, 5.5]})
    names, refs = labels(summary)
    varying = [c for c in SHOWN if summary[c].nunique() > 1]  # in the table they are columns; here, in the label
    names = [f"{n} ({', '.join(shown_as(c, s[c]) or 'epochs budget' for c in varying)})" if varying else n
             for n, (_, s) in zip(names, summary.iterrows())]
    ys = list(range(k))[::-1]  # first row at the top
    _seeds_panel(axes[0, 0], rows, summary, names, ys)
    _forest_panel(axes[0, 1], summary, names, refs, ys)
    curves = epoch_curves(rows)
    _compute_panel(axes[1, 0], curves, summary, names, "cum_pixels", 1e6,
                   "training pixels seen (millions: images x size², summed over epochs)")
    _compute_panel(axes[1, 1], curves, summary, names, "cum_seconds", 1, "training seconds (train phase)")
    p = frontier.points(summary, names)
    _frontier_panel(axes[2, 0], p, "pixels", 1e6)
    _frontier_panel(axes[2, 1], p, "seconds", 1)
    head = context_line(summary)
    if head:
        fig.suptitle(head, fontsize=10)
    fig.tight_layout()
    plt.close(fig)  # the caller saves or displays it; closing avoids a second copy in notebooks
    return fig


def _seeds_panel(ax, rows, summary, names, ys):
    for y, (_, s) in zip(ys, summary.iterrows()):
        g = rows[(rows["name"] == s["name"]) & (rows["config_id"] == s["config_id"])]
        acc = (100 * g["accuracy"]).round(6)
        lift = acc.groupby(acc).cumcount() * 0.12  # equal accuracies (same images right) stack upwards
        ax.scatter(acc, y + lift, s=22, color="tab:blue", alpha=0.7, zorder=3)
        if pd.notna(s["accuracy_low"]):
            ax.plot([100 * s["accuracy_low"], 100 * s["accuracy_high"]], [y, y], color="black", lw=1.5, zorder=2)
        ax.scatter([100 * s["accuracy_mean"]], [y], marker="|", s=250, color="black", zorder=4)
    ax.set_yticks(ys, [f"{name} (n={int(n)})" for name, n in zip(names, summary["n"])], fontsize=8)
    ax.set_ylim(-0.7, len(ys) - 0.3)
    ax.set(xlabel="validation accuracy (%)", title="Every seed (dots; equal ones stacked), mean and 95% CI (black)")
    ax.grid(axis="x", alpha=0.3)


def _forest_panel(ax, summary, names, refs, ys):
    for y, (_, s) in zip(ys, summary.iterrows()):
        mean = s["delta_mean"]
        if pd.isna(mean):
            ax.text(0, y, f"  {s['delta_verdict']}", va="center", fontsize=7, color="gray")
            continue
        color = _color(s)
        if pd.notna(s["delta_low"]):
            ax.plot([100 * s["delta_low"], 100 * s["delta_high"]], [y, y], color=color, lw=2)
        ax.scatter([100 * mean], [y], color=color, s=30, zorder=3)
        ax.text(100 * mean, y + 0.22, f"{verdict_text(s, 'delta')}, n={int(s['delta_pairs'])}",
                fontsize=7, ha="center", color=color, zorder=4, bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
    ax.axvline(0, color="black", lw=1)
    if summary["margin"].notna().any():
        m = float(summary["margin"].iloc[0])
        ax.axvspan(-m, m, color="tab:blue", alpha=0.08, lw=0, label=f"margin {stats.points(m)}")
        ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_yticks(ys, [f"{a}  vs {b}" if b else a for a, b in zip(names, refs)], fontsize=8)
    ax.set_ylim(-0.7, len(ys) - 0.3)
    ax.set(xlabel="Δ accuracy vs reference (percentage points)", title="Paired difference with its reference, 95% CI")
    ax.grid(axis="x", alpha=0.3)
    lo, hi = ax.get_xlim()
    span = max(abs(lo), abs(hi), 0.5)
    ax.set_xlim(-span, span)  # zero in the middle: neither side looks bigger than it is


def _compute_panel(ax, curves, summary, names, x: str, unit: float, xlabel: str):
    if not curves.empty:
        for name, (_, s) in zip(names, summary.iterrows()):
            sel = curves[(curves["name"] == s["name"]) & (curves["config_id"] == s["config_id"])]
            mean = sel.groupby("epoch")[[x, "accuracy"]].mean()
            ax.plot(mean[x] / unit, 100 * mean["accuracy"], marker="o", ms=3, label=name)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no epoch logs found in the run folders", ha="center", va="center",
                transform=ax.transAxes, color="gray")
    ax.set(xlabel=xlabel, ylabel="validation accuracy (%)",
           title=f"Accuracy after each epoch against {'pixels' if x == 'cum_pixels' else 'seconds'} (mean over seeds)")
    ax.grid(alpha=0.3)


def _frontier_panel(ax, p, x: str, unit: float):
    """Every point at its mean compute and accuracy with its 95% CI; references as squares; the frontier joined."""
    markers = dict(zip(p["evaluation"].unique(), "osD^vP*X"))
    colors = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(p["label"]))}
    p = p.assign(at=p[x] / unit)
    # points at the same compute (every evaluation of a model has its training pixels) spread apart a little
    step = 0.006 * max(float(p["at"].max() - p["at"].min()) if p["at"].notna().any() else 0.0,
                       float(p["at"].abs().max()) if p["at"].notna().any() else 0.0)
    p["at"] = p["at"] + step * (p.groupby(p["at"].round(9)).cumcount() - p.groupby(p["at"].round(9))["at"].transform(
        "size").sub(1).div(2))
    for _, q in p.iterrows():
        if pd.isna(q["at"]) or pd.isna(q["mean"]):
            continue
        if pd.notna(q["low"]):
            ax.plot([q["at"]] * 2, [100 * q["low"], 100 * q["high"]], color=colors[q["label"]], lw=1, alpha=0.6)
        ax.scatter([q["at"]], [100 * q["mean"]], marker=markers[q["evaluation"]], s=60 if q["reference"] else 30,
                   color="white" if q["reference"] else colors[q["label"]], edgecolors=colors[q["label"]],
                   linewidths=1.5, zorder=3)
    best = p[frontier.on_frontier(p, x)].sort_values(x)
    if len(best):
        ax.plot(best["at"], 100 * best["mean"], color="black", lw=1, ls="--", zorder=2, label="frontier")
        ax.scatter(best["at"], 100 * best["mean"], s=140, facecolors="none", edgecolors="black", lw=0.8, zorder=2)
    for label, c in colors.items():
        ax.scatter([], [], color=c, marker="o", s=30, label=label)
    for ev, m in markers.items():
        ax.scatter([], [], color="gray", marker=m, s=30, label=ev)
    if p["reference"].any():
        ax.scatter([], [], color="white", edgecolors="gray", marker="o", s=60, label="reference (hollow)")
    ax.legend(fontsize=7, loc="best")
    if p["at"].notna().any():   # equal computes stay visibly equal: at least +-10% of the largest around them
        lo, hi, big = p["at"].min(), p["at"].max(), p["at"].abs().max()
        if hi - lo < 0.2 * big:
            mid = (lo + hi) / 2
            ax.set_xlim(mid - 0.15 * big, mid + 0.15 * big)
    ax.set(xlabel=f"{frontier.COMPUTE[x]}; equal ones nudged apart", ylabel="validation accuracy (%), mean and 95% CI",
           title=f"Frontier against {x} (dashed: the points no other beats on both)")
    ax.grid(alpha=0.3)
