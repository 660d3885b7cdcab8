"""A recipe's schedule as stages: (size px, epochs, lr, how) each, from its `stages` and `epochs`, and under
budget=pixels respent to the pixels its reference spends."""
from __future__ import annotations

import math

from ..errors import RecipeError
from .recipe import Recipe

def stage_plan(recipe: Recipe, size: int) -> list[tuple[int, int, float, str]]:
    """The schedule as (size_px, epochs, lr, how) per stage.

    budget=epochs: the stage epochs add up to `recipe.epochs`. budget=pixels: then the lower-resolution stages
    get as many epochs as `budget_pixels` allows (see `pixel_plan`).
    """
    plan = epoch_plan(recipe, size)
    if recipe.budget != "pixels":
        return plan
    if not recipe.budget_pixels:
        raise RecipeError(f"Recipe {recipe.name!r} has budget=pixels but no budget_pixels: a sweep sets it from the "
                          f"reference's pixels (`toolkit run ... --budget pixels`), or set it with --set budget_pixels=N.")
    return pixel_plan(plan, recipe.budget_pixels, recipe.name)


def epoch_plan(recipe: Recipe, size: int) -> list[tuple[int, int, float, str]]:
    """`recipe.epochs` shared out over the stages by their epoch_share (largest remainder: exactly `epochs`)."""
    stages = recipe.stages or ((1.0, 1.0, recipe.lr, recipe.schedule),)
    if len(stages) > recipe.epochs:
        raise RecipeError(f"Recipe {recipe.name!r} has {len(stages)} stages but only {recipe.epochs} epochs: "
                          f"every stage needs at least one epoch; raise --epochs.")
    total = sum(s[1] for s in stages)
    raw = [recipe.epochs * s[1] / total for s in stages]
    n = [max(1, int(r)) for r in raw]
    order = sorted(range(len(stages)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order:
        if sum(n) >= recipe.epochs:
            break
        n[i] += 1
    while sum(n) > recipe.epochs:  # only when max(1, ...) pushed a tiny share up
        n[n.index(max(n))] -= 1
    return [(max(8, round(size * s[0])), k, float(s[2]), s[3]) for s, k in zip(stages, n)]


def plan_pixels(plan) -> int:
    """Pixels a plan spends per training image: the sum over its stages of epochs x size^2."""
    return sum(k * px * px for px, k, _, _ in plan)


def pixel_plan(plan, budget: int, name: str = "recipe") -> list[tuple[int, int, float, str]]:
    """`plan` respent to `budget` pixels per image: the full-size stages keep their epochs, the lower-resolution
    stages get more (or fewer) epochs, rounded down, so that the plan spends the budget to within one epoch of
    its smallest stage. A plan with one stage size keeps its epochs: its pixels are its own."""
    full = max(px for px, _, _, _ in plan)
    low = [i for i, (px, _, _, _) in enumerate(plan) if px < full]
    if not low:
        return list(plan)
    fixed = plan_pixels([st for st in plan if st[0] == full])
    low_pixels = plan_pixels([plan[i] for i in low])
    spare = budget - fixed
    if spare < sum(plan[i][0] ** 2 for i in low):
        raise RecipeError(f"Recipe {name!r}: a budget of {budget:,} pixels per image leaves too little for its "
                          f"lower-resolution stages after {fixed:,} at full size; give the reference more epochs.")
    epochs = [k for _, k, _, _ in plan]
    for i in low:  # scale every lower-resolution stage alike, rounded down...
        epochs[i] = max(1, math.floor(plan[i][1] * spare / low_pixels))
    grown = True
    while grown:   # ...then add whole epochs, lowest resolution first, while they fit
        grown = False
        for i in sorted(low, key=lambda i: plan[i][0]):
            cost = plan[i][0] ** 2
            if fixed + sum(epochs[j] * plan[j][0] ** 2 for j in low) + cost <= budget:
                epochs[i] += 1
                grown = True
    return [(px, e, lr, how) for (px, _, lr, how), e in zip(plan, epochs)]
