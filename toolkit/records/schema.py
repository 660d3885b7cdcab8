"""A row of the results table: its columns, derived from the Recipe's fields and the evaluations, and what it means.

A row says everything a comparison needs, decided when its run is planned: its label, its role (a recipe asked for,
or a reference run so that another row can be compared), its reference (name, label, config id), what `auto`
meant, and the dataset's identity. The report pairs rows by these cells alone, never by today's registry.
"""
from __future__ import annotations

import json
import math
import types
import typing
import warnings
from dataclasses import fields
from pathlib import Path

from ..errors import ToolkitError
from ..recipes.recipe import LEGACY, Recipe
from ..recipes.identity import config_id, label
from ..recipes.evaluations import KEYS
from .folders import now

RECIPE_FIELDS = [f.name for f in fields(Recipe) if f.name not in ("name", "seed")]
# Each evaluation besides the plain one (toolkit/train/evaluation.py): its accuracy and its seconds.
EVALUATED = [c for key in KEYS for c in (f"accuracy_{key}", f"{key}_seconds")]
METRICS = ["accuracy", "valid_loss", *EVALUATED, "eval_seconds", "wall_seconds", "train_seconds",
           "images_per_second", "images_seen", "pixels_seen", "threads", "device", "epochs_done", "attempts",
           "restarted", "started_at", "n_train", "n_valid"]
# What a row means (see `meaning`); `reference` is the reference's label, `changes` the settings a label adds.
MEANING = ["label", "changes", "role", "reference", "reference_name", "reference_changes", "reference_config_id"]
ROLES = ("recipe", "reference")   # asked for by name | run so that another row has something to be compared with
COLUMNS = ["run_id", "name", "config_id", "seed", "context", "auto", *MEANING, "dataset_id", *METRICS, "finished_at",
           "run_dir", *RECIPE_FIELDS]
# The columns every version of the table has had: a table without one of them is damaged, not old.
ALWAYS = ("run_id", "seed", "accuracy", "run_dir")
NAMED_BY = (("name", "config_id"), ("experiment",))   # today's, or the first version's (before config ids)


def field_type(name: str):
    """A Recipe field's type, `X | None` read as X."""
    typ = typing.get_type_hints(Recipe)[name]
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    return args[0] if typing.get_origin(typ) in (typing.Union, types.UnionType) and len(args) == 1 else typ


# The columns that load back as numbers: the numeric metrics, the seed, and every recipe field whose type is a
# number (derived from the Recipe's type hints, so a new field needs no entry here).
NUMERIC = [*(m for m in METRICS if m not in ("device", "restarted", "started_at")), "seed",
           *(k for k in RECIPE_FIELDS if field_type(k) in (int, float))]


_RESOLVE = object()


def meaning(recipe: Recipe, context: dict, role: str = "recipe", auto: dict | None = None,
            reference: Recipe = _RESOLVE) -> dict:
    """What a row of `recipe` (resolved, under `context`) means: its label and the settings the label adds, its
    `role`, and its `reference`: its parent (else the baseline) under the same context, as the plan resolved it.

    A row of an older table (toolkit/records/migrate.py) gives no reference: it is resolved here, its parent (else
    the baseline) under the same context and `auto`. One that cannot be resolved (its experiment deleted, its
    data gone) leaves the reference cells empty, with a warning: such a row is shown without a difference."""
    from ..recipes.labels import label_changes
    hide = _resolved_reading(recipe, context)
    items = label_changes(recipe, context, hide)
    out = {"label": label(recipe.name, items), "changes": json.dumps(items), "role": role, "reference": "",
           "reference_name": "", "reference_changes": "{}", "reference_config_id": ""}
    ref = reference
    if reference is _RESOLVE:
        from ..train.resolve import reference_recipe
        try:
            ref = reference_recipe(recipe, context, None, auto)
        except (ToolkitError, ValueError) as e:
            warnings.warn(f"no reference for {recipe.name!r}, so no difference is shown for it: {e}", stacklevel=2)
            return out
    ref_items = label_changes(ref, hide=hide)
    return {**out, "reference": label(ref.name, ref_items), "reference_name": ref.name,
            "reference_changes": json.dumps(ref_items), "reference_config_id": config_id(ref)}


def _resolved_reading(recipe: Recipe, context: dict) -> set[str]:
    """The dataset options a label leaves out: those the user did not give (a CSV's columns found by default), its
    content hash, and the folder of a DataFrame (the working folder its file names were read from)."""
    from ..data.sources import OPTIONS, is_frame
    return ({"dataset_hash"} | {k for k in OPTIONS if k not in context}
            | ({"folder"} if is_frame(recipe.dataset) else set()))


def result_row(recipe: Recipe, context: dict, run_dir: Path, metrics: dict, auto: dict | None = None,
               meaning: dict | None = None, dataset_id: str = "") -> dict:
    """One row: the run's id, name, config_id, seed, context, `auto` (LEGACY when not known), what it means, the
    dataset's identity, its metrics, and the whole recipe, flattened."""
    flat = {k: _cell(v) for k, v in recipe.to_dict().items() if k in RECIPE_FIELDS}
    return {"run_id": run_dir.name, "name": recipe.name, "config_id": config_id(recipe), "seed": recipe.seed,
            "context": json.dumps(context, sort_keys=True), "auto": json.dumps(auto or LEGACY, sort_keys=True),
            **{k: (meaning or {}).get(k, "") for k in MEANING}, "dataset_id": dataset_id,
            **{k: metrics.get(k, "") for k in METRICS},
            "finished_at": now(), "run_dir": str(run_dir), **flat}


def row_auto(row) -> dict:
    """What `auto` meant when a row's run was planned. The one rule for a row or a run folder from before `auto`
    was recorded: LEGACY (fp32, contiguous), what every run did then."""
    cell = row.get("auto", "") if hasattr(row, "get") else ""
    if isinstance(cell, dict):
        return cell or dict(LEGACY)
    return json.loads(cell) if isinstance(cell, str) and cell else dict(LEGACY)


def row_recipe(row) -> Recipe:
    """The resolved recipe of a table row, read back from its flattened columns (each cell typed by its field)."""
    values = {"name": row["name"], "seed": int(float(row["seed"])), **{k: cell_value(k, row[k]) for k in RECIPE_FIELDS}}
    return Recipe.from_dict(values)


def cell_value(key: str, v):
    """A table cell of the recipe field `key` as the field's value (an empty cell: the field's default)."""
    typ = field_type(key)
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return None if key == "size" else "" if typ is str else Recipe.__dataclass_fields__[key].default
    if typing.get_origin(typ) is tuple:   # stages, callbacks, batch_tfms: JSON lists
        return tuple(tuple(x) if isinstance(x, list) else x for x in (json.loads(v) if isinstance(v, str) else v))
    if typ is bool:
        return str(v).lower() in ("true", "1", "1.0")
    if typ is int:
        return int(float(v))
    if typ is float:
        return float(v)
    return str(v)


def same_settings(a, b, skip=()) -> bool:
    """Whether two rows ran the same recipe fields, `skip` aside (each cell read as its field's value)."""
    return all(cell_value(k, a[k]) == cell_value(k, b[k]) for k in RECIPE_FIELDS if k not in skip)


def _cell(value):
    return json.dumps(value) if isinstance(value, tuple) else value
