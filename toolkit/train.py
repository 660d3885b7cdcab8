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
from fastai.learner import Learner, Recorder
from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
from fastai.metrics import accuracy
from fastai.torch_core import set_seed

from . import checkpoint, schedule
from .atomic import write_atomic
from .data import resolve
from .errors import Terminated
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

    def counters(self) -> dict:
        return {"train_seconds": self.train_seconds, "train_images": self.train_images,
                "train_pixels": self.train_pixels, "epochs_done": self.epoch_done}

    def restore(self, counters: dict, lost_seconds: float = 0.0) -> None:
        """Go on from a checkpoint: its counters, plus the seconds of the epochs trained after it and lost."""
        self.train_seconds = counters["train_seconds"] + lost_seconds
        self.train_images, self.train_pixels = counters["train_images"], counters["train_pixels"]
        self.epoch_done = counters["epochs_done"]

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


class Checkpoints(Callback):
    """At every epoch end, take the state training needs to go on from there (`checkpoint.capture`); write it
    with `save(state)` at every stage's end and whenever `every` seconds have passed since the last write.

    `every` None: EVERY seconds, or 50 times what the last write took if that is longer, so that writing costs
    under 2% of the training time. The end of the last stage is written only with `keep_last` (the run is about to
    finish, and its checkpoint would be removed). `flush()` writes the last finished epoch's state if it is not
    written yet: what Ctrl-C and SIGTERM call.
    """
    order = EpochLog.order + 1  # after the epoch's row is logged
    EVERY = 60.0  # seconds: xresnet18 with Adam is about 130 MiB, written in well under a second

    def __init__(self, save, log: EpochLog, every: float | None = None, resume: dict | None = None,
                 keep_last: bool = False):
        self.save, self.log, self.every, self.resume, self.keep_last = save, log, every, resume, keep_last
        self.pending, self.cost, self.written_at = None, 0.0, time.monotonic()
        self.stage, self.in_stage, self.n_stage, self.last = 0, 0, 1, True

    def before_fit(self):
        if self.resume is not None:  # resumed within a fit: its smoothed training loss goes on
            checkpoint.restore_smooth_loss(self.learn, self.resume)
        self.resume = None

    def begin_stage(self, stage: int, start: int, n_epoch: int, last: bool) -> None:
        self.stage, self.in_stage, self.n_stage, self.last = stage, start, n_epoch, last

    def after_epoch(self):
        self.in_stage += 1
        done = self.in_stage >= self.n_stage
        position = {"stage": self.stage + 1 if done else self.stage, "epoch": 0 if done else self.in_stage,
                    "epochs_done": self.log.epoch_done}
        self.pending = checkpoint.capture(self.learn, position, self.log.counters())
        interval = self.every if self.every is not None else max(self.EVERY, 50 * self.cost)
        if (done and (self.keep_last or not self.last)) or time.monotonic() - self.written_at >= interval:
            self.flush()

    def flush(self) -> None:
        if self.pending is None:
            return
        t = time.perf_counter()
        self.save(self.pending)
        self.cost, self.written_at, self.pending = time.perf_counter() - t, time.monotonic(), None


class DeferInterrupt(Callback):
    """Turn Ctrl-C (and SIGTERM) into an interrupt at the next batch or epoch boundary; a second one acts at once.

    Hand-written because Python swallows a KeyboardInterrupt that lands inside a finaliser, and fastai's
    DataLoaders shut their workers down in one at the end of every epoch, just where a user tends to press it.
    The check at an epoch's start comes after the last epoch's row and checkpoint were written.
    """
    order = -100
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.requested, self.old = None, {}  # set here too: a run resumed after its last epoch fits nothing

    def before_fit(self):
        self.requested, self.old = None, {}
        if threading.current_thread() is threading.main_thread():
            self.old = {s: signal.signal(s, self._handler) for s in self.SIGNALS}

    def _handler(self, signum, frame):
        if self.requested is not None:
            self._raise(signum)
        self.requested = signum

    @staticmethod
    def _raise(signum):
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def before_batch(self):
        if self.requested is not None:
            self._raise(self.requested)

    before_epoch = before_validate = before_batch

    def after_fit(self):
        for s, old in self.old.items():
            signal.signal(s, old)
        self.old = {}
        self.before_batch()  # a request that came during the last epoch's validation


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
        num_workers: int | None = None, cbs=(), save=None, every: float | None = None,
        resume: dict | None = None, keep_last: bool = False) -> dict:
    """Train and evaluate one recipe; returns its metrics. Ctrl-C or SIGTERM interrupt it at a batch boundary.

    `data`: from `pipeline.prepare(recipe)` (made here if not given). `log`: a CSV file that gets one row per
    finished epoch, flushed at once, so an interrupted run keeps its finished epochs. `save(state)`: writes a
    checkpoint (see `Checkpoints`; `every` seconds apart at most). `resume`: a checkpoint's state; training goes
    on from its epoch exactly as the uninterrupted run would have (the same batches, draws and weights), and
    the log loses the epochs trained after it.
    """
    recipe = resolve(recipe)
    check_arch(recipe.arch)                      # fail before any data work
    check_weights(recipe.arch, recipe.weights)
    data = data or prepare(recipe, quiet=quiet)
    plan = data.plan
    stage0, start0 = _position(resume)
    set_seed(recipe.seed, reproducible=True)
    epochs, interrupt = EpochLog(log), DeferInterrupt()
    # fastai restarts the smoothed training loss with every fit: a stage's, and fine_tune's second one
    within_fit = start0 > 0 and not (plan[min(stage0, len(plan) - 1)][3] == "fine_tune" and start0 == 1)
    saver = Checkpoints(save, epochs, every, resume if within_fit else None, keep_last) if save else None
    # A run resumed at a stage boundary starts on the previous stage's data, as the run it continues did.
    first = plan[stage0 - 1][0] if resume and start0 == 0 and stage0 > 0 else plan[min(stage0, len(plan) - 1)][0]
    learn = build_learner(recipe, dataloaders(recipe, data, first, num_workers=num_workers),
                          cbs=[epochs, interrupt, *([saver] if saver else []), *cbs])
    _go_back_to(learn, epochs, resume)
    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if quiet:
                stack.enter_context(learn.no_bar())
                stack.enter_context(learn.no_logging())
            _fit_stages(learn, recipe, data, epochs, saver, resume, num_workers)
            metrics = evaluate(learn, recipe)
    except KeyboardInterrupt:
        if saver:
            saver.flush()   # the last finished epoch, if its checkpoint was not written yet
        raise
    finally:
        interrupt.after_fit()  # fastai skips after_fit when fit ends in an exception: restore the handlers here too
    return {**metrics, "wall_seconds": round(time.perf_counter() - t0, 3),
            "train_seconds": round(epochs.train_seconds, 3),
            "images_per_second": round(epochs.train_images / max(epochs.train_seconds, 1e-9), 2),
            "images_seen": epochs.train_images, "pixels_seen": epochs.train_pixels,
            "threads": torch.get_num_threads(), "device": str(learn.dls.device),
            "epochs_done": epochs.epoch_done, "resumed_at_epoch": resume["log"]["epochs_done"] if resume else 0,
            "n_train": data.ds.n_train, "n_valid": len(data.ds.files["val"])}


def _fit_stages(learn, recipe: Recipe, data: Data, epochs: EpochLog, saver, resume, num_workers) -> None:
    """Fit the stage plan, from the start or from a checkpoint's position (its optimizer put back at the start)."""
    plan = data.plan
    stage0, start0 = _position(resume)
    for i, (size, n, lr, how) in enumerate(plan):
        if i < stage0:
            continue
        if i and size != plan[i - 1][0] and (i > stage0 or start0 == 0):  # progressive resizing: swap the data
            learn.dls = dataloaders(recipe, data, size, num_workers=num_workers)
        start = start0 if i == stage0 else 0
        epochs.stage, epochs.size = i, size
        if saver:
            saver.begin_stage(i, start, n, last=i == len(plan) - 1)
        on_start = (lambda: checkpoint.restore_opt(learn, resume)) if resume and i == stage0 else None
        schedule.fit(learn, n, lr, how, recipe, start=start, on_start=on_start)


def _go_back_to(learn, epochs: EpochLog, resume: dict | None) -> None:
    """Put the learner and the epoch log where the checkpoint `resume` left them (or at the start, with None).
    The log loses the epochs after it; their training seconds still count (work spent, then lost)."""
    lost = _trim_log(epochs.path, resume["log"]["epochs_done"] if resume else 0)
    epochs.train_seconds = lost
    if resume:
        epochs.restore(resume["log"], lost_seconds=lost)
        checkpoint.restore_model(learn, resume)
        checkpoint.restore_rng(learn, resume)


def _position(resume: dict | None) -> tuple[int, int]:
    """(stage, epoch within it) where training goes on: a checkpoint's, or the very start."""
    return (resume["position"]["stage"], resume["position"]["epoch"]) if resume else (0, 0)


def _trim_log(path: Path | None, keep: int) -> float:
    """Cut an epoch log back to its first `keep` epochs (atomically); returns the training seconds cut off."""
    if path is None or not path.exists():
        return 0.0
    lines = path.read_text().splitlines(keepends=True)
    cut = [line for line in lines[1 + keep:] if line.endswith("\n")]  # a line cut short by a kill is no epoch
    lost = sum(float(row["train_seconds"]) for row in csv.DictReader([lines[0], *cut])) if cut else 0.0
    if keep == 0:
        path.unlink()
    elif len(lines) > 1 + keep:
        write_atomic(path, lambda p: Path(p).write_text("".join(lines[:1 + keep])))
    return lost


def evaluate(learn: Learner, recipe: Recipe) -> dict:
    """Final validation accuracy and loss (from the last epoch), and with `recipe.tta` the accuracy under TTA."""
    if getattr(learn.recorder, "values", None):
        values = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
        metrics = {"accuracy": float(values["accuracy"]), "valid_loss": float(values["valid_loss"])}
    else:  # resumed after its last epoch: nothing was fit here, so validate the restored model (logging no epoch)
        with learn.removed_cbs([cb for cb in learn.cbs if isinstance(cb, (EpochLog, Checkpoints))]):
            valid_loss, acc = learn.validate()[:2]
        metrics = {"accuracy": float(acc), "valid_loss": float(valid_loss)}
    if recipe.tta:
        t = time.perf_counter()
        preds, targs = learn.tta(n=recipe.tta_n, beta=recipe.tta_beta)
        metrics.update(accuracy_tta=float(accuracy(preds, targs)), tta_n=recipe.tta_n, tta_beta=recipe.tta_beta,
                       tta_seconds=round(time.perf_counter() - t, 3))
    return metrics
