"""run(recipe) -> metrics: build the Learner, fit its stages, evaluate (and TTA). Nothing here knows the results table.

Data flows one way: a resolved recipe -> its data (toolkit/pipeline.py) -> a Learner -> metrics; the caller
(toolkit/sweep.py, or a notebook) records them (toolkit/runs.py).
"""
from __future__ import annotations

import contextlib
import csv
import signal
import threading
import time
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.callback.progress import ProgressCallback  # noqa: F401  (progress bars, Learner.no_bar)
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (Learner.fit_one_cycle, fit_flat_cos, fine_tune)
from fastai.learner import Learner, Recorder
from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
from fastai.metrics import accuracy
from fastai.torch_core import set_seed

from . import schedule
from .data import resolve
from .mix import Mix
from .models import check_arch, check_weights, create_model
from .pipeline import Data, dataloaders, prepare
from .recipe import Recipe


class EpochLog(Callback):
    """Append each finished epoch's metrics and compute to a CSV, flushed at once, so an interrupted run keeps them.

    Compute: the training images and pixels (images x size^2, what progressive resizing saves and what does not
    depend on machine load) and the seconds of the train phase. Hand-written because fastai's CSVLogger restarts
    per fit() and cannot add the stage, size and compute columns.
    """
    order = Recorder.order + 1  # after the Recorder has computed this epoch's values

    def __init__(self, path: Path | None):
        self.path, self.stage, self.size, self.epoch_done = path and Path(path), 0, 0, 0
        self.train_seconds, self.train_images, self.train_pixels = 0.0, 0, 0

    def before_train(self):
        self._t, self._n, self._px = time.perf_counter(), 0, 0

    def after_batch(self):
        if self.training:
            x = self.learn.xb[0]
            self._n += len(x)
            self._px += len(x) * x.shape[-2] * x.shape[-1]

    def after_train(self):
        self._epoch_seconds = time.perf_counter() - self._t
        self.train_seconds += self._epoch_seconds
        self.train_images += self._n
        self.train_pixels += self._px

    def after_epoch(self):
        names = self.learn.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        row = {"epoch": self.epoch_done, "stage": self.stage, "size": self.size,
               **dict(zip(names, self.learn.recorder.values[-1])),
               "train_seconds": round(self._epoch_seconds, 3),
               "images_per_second": round(self._n / max(self._epoch_seconds, 1e-9), 2),
               "images": self._n, "pixels": self._px}
        self.epoch_done += 1
        if self.path is None:
            return
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
            fh.flush()


class DeferInterrupt(Callback):
    """Turn Ctrl-C into KeyboardInterrupt at the next batch boundary; a second Ctrl-C interrupts at once.

    Hand-written because Python swallows a KeyboardInterrupt that lands inside a finaliser, and fastai's
    DataLoaders shut their workers down in one at the end of every epoch, just where a user tends to press it.
    """
    order = -100

    def before_fit(self):
        self.requested, self.old = False, None
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handler)

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def before_batch(self):
        if self.requested:
            raise KeyboardInterrupt

    after_epoch = before_validate = before_batch

    def after_fit(self):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None


def build_learner(recipe: Recipe, dls, cbs=()) -> Learner:
    """The recipe's model, loss and callbacks on `dls`: the part of a run a notebook may want alone."""
    loss = (LabelSmoothingCrossEntropy(eps=recipe.label_smoothing) if recipe.label_smoothing
            else CrossEntropyLossFlat())
    if recipe.cutmix or (recipe.mixup and recipe.mix_frac < 1):
        extra = [Mix(recipe.mixup, recipe.cutmix, recipe.mix_switch, recipe.mix_frac)]
    else:
        extra = [MixUp(recipe.mixup)] if recipe.mixup else []
    return Learner(dls, create_model(recipe.arch, dls.c, recipe.weights), loss_func=loss, metrics=accuracy,
                   cbs=[*extra, *cbs])


def run(recipe: Recipe, data: Data | None = None, log: str | Path | None = None, quiet: bool = False,
        num_workers: int | None = None, cbs=()) -> dict:
    """Train and evaluate one recipe; returns its metrics. Ctrl-C raises KeyboardInterrupt at a batch boundary.

    `data`: from `pipeline.prepare(recipe)` (made here if not given). `log`: a CSV file that gets one row per
    finished epoch, flushed at once, so an interrupted run keeps its finished epochs.
    """
    recipe = resolve(recipe)
    check_arch(recipe.arch)                      # fail before any data work
    check_weights(recipe.arch, recipe.weights)
    data = data or prepare(recipe, quiet=quiet)
    set_seed(recipe.seed, reproducible=True)
    epochs, interrupt = EpochLog(log), DeferInterrupt()
    learn = build_learner(recipe, dataloaders(recipe, data, data.plan[0][0], num_workers=num_workers),
                          cbs=[epochs, interrupt, *cbs])
    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if quiet:
                stack.enter_context(learn.no_bar())
                stack.enter_context(learn.no_logging())
            for i, (size, n, lr, how) in enumerate(data.plan):
                if i and size != data.plan[i - 1][0]:   # progressive resizing: swap the data only
                    learn.dls = dataloaders(recipe, data, size, num_workers=num_workers)
                epochs.stage, epochs.size = i, size
                schedule.fit(learn, n, lr, how, recipe)
            metrics = evaluate(learn, recipe)
    finally:
        interrupt.after_fit()  # fastai skips after_fit when fit ends in an exception: restore Ctrl-C here too
    return {**metrics, "wall_seconds": round(time.perf_counter() - t0, 3),
            "train_seconds": round(epochs.train_seconds, 3),
            "images_per_second": round(epochs.train_images / max(epochs.train_seconds, 1e-9), 2),
            "images_seen": epochs.train_images, "pixels_seen": epochs.train_pixels,
            "threads": torch.get_num_threads(), "device": str(learn.dls.device),
            "epochs_done": epochs.epoch_done, "n_train": data.ds.n_train, "n_valid": len(data.ds.files["val"])}


def evaluate(learn: Learner, recipe: Recipe) -> dict:
    """Final validation accuracy and loss (from the last epoch), and with `recipe.tta` the accuracy under TTA."""
    values = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
    metrics = {"accuracy": float(values["accuracy"]), "valid_loss": float(values["valid_loss"])}
    if recipe.tta:
        t = time.perf_counter()
        preds, targs = learn.tta(n=recipe.tta_n, beta=recipe.tta_beta)
        metrics.update(accuracy_tta=float(accuracy(preds, targs)), tta_n=recipe.tta_n, tta_beta=recipe.tta_beta,
                       tta_seconds=round(time.perf_counter() - t, 3))
    return metrics
