"""A recipe's optimizer: one of fastai's by name (`opt`), or a registered one, with the recipe's `wd`, `mom`,
`sqr_mom` and `eps` where given (None leaves each at the optimizer's own default, as fastai has it)."""
from __future__ import annotations

import functools
import inspect

from fastai.optimizer import SGD, Adam, Lamb, QHAdam, RAdam, RMSProp, ranger

from ..errors import RecipeError
from ..recipes import components
from ..recipes.recipe import Recipe
from ..recipes.identity import effective
from ..recipes.vocabulary import OPTIMIZERS

FASTAI = {"adam": Adam, "sgd": SGD, "ranger": ranger, "lamb": Lamb, "rmsprop": RMSProp, "radam": RAdam,
          "qhadam": QHAdam}
assert tuple(FASTAI) == OPTIMIZERS, "vocabulary.OPTIMIZERS names the optimizers built here"
HYPERS = ("wd", "mom", "sqr_mom", "eps")


def hypers(recipe: Recipe) -> dict:
    """The recipe's optimizer settings that take effect (set, and not cycled by its schedule: see `Recipe.mom`)."""
    acting = effective(recipe)
    return {k: getattr(recipe, k) for k in HYPERS if k in acting}


def _accepts(func, keys) -> list[str]:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in keys if k not in params]


def check(recipe: Recipe, found=None) -> None:
    """Every setting given to the optimizer is one it takes: `opt=sgd` with `sqr_mom` is an error, before training.
    `found`: the registered optimizer the recipe names (component, keyword arguments), or None for fastai's."""
    given = hypers(recipe)
    func, kwargs = (FASTAI[recipe.opt], {}) if found is None else (found[0].factory, found[1])
    clash = sorted(set(kwargs) & set(given))
    if clash:
        raise RecipeError(f"opt={recipe.opt} sets {', '.join(clash)} itself and the recipe sets {', '.join(clash)} "
                          f"too: give it once.")
    refused = _accepts(func, given)
    if refused:
        takes = ", ".join(k for k in HYPERS if k in inspect.signature(func).parameters) or "none of them"
        raise RecipeError(f"opt={recipe.opt} takes no {', '.join(refused)} (of {', '.join(HYPERS)} it takes "
                          f"{takes}); leave {', '.join(refused)} unset.")


def opt_func(recipe: Recipe, found=None):
    """fastai's `opt_func` for the recipe: `(params, lr) -> Optimizer` (`found`: as `check` takes it)."""
    check(recipe, found)
    if found is None:
        return functools.partial(FASTAI[recipe.opt], **hypers(recipe))
    comp, kwargs = found
    return functools.partial(components.build, comp, {**kwargs, **hypers(recipe)})
