"""Tables and run folders written by older versions, brought to today's schema once, as today's code reads them.

A table is upgraded in memory when it is loaded and written back with the next append; config ids never change.
"""
from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd

from ..recipes import registry
from ..recipes.recipe import LEGACY, Recipe
from ..recipes.identity import METADATA, changes
from ..recipes.overrides import apply_overrides
from .schema import COLUMNS, MEANING, METRICS, _cell, meaning, result_row, row_auto, row_recipe


def upgrade(old: pd.DataFrame) -> pd.DataFrame:
    """A table from an older version, with today's columns.

    Before config ids (a column `experiment`, no recipe): each row's recipe is read from its run folder's
    recipe.json, or else rebuilt from the registered recipe of that name and the columns the row has; its
    context is what differs from the registered recipe. A newer recipe field missing from the table gets its
    default (a field's default keeps the behaviour it had before the field existed), or its LEGACY value where the
    default is decided when a run starts (precision: every older run trained in fp32); `auto` too. A row from
    before rows said what they mean gets its label, role and reference now, derived as `schema.meaning` derives
    them when a run is planned (role: recipe); its dataset identity stays unknown.
    """
    registry.load_named()   # what a row means is derived from the named experiments: all of them, not what is loaded
    if "experiment" in old.columns:
        return pd.DataFrame([_upgrade_row(r) for _, r in old.iterrows()], columns=COLUMNS)
    defaults = {f.name: _cell(LEGACY.get(f.name, f.default)) for f in fields(Recipe)}
    defaults["auto"] = json.dumps(LEGACY, sort_keys=True)
    table = old.assign(**{c: defaults.get(c, "") for c in COLUMNS if c not in old.columns})[COLUMNS]
    if "label" not in old.columns:
        derived = pd.DataFrame([row_meaning(r) for _, r in table.iterrows()], columns=MEANING, index=table.index)
        table[MEANING] = derived
    return table


def row_meaning(row) -> dict:
    """What an older row means, derived from its recipe, context and `auto`, with today's registry."""
    return meaning(row_recipe(row), json.loads(row["context"] or "{}"), "recipe", row_auto(row))


def saved_meaning(saved: dict, recipe: Recipe) -> dict:
    """What a run folder's row means: as its recipe.json recorded it, or for an older folder derived now."""
    return saved.get("meaning") or meaning(recipe, saved.get("context", {}), "recipe", row_auto(saved))


def _upgrade_row(old) -> dict:
    registered = registry.registered(old["experiment"])
    saved = Path(str(old.get("run_dir", ""))) / "recipe.json"
    try:
        d = json.loads(saved.read_text())
        recipe = Recipe.from_dict({**LEGACY, **d, "dataset": _dataset(d.get("dataset", ""), d.get("dataset_path"))})
    except (OSError, ValueError, TypeError):
        d = {}
        base = registered or Recipe(name=old["experiment"])
        cols = {k: old[k] for k in ("size", "epochs", "arch", "bs", "lr", "seed") if old.get(k, "") != ""}
        recipe = apply_overrides(base, {**cols, "dataset": _dataset(old["dataset"])})
    # Before the `loader` column existed every run read the image folder.
    recipe = replace(recipe, loader=old.get("loader") or d.get("loader") or "folder", **LEGACY)
    if registered is not None:
        recipe = replace(recipe, parent=registered.parent)
        context = {k: str(v) for k, v in changes(recipe, registered, skip=METADATA).items()}
    else:
        context = {}
    metrics = {k: old.get(k, "") for k in METRICS}
    row = result_row(recipe, context, Path(str(old.get("run_dir", ""))), metrics, dict(LEGACY),
                     meaning(recipe, context, "recipe", dict(LEGACY)))
    return {**row, "run_id": old["run_id"], "finished_at": old.get("finished_at", "")}


def _dataset(name: str, path: str | None = None) -> str:
    from ..data.datasets import DOWNLOADS, EMBEDDED
    if name in EMBEDDED or name in DOWNLOADS:
        return name
    return str(Path(path or name).expanduser().resolve())
