"""A 1-D grid drawn: accuracy against the varied value, each value's mean and interval, its seeds, the confidence
set of the best (toolkit/judgment/grid.py computes them)."""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_atomic
from ..judgment.grid import Grid
from .tables import seed_ranges


def lines(grid: Grid) -> list[str]:
    """The best of a grid in two sentences: the confidence set with its means, and the pick."""
    seeds = seed_ranges([int(s) for s in grid.accuracy.index])
    mean = grid.accuracy.mean()
    best = ", ".join(f"{v} ({100 * mean[v]:.1f}%)" for v in grid.best)
    k = grid.accuracy.shape[1]
    return [f"Best of the grid of {grid.recipe} over {', '.join(grid.keys)} ({k} values with its own, "
            f"{len(grid.accuracy)} paired seeds: {seeds}): the values the data cannot tell from the best are "
            f"{best}: each one no other value beats (one-sided paired t test at 5% / {k - 1}).",
            f"Picked by mean among them: {grid.pick}" + (" (the recipe's own value: nothing to confirm)"
                                                         if grid.pick == grid.own else
                                                         f". Its Δ here is measured on the seeds that picked it, so "
                                                         f"it is biased upward: --confirm measures it again on "
                                                         f"fresh seeds.")]


def figure(grid: Grid, path) -> Path:
    """A 1-D grid: accuracy against the varied value (log axis when the values span 10x or more, as learning rates
    do), each value's mean and 95% interval, its seeds as points, the recipe's own value as a band, the confidence
    set of the best marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    key, xs = grid.keys[0], grid.positions
    fig, ax = plt.subplots(figsize=(7, 4.5))
    intervals = grid.intervals
    ref = intervals[grid.own]
    ax.axhspan(100 * ref.low, 100 * ref.high, color="0.9", label=f"{grid.recipe} ({grid.own}), 95% CI")
    for c, x in sorted(xs.items(), key=lambda kv: kv[1]):
        e = intervals[c]
        colour = "tab:green" if c in grid.best else "tab:blue"
        ax.errorbar([x], [100 * e.mean], yerr=[[100 * (e.mean - e.low)], [100 * (e.high - e.mean)]], fmt="o",
                    color=colour, capsize=4, ms=7, zorder=3)
        ax.scatter([x] * len(grid.accuracy), 100 * grid.accuracy[c].values, color=colour, alpha=0.35, s=14, zorder=2)
    ax.scatter([], [], color="tab:green", label="cannot be told from the best")
    ax.scatter([], [], color="tab:blue", label="beaten by some value")
    numbers = [x for x in xs.values() if isinstance(x, (int, float))]
    if numbers and min(numbers) > 0 and max(numbers) / min(numbers) >= 10:
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel="accuracy % (mean, 95% CI; seeds as points)",
           title=f"{grid.recipe}: {key} grid, {len(grid.accuracy)} paired seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = write_atomic(Path(path), lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return out
