"""A recipe as it will run, and what it is compared with: its dataset and size, its precision and memory format,
under budget=pixels the pixels its reference spends, and its reference (its parent, else the baseline, under the
same context). The planner resolves each job here; so does a row of an older table, once (toolkit/records/migrate.py).
"""
from __future__ import annotations

import functools
import json
from dataclasses import replace

from ..data import datasets
from ..recipes import registry
from ..recipes.components import with_code
from ..recipes.recipe import Recipe
from ..recipes.stages import epoch_plan, plan_pixels
from ..recipes.overrides import apply_overrides
from . import precision


def resolve_recipe(recipe: Recipe, context: dict, against: str | None = None, auto: dict | None = None,
                   code: bool = True) -> Recipe:
    """A recipe as it will run: its dataset and size (`datasets.with_dataset`), its precision and memory format
    (`precision.decide`: `auto`, or this device's choice), the code of the components it names (`with_code`: each
    checked against its factory), then, under budget=pixels, the pixels per image its reference spends at its own
    epochs (`budget_pixels`), which the stage plan then spends."""
    r = precision.decide(datasets.with_dataset(recipe), auto)
    if code:
        r = with_code(r)
    if r.budget == "pixels" and not r.budget_pixels:
        ref = _nominal(registry.reference_name(r, against), json.dumps(context, sort_keys=True))
        r = replace(r, budget_pixels=plan_pixels(epoch_plan(ref, ref.size)))
    return r


def reference_recipe(recipe: Recipe, context: dict, against: str | None = None, auto: dict | None = None) -> Recipe:
    """The resolved recipe that `recipe` is compared with: its reference under the same context (and, for a recorded
    run, with `auto` as it meant when the run was planned)."""
    name = registry.reference_name(recipe, against)
    ref = _reference(name, json.dumps(context, sort_keys=True), against, json.dumps(auto, sort_keys=True))
    return with_code(ref)   # outside the cache: a notebook may edit a component between two sweeps


@functools.lru_cache(maxsize=None)
def _reference(name: str, context_json: str, against: str | None, auto_json: str = "null") -> Recipe:
    return resolve_recipe(apply_overrides(registry.get(name), json.loads(context_json)), json.loads(context_json), against,
                          json.loads(auto_json), code=False)


@functools.lru_cache(maxsize=None)
def _nominal(name: str, context_json: str) -> Recipe:
    """The registered recipe `name` under a context, at its own epochs: what a pixel budget is taken from."""
    return datasets.with_dataset(apply_overrides(registry.get(name), json.loads(context_json)))
