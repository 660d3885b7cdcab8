"""How a trained model is evaluated: its plain accuracy, and the other evaluations a recipe asks for, each with
its accuracy and its seconds. None changes how the model trained; they are ways to evaluate the same training.

    plain    the last epoch's validation: the images resized to the training size, one pass
    fastai   `Learner.tta(n, beta)`: n passes with the training augmentation averaged, then lerped with the plain
             prediction by beta (fastai's own TTA; `tta=true` means it)
    flip     the image and its horizontal mirror, probabilities averaged (as airbench and FFCV evaluate)
    crops    5 tiles of the training size (the four corners and the centre) from a view at CROP_VIEW x the
             training size, probabilities averaged. Why these: a random training crop covers 75-100% of an image
             (min_scale 0.75), so objects are seen up to ~1.15x larger than the whole image shows them; at a
             1.25x view the tiles show them at about that scale, and the corners overlap their neighbours by 75%
             of a side, so every part of the view is seen by several tiles
    hires    the validation images at eval_scale x the training size (default 1.15), one pass, no augmentation
             (FixRes: a model trained on random crops sees objects larger than a plain resize shows them)
    ema      the weights' moving average (`WeightEMA`), validated as the plain model is

Each is declared once in toolkit/recipes/evaluations.py (its key, names, the fields it reads); here is how it
runs (`RUNNERS`). Each reports accuracy_<key> and <key>_seconds, and the class it predicted for every validation
image (`KeepPredictions`, from the passes it makes anyway: the plain one from the last epoch's validation).
Evaluation logs no epoch and writes no checkpoint: those callbacks are removed while it lasts.
"""
from __future__ import annotations

import time

import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.metrics import accuracy

from .. import display
from ..errors import RecipeError
from ..recipes.recipe import Recipe
from ..recipes import evaluations
from ..recipes.evaluations import CROP_VIEW
from .callbacks import Checkpoints, EpochLog


def check(recipe: Recipe, ds) -> None:
    """Refuse, before anything trains, an evaluation the dataset cannot have: a mirror where mirroring changes
    the label."""
    mirrored = [e.mode for e in evaluations.asked(recipe) if e.mirrors]
    if mirrored and not ds.flips:
        where = ("a mirrored digit is another symbol or none" if ds.name == "digits" else
                 "its folder's dataset.json says \"flip\": false")
        others = ", ".join(e.mode for e in evaluations.SPECS if e.via_tta and not e.mirrors)
        raise RecipeError(f"Recipe {recipe.name!r} asks for tta={mirrored[0]} on {ds.name}, where flipping an image "
                          f"changes its label ({where}), so the mirrored image would be judged against the wrong "
                          f"class. Use tta={others} there (fastai's TTA draws the dataset's own augmentation, "
                          f"without flips).")


class KeepPredictions(Callback):
    """The class predicted for each image of the latest validation pass, with its target, in the loader's order:
    what a run keeps (`predictions.npz`) so that a comparison can count the images two recipes disagree on."""
    order = MixedPrecision.order + 2   # after Views has averaged a pass's views

    def __init__(self):
        self.preds, self.targs = [], []

    def before_validate(self):
        self.preds, self.targs = [], []

    def after_batch(self):
        if not self.training:
            self.preds.append(self.pred.detach().argmax(-1).cpu())
            self.targs.append(self.yb[0].detach().cpu())

    def take(self):
        """(predicted classes, targets) of the latest validation pass, as numpy arrays; None if there was none."""
        if not self.preds:
            return None
        out = torch.cat(self.preds).numpy(), torch.cat(self.targs).numpy()
        self.preds, self.targs = [], []
        return out


def evaluate(learn, recipe: Recipe, data=None, progress: str = "none", num_workers: int | None = None) -> dict:
    """The plain accuracy and loss (the last epoch's; a run resumed after its last epoch validates the restored
    model), then each evaluation `recipe` asks for, in a fixed order: fastai's TTA first (it draws from the random
    generators, which are then where an uninterrupted run has them), then flip, crops, hires and ema. With a
    `KeepPredictions` among the learner's callbacks, `predictions` holds what each evaluation predicted for every
    validation image (`predictions`)."""
    quiet = [cb for cb in learn.cbs if isinstance(cb, (EpochLog, Checkpoints))]
    log = next((cb for cb in quiet if isinstance(cb, EpochLog)), None)
    keep = next((cb for cb in learn.cbs if isinstance(cb, KeepPredictions)), None)
    kept = {}
    with learn.removed_cbs(quiet):
        if getattr(learn.recorder, "values", None):
            values = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
            metrics = {"accuracy": float(values["accuracy"]), "valid_loss": float(values["valid_loss"]),
                       "eval_seconds": round(log.valid_seconds, 3) if log else None}
        else:
            t = time.perf_counter()
            valid_loss, acc = learn.validate()[:2]
            metrics = {"accuracy": float(acc), "valid_loss": float(valid_loss),
                       "eval_seconds": round(time.perf_counter() - t, 3)}
        kept["plain"] = keep.take() if keep else None
        size = data.plan[-1][0] if data is not None else recipe.size   # the last stage's: the size it ends at
        asked = evaluations.asked(recipe)
        for e in asked:
            t = time.perf_counter()
            acc, predicted = RUNNERS[e.mode](learn, recipe, data, size, num_workers)
            metrics[f"accuracy_{e.key}"], metrics[f"{e.key}_seconds"] = acc, round(time.perf_counter() - t, 3)
            taken = keep.take() if keep else None
            kept[e.key] = (predicted, taken[1]) if predicted is not None and taken else taken
            display.line(f"{e.line(recipe, size)}: accuracy {100 * acc:.1f}% in {metrics[f'{e.key}_seconds']:.1f}s",
                      progress)
    if evaluations.BY_MODE["fastai"] in asked:
        metrics.update(tta_n=recipe.tta_n, tta_beta=recipe.tta_beta)
    if keep and data is not None and all(v is not None for v in kept.values()):
        metrics["predictions"] = predictions(kept, data)
    return {k: v for k, v in metrics.items() if v is not None}


def predictions(kept: dict, data) -> dict:
    """What each evaluation predicted, in the canonical order of the validation files (their relative paths,
    sorted, so the packed and the folder loader agree): {key: classes, "labels": targets, "valid_hash": hash of
    those paths}. The classes are indices into the dataset's sorted classes, as uint8 where they fit."""
    import numpy as np

    from ..data.datasets import files_hash
    from ..data.pipeline import valid_files
    files = valid_files(data)
    order = np.argsort(np.array(files, dtype=object), kind="stable")
    dtype = np.uint8 if len(data.ds.classes) <= 256 else np.int32
    out = {}
    for key, (pred, targ) in kept.items():
        if len(pred) != len(files):
            return {}   # a loader that dropped images: nothing to align, nothing kept
        out[key] = pred[order].astype(dtype)
        out.setdefault("labels", targ[order].astype(dtype))
    out["valid_hash"] = files_hash(files)
    return out


class Views(Callback):
    """Evaluate each image as several views of it (`views(x)` -> a list of batches), their probabilities averaged:
    one forward pass over all views. The prediction becomes the log of the mean probability, so fastai's loss
    and accuracy read it as they read logits."""
    order = MixedPrecision.order + 1   # after autocast has turned the prediction back to fp32

    def __init__(self, views):
        self.views, self.k = views, 1

    def before_batch(self):
        vs = self.views(self.xb[0])
        self.k = len(vs)
        self.learn.xb = (torch.cat(vs),)

    def after_pred(self):
        p = self.pred.float().softmax(-1)
        self.learn.pred = p.view(self.k, -1, p.shape[-1]).mean(0).log()


def _accuracy(learn, dl=None, cbs=None) -> float:
    return float(learn.validate(dl=dl, cbs=cbs)[1])


def _fastai(learn, recipe, data, size, num_workers):
    preds, targs = learn.tta(n=recipe.tta_n, beta=recipe.tta_beta)
    return float(accuracy(preds, targs)), preds.argmax(-1).numpy()   # several passes: the result, not the last one


def _flip(learn, recipe, data, size, num_workers):
    return _accuracy(learn, cbs=[Views(lambda x: [x, x.flip(-1)])]), None   # None: KeepPredictions saw the pass


def _tiles(x, size: int):
    """The four corners and the centre of a batch of views, each `size` px square."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    at = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    return [x[..., i:i + size, j:j + size] for i, j in at]


def _crops(learn, recipe, data, size, num_workers):
    dls = _dataloaders(recipe, data, round(CROP_VIEW * size), size, num_workers)
    return _accuracy(learn, dl=dls.valid, cbs=[Views(lambda x: _tiles(x, size))]), None


def _hires_accuracy(learn, recipe, data, size, num_workers):
    return _accuracy(learn, dl=_dataloaders(recipe, data, round(recipe.eval_scale * size), size, num_workers).valid), None


def _ema(learn, recipe, data, size, num_workers):
    raw, learn.model = learn.model, learn.weight_ema.model
    try:
        return _accuracy(learn), None
    finally:
        learn.model = raw


def _dataloaders(recipe, data, view: int, size: int, num_workers):
    """The recipe's validation images at `view` px, normalized as the model was trained (the statistics at `size`)."""
    from ..data.pipeline import dataloaders
    if data is None:
        raise RecipeError(f"Recipe {recipe.name!r}: tta=crops and tta=hires read the validation images again at "
                          f"another size, so `evaluate` needs the run's data (`pipeline.prepare(recipe)`).")
    return dataloaders(recipe, data, view, num_workers=num_workers, stats_size=size)


# How each evaluation of toolkit/recipes/evaluations.py runs: (learn, recipe, data, size, num_workers) -> (accuracy,
# the classes it predicted, or None where its one pass went through KeepPredictions).
RUNNERS = {"fastai": _fastai, "flip": _flip, "crops": _crops, "hires": _hires_accuracy, "ema": _ema}
