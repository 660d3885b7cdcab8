"""What a run ran: the settings of a recipe that take effect (`effective`), and their id (`config_id`); how a
label shows a recipe's settings."""
from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from . import evaluations
from .recipe import LEGACY, Recipe

METADATA = ("name", "parent", "seed", "notes")  # describe a run, never change what it computes (seed: pooled)


def _inert(r: Recipe) -> set[str]:
    """Fields whose value cannot change this recipe's training, given its other fields."""
    hows = {st[3] for st in r.stages} if r.stages else {r.schedule}
    inert = {"label_delim"}                          # it only refuses a multi-label column: never changes training
    if r.stages:
        inert |= {"lr", "schedule"}                  # every stage names its own lr and schedule
    if "warmup_exp" not in hows:
        inert |= {"warmup_epochs", "hold_epochs", "lr_decay"}
    inert |= evaluations.unread(r)                   # what only an evaluation it does not ask for reads
    if r.budget != "pixels":
        inert.add("budget_pixels")
    if not (r.mixup and r.cutmix):
        inert.add("mix_switch")
    if not (r.mixup or r.cutmix):
        inert.add("mix_frac")
    if r.autoaug != "randaugment":
        inert |= {"autoaug_n", "autoaug_m"}
    if not r.autoaug:
        inert |= {"autoaug_ops", "autoaug_add"}
    if hows <= {"one_cycle", "fine_tune"}:
        inert.add("mom")                             # these schedules set momentum at every batch
    return inert


def _canonical(value, default):
    """A value as JSON data, typed like the field's default (2 and 2.0 are one presize; stages are lists)."""
    if isinstance(value, tuple):
        return [_canonical(v, None) for v in value]
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def effective(recipe: Recipe) -> dict:
    """The settings that take effect and differ from the defaults: what makes two runs the same experiment.

    Fields at their default are left out, so a field added later (at a default that keeps today's behaviour)
    does not change any existing id; so are fields at their LEGACY value. Metadata (name, parent, seed, notes) too.
    """
    inert = _inert(recipe)
    out = {}
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        if f.name in METADATA or f.name in inert or value == f.default or LEGACY.get(f.name, _MISSING) == value:
            continue
        out[f.name] = True if f.name == "tta" and value == "fastai" else _canonical(value, f.default)
    return out   # tta: "fastai" alone hashes as `true` did before the other modes, so such runs keep their id


def config_id(recipe: Recipe) -> str:
    """A short hash of the canonical JSON of `effective(recipe)`; the recipe must be resolved (its size, precision
    and memory format known)."""
    if recipe.size is None or recipe.precision == "auto" or recipe.channels_last is None:
        raise ValueError(f"config_id needs a resolved recipe (size, precision and channels_last known); "
                         f"{recipe.name!r} has size={recipe.size}, precision={recipe.precision}, "
                         f"channels_last={recipe.channels_last}")
    canonical = json.dumps(effective(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def format_value(value) -> str:
    """A value as a label shows it: `lr=0.01`, `stages=((0.5, ...),)`, `callbacks=clip(max_norm=0.5)`."""
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)   # components, as a recipe names them
    return repr(value) if isinstance(value, (float, tuple)) else str(value)


def label(name: str, items: dict) -> str:
    """A row's label: the name plus settings, `baseline [lr=0.01]`; a variant's own bracket takes them in."""
    if not items:
        return name
    text = ", ".join(f"{k}={v}" for k, v in items.items())
    return f"{name[:-1]}, {text}]" if name.endswith("]") else f"{name} [{text}]"


def changes(recipe: Recipe, base: Recipe, skip=()) -> dict:
    """{field: value} where `recipe` takes effect differently from `base` (fields in `skip` left out)."""
    a, b = effective(recipe), effective(base)
    keys = [f.name for f in fields(Recipe) if f.name not in skip]
    return {k: getattr(recipe, k) for k in keys if a.get(k, _MISSING) != b.get(k, _MISSING)}


_MISSING = object()
