"""fit_and_evaluate(recipe) -> metrics: build the Learner, fit its stages, evaluate (and TTA). Nothing here knows the results table.

Data flows one way: a resolved recipe -> its data (toolkit/data/pipeline.py) -> a Learner -> metrics; the caller
(toolkit/sweep, or a notebook) records them (toolkit/records).
"""
from __future__ import annotations

import contextlib
import csv
import time
from pathlib import Path

import torch
from fastai.callback.mixup import MixUp
from fastai.callback.progress import ProgressCallback  # noqa: F401  (progress bars, Learner.no_bar)
from fastai.callback.training import GradientClip
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed

from .. import display
from ..atomic import write_atomic
from ..data.datasets import with_dataset
from ..data.pipeline import RunData, check_batches, dataloaders, prepare
from ..recipes.recipe import Recipe
from ..recipes.stages import stage_plan
from ..recipes.components import by_field, with_code
from . import checkpoint, components, optimizers, precision, schedule
from .callbacks import Autocast, Checkpoints, DeferInterrupt, EpochLog, WeightEMA
from .evaluation import KeepPredictions, check as check_evaluations, evaluate
from .mix import Mix
from .models import check_arch, check_weights, model_of


def check(recipe: Recipe, ds=None) -> None:
    """Everything about a run of a resolved `recipe` that can be checked before its first epoch: without its
    dataset, its architecture and weights, stage plan, optimizer, loss and registered components; with its loaded
    dataset `ds`, its batches and evaluations."""
    if ds is not None:
        check_batches(recipe, ds)
        check_evaluations(recipe, ds)
        return
    own = by_field(recipe)
    check_arch(recipe.arch, own["arch"])
    check_weights(recipe.arch, recipe.weights)
    stage_plan(recipe, recipe.size)
    components.check(recipe, own)


def build_learner(recipe: Recipe, dls, cbs=()) -> Learner:
    """The recipe's model, loss, optimizer and callbacks on `dls`: the part of a run a notebook may want alone."""
    own = by_field(recipe)
    loss = components.loss(recipe, own)
    if recipe.cutmix or (recipe.mixup and recipe.mix_frac < 1):
        extra = [Mix(recipe.mixup, recipe.cutmix, recipe.mix_switch, recipe.mix_frac)]
    else:
        extra = [MixUp(recipe.mixup)] if recipe.mixup else []
    if recipe.ema:
        extra.append(WeightEMA(recipe.ema))
    if recipe.clip:
        extra.append(GradientClip(recipe.clip))
    extra += components.batch_transforms(own) + components.callbacks(own)
    return Learner(dls, model_of(recipe, dls.c, own["arch"]), loss_func=loss,
                   opt_func=optimizers.opt_func(recipe, own["opt"]), metrics=accuracy,
                   cbs=[*extra, *precision.callbacks(recipe, dls.device), *cbs])


def loss_of(recipe: Recipe):
    """The recipe's loss: a registered one, label-smoothed cross-entropy, or plain (toolkit/train/components.py)."""
    return components.loss(recipe, by_field(recipe))


def fresh_learner(recipe: Recipe, data: RunData, size: int, cbs=(), num_workers: int | None = None) -> Learner:
    """The recipe's Learner on its data at `size` px, seeded as every run starts (data order, initial weights)."""
    set_seed(recipe.seed, reproducible=True)
    return build_learner(recipe, dataloaders(recipe, data, size, num_workers=num_workers), cbs=cbs)


def fit_and_evaluate(recipe: Recipe, data: RunData | None = None, log: str | Path | None = None, progress: str | None = None,
        num_workers: int | None = None, cbs=(), save=None, checkpoint_every: float | None = None,
        resume: dict | None = None, keep_checkpoints: bool = False, keep_model=None, on_epoch=None) -> dict:
    """Train and evaluate one recipe; returns its metrics (with `predictions`: what each evaluation predicted for
    every validation image, see toolkit/train/evaluation.py). Ctrl-C or SIGTERM interrupt it at a batch boundary.

    `data`: from `pipeline.prepare(recipe)` (made here if not given). `log`: a CSV file that gets one row per
    finished epoch, flushed at once, so an interrupted run keeps its finished epochs. `save(state)`: writes a
    checkpoint (see `Checkpoints`; `checkpoint_every` seconds apart at most; the last one too with
    `keep_checkpoints`). `resume`: a checkpoint's state; training goes
    on from its epoch exactly as the uninterrupted run would have (the same batches, draws and weights), and
    the log loses the epochs trained after it. `keep_model(weights)`: called after the evaluation with the final
    weights as plain tensors, {"model": ...} and with EMA {"ema": ...} too. `on_epoch(row)`: called with each
    epoch's row once it is logged (what a tracker gets; see toolkit/sweep/track.py).
    """
    recipe = with_code(precision.decide(with_dataset(recipe)))   # its components' code: the same as planned
    check(recipe)                                # fail before any data work
    mode = display.choose(progress)
    data = data or prepare(recipe, progress=mode)
    check(recipe, data.ds)
    within_fit, first = _start(data.plan, resume)
    epochs, interrupt = EpochLog(log, lines=mode == "lines", total=sum(p[1] for p in data.plan),
                                  on_row=on_epoch), DeferInterrupt()
    saver = Checkpoints(save, epochs, checkpoint_every, resume if within_fit else None, keep_checkpoints) if save else None
    learn = fresh_learner(recipe, data, first, cbs=[epochs, interrupt, KeepPredictions(), *([saver] if saver else []),
                                                    *cbs],
                          num_workers=num_workers)
    _go_back_to(learn, epochs, resume)
    t0 = time.perf_counter()
    metrics = _fit_and_evaluate(learn, recipe, data, epochs, interrupt, saver, resume, mode, num_workers, keep_model)
    return {**metrics, **_run_metrics(learn, data, epochs, resume, time.perf_counter() - t0)}


def _start(plan, resume: dict | None) -> tuple[bool, int]:
    """Where a run starts: (whether it resumes within a fit, the size of the data it starts on)."""
    stage0, start0 = _position(resume)
    # fastai restarts the smoothed training loss with every fit: a stage's, and fine_tune's second one
    within_fit = start0 > 0 and not (plan[min(stage0, len(plan) - 1)][3] == "fine_tune" and start0 == 1)
    # A run resumed at a stage boundary starts on the previous stage's data, as the run it continues did.
    first = plan[stage0 - 1][0] if resume and start0 == 0 and stage0 > 0 else plan[min(stage0, len(plan) - 1)][0]
    return within_fit, first


def _fit_and_evaluate(learn, recipe: Recipe, data: RunData, epochs: EpochLog, interrupt: DeferInterrupt, saver,
                      resume, mode: str, num_workers, keep_model) -> dict:
    """Fit the stages and evaluate, interruptible at a batch boundary (the last finished epoch's checkpoint kept)."""
    try:
        with contextlib.ExitStack() as stack:
            if mode != "bars":  # fastai's bars and per-epoch table; EpochLog prints the lines
                stack.enter_context(learn.no_bar())
                stack.enter_context(learn.no_logging())
            _fit_stages(learn, recipe, data, epochs, saver, resume, num_workers)
            metrics = evaluate(learn, recipe, data, mode, num_workers)
            if keep_model is not None:
                keep_model(final_weights(learn))
            if saver:
                saver.pending = None   # the run is done: its last epoch's state is no longer needed for a Ctrl-C
            return metrics
    except KeyboardInterrupt:
        if saver:
            saver.flush()   # the last finished epoch, if its checkpoint was not written yet
        raise
    finally:
        interrupt.after_fit()  # fastai skips after_fit when fit ends in an exception: restore the handlers here too
        for cb in learn.cbs.filter(lambda c: isinstance(c, Autocast)):
            cb.release()       # and leave autocast, should the exception have come inside a forward pass


def _run_metrics(learn, data: RunData, epochs: EpochLog, resume: dict | None, seconds: float) -> dict:
    """What a run spent and saw: seconds, images and pixels, threads and device, epochs, and its data's size."""
    return {"wall_seconds": round(seconds, 3), "train_seconds": round(epochs.train_seconds, 3),
            "images_per_second": round(epochs.train_images / max(epochs.train_seconds, 1e-9), 2),
            "images_seen": epochs.train_images, "pixels_seen": epochs.train_pixels,
            "threads": torch.get_num_threads(), "device": str(learn.dls.device),
            "epochs_done": epochs.epoch_done, "resumed_at_epoch": resume["log"]["epochs_done"] if resume else 0,
            "n_train": data.ds.n_train, "n_valid": len(data.ds.files["val"])}


def final_weights(learn) -> dict:
    """The learner's weights (and its weight average's) as plain tensors: what --save-model keeps."""
    ema = getattr(learn, "weight_ema", None)
    out = {"model": checkpoint.plain(learn.model.state_dict())}
    if ema is not None and ema.model is not None:
        out["ema"] = checkpoint.plain(ema.model.state_dict())
    return out


def _fit_stages(learn, recipe: Recipe, data: RunData, epochs: EpochLog, saver, resume, num_workers) -> None:
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
        checkpoint.restore_ema(learn, resume)
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
