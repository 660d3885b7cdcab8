"""The best of a grid, said honestly: the values the data cannot tell from the best (a confidence set, not one
winner), the one a user would pick from it, and a picture of a 1-D grid.

A grid's rows are the variants of one recipe (`--vary lr=1e-3,3e-3,1e-2`); the recipe itself, their reference, is
one more value. Picking the best mean on the seeds that ranked it overstates what it buys (the winner's curse):
`toolkit run ... --confirm` measures the pick again on fresh seeds (api.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import judgment, stats
from ..atomic import write_atomic
from ..recipes.identity import format_value
from .tables import seed_ranges


@dataclass
class Grid:
    """One recipe's grid: accuracy by seed (rows) and value (columns, the recipe's own value among them), the
    confidence set of the best, the pick (the best mean within it), and the treatment that makes the pick."""
    recipe: str
    keys: list[str]
    accuracy: pd.DataFrame
    best: list[str]
    pick: str
    own: str
    treatments: dict = field(default_factory=dict)   # value label -> {key: value}

    @property
    def pick_treatment(self) -> dict:
        return self.treatments.get(self.pick, {})

    def lines(self) -> list[str]:
        seeds = seed_ranges([int(s) for s in self.accuracy.index])
        mean = self.accuracy.mean()
        best = ", ".join(f"{v} ({100 * mean[v]:.1f}%)" for v in self.best)
        k = self.accuracy.shape[1]
        return [f"Best of the grid of {self.recipe} over {', '.join(self.keys)} ({k} values with its own, "
                f"{len(self.accuracy)} paired seeds: {seeds}): the values the data cannot tell from the best are "
                f"{best}: each one no other value beats (one-sided paired t test at 5% / {k - 1}).",
                f"Picked by mean among them: {self.pick}" + (" (the recipe's own value: nothing to confirm)"
                                                             if self.pick == self.own else
                                                             f". Its Δ here is measured on the seeds that picked it, so "
                                                             f"it is biased upward: --confirm measures it again on "
                                                             f"fresh seeds.")]


def grids(rows: pd.DataFrame, summary: pd.DataFrame, keys: list[str]) -> list[Grid]:
    """The grid of each recipe with two or more variants among `rows` (the sweep's runs, references included),
    over the varied `keys`."""
    out = []
    acc = rows.assign(accuracy=pd.to_numeric(rows["accuracy"], errors="coerce"))
    variants = summary[summary["delta_mean"].notna() & summary["name"].astype(str).str.contains(r"\[")]
    for ref_id, part in variants.groupby("reference_config_id", sort=False):
        if len(part) < 2:
            continue
        ref_rows = acc[acc["config_id"] == ref_id]
        if ref_rows.empty:
            continue
        own = _value(ref_rows.iloc[0], keys)
        columns, treatments = {own: ref_rows.groupby("seed")["accuracy"].mean()}, {own: {}}
        dirs = {own: ref_rows.groupby("seed")["run_dir"].last()}
        for cid in part["config_id"]:
            mine = acc[acc["config_id"] == cid]
            value = _value(mine.iloc[0], keys)
            columns[value] = mine.groupby("seed")["accuracy"].mean()
            dirs[value] = mine.groupby("seed")["run_dir"].last()
            treatments[value] = {k: _typed(mine.iloc[0][k]) for k in keys}
        table = pd.DataFrame(columns).dropna()   # the seeds every value has: paired
        if len(table) < stats.MIN_PAIRS:
            continue
        n_valid = pd.to_numeric(acc[acc["config_id"].isin([ref_id, *part["config_id"]])]["n_valid"],
                                errors="coerce").max()
        best = judgment.best_set(table, dirs, int(n_valid) if pd.notna(n_valid) else 0,
                                 question=str(part["question"].iloc[0]))
        pick = max(best, key=lambda v: table[v].mean())
        out.append(Grid(str(ref_rows.iloc[0]["name"]), keys, table, best, pick, own, treatments))
    return out


def _value(row, keys) -> str:
    return ", ".join(f"{k}={format_value(_typed(row[k]))}" for k in keys)


def _typed(v):
    """A table cell as the recipe holds it (the table is text): a number where it reads as one."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v.item() if hasattr(v, "item") else v


def figure(grid: Grid, path) -> Path:
    """A 1-D grid: accuracy against the varied value (log axis when the values span 10x or more, as learning rates
    do), each value's mean and 95% interval, its seeds as points, the recipe's own value as a band, the confidence
    set of the best marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    key = grid.keys[0]
    values = {c: _typed(grid.treatments[c][key]) if grid.treatments[c] else None for c in grid.accuracy.columns}
    own_x = next((_typed(c.split("=", 1)[1]) for c in [grid.own]), None)
    xs = {c: (own_x if v is None else v) for c, v in values.items()}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ref = stats.mean_interval(grid.accuracy[grid.own].values)
    ax.axhspan(100 * ref.low, 100 * ref.high, color="0.9", label=f"{grid.recipe} ({grid.own}), 95% CI")
    for c, x in sorted(xs.items(), key=lambda kv: kv[1]):
        e = stats.mean_interval(grid.accuracy[c].values)
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
