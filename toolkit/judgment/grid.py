"""The best of a grid, said honestly: the values the data cannot tell from the best (a confidence set, not one
winner), the one a user would pick from it, and each value's mean and interval (toolkit/report/grid.py draws them).

A grid's rows are the variants of one recipe (`--vary lr=1e-3,3e-3,1e-2`); the recipe itself, their reference, is
one more value. Picking the best mean on the seeds that ranked it overstates what it buys (the winner's curse):
`toolkit run ... --confirm` measures the pick again on fresh seeds (toolkit/sweep/confirm.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from .. import stats
from ..recipes.identity import format_value
from .verdicts import best_set


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

    @property
    def positions(self) -> dict:
        """Each value of a 1-D grid where a figure places it: the varied key's value (the recipe's own for its
        column)."""
        key = self.keys[0]
        own = typed(self.own.split("=", 1)[1])
        return {c: typed(self.treatments[c][key]) if self.treatments.get(c) else own for c in self.accuracy.columns}

    @property
    def intervals(self) -> dict:
        """Each value's mean accuracy and 95% interval over its seeds (stats.mean_interval)."""
        return {c: stats.mean_interval(self.accuracy[c].values) for c in self.accuracy.columns}


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
            treatments[value] = {k: typed(mine.iloc[0][k]) for k in keys}
        table = pd.DataFrame(columns).dropna()   # the seeds every value has: paired
        if len(table) < stats.MIN_PAIRS:
            continue
        n_valid = pd.to_numeric(acc[acc["config_id"].isin([ref_id, *part["config_id"]])]["n_valid"],
                                errors="coerce").max()
        best = best_set(table, dirs, int(n_valid) if pd.notna(n_valid) else 0,
                                 question=str(part["question"].iloc[0]))
        pick = max(best, key=lambda v: table[v].mean())
        out.append(Grid(str(ref_rows.iloc[0]["name"]), keys, table, best, pick, own, treatments))
    return out


def _value(row, keys) -> str:
    return ", ".join(f"{k}={format_value(typed(row[k]))}" for k in keys)


def typed(v):
    """A table cell as the recipe holds it (the table is text): a number where it reads as one."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v.item() if hasattr(v, "item") else v
