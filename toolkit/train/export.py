"""A trained run as a fastai export file: `Learner.export` of the folder pipeline with the run's weights, for
`load_learner` and `predict` on image files.

A packed run's learner cannot be exported as it is (its items have no `new_empty`, and `predict` needs a
`test_dl`), so the export builds the equivalent folder pipeline: fastai's DataBlock with the run's vocabulary (in
its class order), its normalization (the statistics the run trained with) and its evaluation resize at the final
training size. Only fastai's own objects go in it: the model, the loss, accuracy; none of the toolkit's callbacks.
An export file is a pickle: `load_learner` runs code from it, so open only files you made or trust.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fastai.learner import Learner
from fastai.metrics import accuracy

from ..atomic import write_atomic
from ..data.pipeline import batch_tfms, folder_dataloaders, normalize_stats, prepare
from ..errors import CheckpointError
from ..recipes.recipe import Recipe
from .learner import loss_of
from .models import model_of


def export(recipe: Recipe, weights: dict, out: str | Path, which: str = "model") -> Path:
    """Write the export file of a resolved `recipe` with `weights` (what --save-model keeps) to `out`."""
    if which not in weights:
        raise CheckpointError(f"These saved weights hold {', '.join(sorted(weights))}, not {which!r}"
                              + (" (the run had no weight average: ema=0)" if which == "ema" else "") + ".")
    data = prepare(recipe)                 # the run's own data: its pack gives the statistics it trained with
    size = data.plan[-1][0]
    stats = normalize_stats(recipe, data, size)
    folder = replace(recipe, loader="folder")
    dls = folder_dataloaders(data.ds, size, recipe.bs, batch_tfms(folder, data.ds, size, stats),
                             presize=recipe.presize, num_workers=0)
    model = model_of(replace(recipe, weights=""), dls.c)
    model.load_state_dict(weights[which])
    learn = Learner(dls, model, loss_func=loss_of(recipe), metrics=accuracy)
    return write_atomic(Path(out), lambda p: learn.export(Path(p).absolute()))
