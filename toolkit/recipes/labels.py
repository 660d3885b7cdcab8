"""How a recipe is labelled in a table: its name and the settings in which it differs from its registered self."""
from __future__ import annotations

import re

from . import registry
from .recipe import Recipe
from .identity import METADATA, changes, format_value, label

# Settings a table shows as columns (or once above it), not in the labels; budget_pixels follows from the budget.
SHOWN = ("dataset", "size", "epochs", "arch", "loader", "budget", "budget_pixels", "precision", "channels_last")
# Settings that follow from others: `code` is the hash of the components the recipe names (in its config id).
FOLLOWS = ("code",)


def label_of(recipe: Recipe) -> str:
    """`baseline [lr=0.01]`: the recipe's name and the settings in which it differs from its registered self."""
    return label(recipe.name, label_changes(recipe))


def label_changes(recipe: Recipe, context: dict | None = None, hide=()) -> dict[str, str]:
    """The settings a recipe's label adds to its name: where it differs from the registered recipe it stands for
    (for a variant `NAME [k=v]`: from NAME, beyond k; for a recipe never registered: its `context`).
    Settings shown as table columns are left out, and those in `hide`."""
    base, skip = registry.registered(recipe.name), {*METADATA, *SHOWN, *FOLLOWS, *hide}
    if base is None:
        bracket = re.fullmatch(rf"{re.escape(recipe.parent)} \[(.*)\]", recipe.name) if recipe.parent else None
        base = registry.registered(recipe.parent) if bracket else None
        if base is None:
            return {k: format_value(getattr(recipe, k)) for k in sorted(context or {}) if k not in skip}
        skip |= set(re.findall(r"(?:^|, )(\w+)=", bracket.group(1)))
    return {k: format_value(v) for k, v in changes(recipe, base, skip=skip).items()}
