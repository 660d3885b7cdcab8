"""A recipe's registered components (toolkit/recipes/components.py), built for its Learner: callbacks, loss and
batch transforms (models: toolkit/train/models.py; optimizers: toolkit/train/optimizers.py). Each is checked where
it meets fastai: a callback is a Callback, a loss that MixUp or CutMix mixes can give per-sample losses."""
from __future__ import annotations

import inspect

from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
from fasttransform import Transform

from ..errors import RecipeError
from ..recipes import components
from ..recipes.recipe import Recipe


def callbacks(own: dict) -> list[Callback]:
    """The recipe's registered callbacks (`own`: `recipes.components.by_field`), built in the order it names them."""
    out = []
    for comp, kwargs in own["callbacks"]:
        made = components.build(comp, kwargs)
        made = list(made) if isinstance(made, (list, tuple)) else [made]
        bad = [m for m in made if not isinstance(m, Callback)]
        if bad:
            raise RecipeError(f"The callback {comp.name!r} (from {comp.origin}) returned a {type(bad[0]).__name__}, "
                              f"not a fastai Callback (fastai.callback.core.Callback).")
        out += made
    return out


def loss(recipe: Recipe, own: dict):
    """The recipe's loss: a registered one (in `own`), else label-smoothed cross-entropy, else plain."""
    if not recipe.loss:
        return LabelSmoothingCrossEntropy(eps=recipe.label_smoothing) if recipe.label_smoothing else CrossEntropyLossFlat()
    if recipe.label_smoothing:
        raise RecipeError(f"loss={recipe.loss} and label_smoothing={recipe.label_smoothing}: label smoothing is a loss "
                          f"of its own (LabelSmoothingCrossEntropy); give the smoothing to your loss as an argument, "
                          f"or set one of the two.")
    comp, kwargs = own["loss"]
    made = components.build(comp, kwargs)
    if not callable(made):
        raise RecipeError(f"The loss {comp.name!r} (from {comp.origin}) returned a {type(made).__name__}, not a "
                          f"loss function (pred, target) -> loss.")
    if (recipe.mixup or recipe.cutmix) and not _reducible(made):
        raise RecipeError(f"The loss {comp.name!r} cannot be mixed (mixup/cutmix): fastai's MixUp and CutMix need "
                          f"each sample's loss, got by setting the loss's `reduction` attribute to 'none' or by "
                          f"calling it with reduction='none', as fastai's and torch's losses allow. Give your loss "
                          f"one of the two, or run it without mixing.")
    return made


def _reducible(loss) -> bool:
    """Whether fastai's NoneReduce can get per-sample losses from `loss` (as MixUp does)."""
    if hasattr(loss, "reduction"):
        return True
    try:
        params = inspect.signature(loss).parameters
    except (TypeError, ValueError):
        return False
    return "reduction" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class BatchTransforms(Callback):
    """The recipe's registered batch transforms, applied in order to each training batch (after normalization,
    before MixUp and CutMix, as fastai's batch_tfms are); validation batches are left alone."""
    order = MixUp.order - 1

    def __init__(self, tfms):
        self.tfms = tfms

    def before_batch(self):
        if not self.training:
            return
        x = self.learn.xb[0]
        for tfm in self.tfms:
            x = tfm(x, split_idx=0) if isinstance(tfm, Transform) else tfm(x)
        self.learn.xb = (x, *self.learn.xb[1:])


def batch_transforms(own: dict) -> list[Callback]:
    """A BatchTransforms callback for the recipe's registered `batch_tfms` (none without them)."""
    if not own["batch_tfms"]:
        return []
    tfms = []
    for comp, kwargs in own["batch_tfms"]:
        made = components.build(comp, kwargs)
        if not callable(made):
            raise RecipeError(f"The batch transform {comp.name!r} (from {comp.origin}) returned a "
                              f"{type(made).__name__}, not a callable batch -> batch.")
        tfms.append(made)
    return [BatchTransforms(tfms)]


def check(recipe: Recipe, own: dict) -> None:
    """Build the recipe's loss, callbacks and batch transforms once and check its optimizer's settings: a clash or
    an error in a factory shows before the first epoch of any run."""
    from . import optimizers
    optimizers.check(recipe, own["opt"])
    loss(recipe, own)
    callbacks(own)
    batch_transforms(own)
