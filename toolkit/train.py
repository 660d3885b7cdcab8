"""run(recipe) -> Result: build the Learner, fit its stages, evaluate (and TTA), write the run folder."""
from __future__ import annotations

import contextlib
import csv
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.callback.progress import ProgressCallback  # noqa: F401  (progress bars, Learner.no_bar)
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (Learner.fit_one_cycle, fit_flat_cos, fine_tune)
from fastai.learner import Learner, Recorder
from fastai.losses import CrossEntropyLossFlat, LabelSmoothingCrossEntropy
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fastai.vision.core import imagenet_stats

from . import data, report, schedule
from .loader import pack_stats, packed_dataloaders
from .pack import Pack, ensure_pack, stored_size
from .atomic import write_json
from .errors import RunInterrupted
from .mix import Mix
from .models import check_arch, check_weights, create_model
from .recipe import Recipe, stage_plan


@dataclass
class Result:
    recipe: Recipe     # resolved: `size` filled in from the dataset when the recipe left it to the dataset
    run_dir: Path
    metrics: dict      # accuracy, valid_loss, [accuracy_tta, tta_seconds], wall_seconds, images_per_second, ...


class EpochLog(Callback):
    """Append each finished epoch's metrics to a CSV, flushed at once, so an interrupted run keeps them.

    Hand-written because fastai's CSVLogger restarts per fit() and cannot add the stage and size columns.
    """
    order = Recorder.order + 1  # after the Recorder has computed this epoch's values

    def __init__(self, path: Path):
        self.path, self.stage, self.size, self.epoch_done = Path(path), 0, 0, 0
        self.train_seconds, self.train_images = 0.0, 0

    def before_train(self):
        self._t, self._n = time.perf_counter(), 0

    def after_batch(self):
        if self.training:
            self._n += len(self.learn.xb[0])

    def after_train(self):
        self._epoch_seconds = time.perf_counter() - self._t
        self.train_seconds += self._epoch_seconds
        self.train_images += self._n

    def after_epoch(self):
        names = self.learn.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        row = {"epoch": self.epoch_done, "stage": self.stage, "size": self.size,
               **dict(zip(names, self.learn.recorder.values[-1])),
               "train_seconds": round(self._epoch_seconds, 3),
               "images_per_second": round(self._n / max(self._epoch_seconds, 1e-9), 2)}
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
            fh.flush()
        self.epoch_done += 1


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


def dataloaders(recipe: Recipe, ds: data.Dataset, size: int, pack: Pack | None = None,
                num_workers: int | None = None, prefetch: int | None = None):
    """The recipe's DataLoaders at `size` px: from `pack` (loader=packed) or from the image folder (loader=folder)."""
    extra = [policy(recipe, ds)] if recipe.autoaug else []
    if recipe.loader == "folder":
        return data.dataloaders(ds, size, bs=recipe.bs, presize=recipe.presize, min_scale=recipe.min_scale,
                                normalize=recipe.normalize, num_workers=num_workers, extra_tfms=extra)
    stats = (imagenet_stats if recipe.normalize == "imagenet" else
             pack_stats(pack, size) if recipe.normalize == "data" else None)
    return packed_dataloaders(pack, size, bs=recipe.bs, min_scale=recipe.min_scale, presize=recipe.presize,
                              normalize_stats=stats, aug=ds.aug, prefetch=prefetch, extra_tfms=extra)


def policy(recipe: Recipe, ds: data.Dataset):
    """The recipe's automatic-augmentation policy, within the dataset's limits (digits: small rotations only)."""
    from .autoaug import BatchPolicy, parse_ops
    return BatchPolicy(recipe.autoaug, recipe.autoaug_n, recipe.autoaug_m,
                       parse_ops(recipe.autoaug_ops, recipe.autoaug_add), max_rotate=ds.aug.get("max_rotate"))


def pack_for(recipe: Recipe, ds: data.Dataset, plan, quiet: bool = False) -> Pack | None:
    """The pack a packed recipe reads (built on first use): stored at presize x its largest stage size."""
    if recipe.loader != "packed":
        return None
    return ensure_pack(ds, stored_size(max(p[0] for p in plan), recipe.presize), quiet=quiet)


def run(recipe: Recipe, results: str | Path = "results", quiet: bool = False,
        num_workers: int | None = None, cbs=()) -> Result:
    """Train and evaluate one recipe; everything it produces goes into a new folder under `results`/runs."""
    check_arch(recipe.arch)                      # fail before any data work
    check_weights(recipe.arch, recipe.weights)
    ds = data.load(recipe.dataset)
    recipe = replace(recipe, size=recipe.size or ds.default_size)
    plan = stage_plan(recipe, recipe.size)
    pack = pack_for(recipe, ds, plan, quiet=quiet)
    run_dir = report.new_run_dir(results, recipe, ds)
    write_json(run_dir / "recipe.json", {**recipe.to_dict(), "dataset_path": str(ds.path),
                                         "stage_plan": plan, "skipped_files": list(ds.bad_files),
                                         "pack": str(pack.path) if pack else None})
    write_json(run_dir / "env.json", report.environment())

    set_seed(recipe.seed, reproducible=True)
    dl_kw = dict(pack=pack, num_workers=num_workers)
    log, interrupt = EpochLog(run_dir / "epochs.csv"), DeferInterrupt()
    learn = build_learner(recipe, dataloaders(recipe, ds, plan[0][0], **dl_kw), cbs=[log, interrupt, *cbs])

    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            if quiet:
                stack.enter_context(learn.no_bar())
                stack.enter_context(learn.no_logging())
            for i, (size, n, lr, how) in enumerate(plan):
                if i and size != plan[i - 1][0]:
                    learn.dls = dataloaders(recipe, ds, size, **dl_kw)   # progressive resizing: swap the data only
                log.stage, log.size = i, size
                schedule.fit(learn, n, lr, how, recipe)
            values = dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1]))
            metrics = {"accuracy": float(values["accuracy"]), "valid_loss": float(values["valid_loss"])}
            if recipe.tta:
                t = time.perf_counter()
                preds, targs = learn.tta(n=recipe.tta_n, beta=recipe.tta_beta)
                metrics.update(accuracy_tta=float(accuracy(preds, targs)), tta_n=recipe.tta_n,
                               tta_beta=recipe.tta_beta, tta_seconds=round(time.perf_counter() - t, 3))
    except KeyboardInterrupt:
        done = max(0, len(log.path.read_text().splitlines()) - 1) if log.path.exists() else 0
        write_json(run_dir / "status.json", {"status": "interrupted", "epochs_done": done})
        raise RunInterrupted(
            f"Interrupted during {recipe.name!r} after {done} finished epoch(s). Their metrics are kept in "
            f"{run_dir / 'epochs.csv'}; the results table was left as it was (this run is not in it).") from None
    except Exception as e:
        write_json(run_dir / "status.json", {"status": "failed", "error": f"{type(e).__name__}: {e}"})
        raise
    finally:
        interrupt.after_fit()  # fastai skips after_fit when fit ends in an exception: restore Ctrl-C here too
    metrics.update(wall_seconds=round(time.perf_counter() - t0, 3), train_seconds=round(log.train_seconds, 3),
                   images_per_second=round(log.train_images / max(log.train_seconds, 1e-9), 2),
                   epochs_done=log.epoch_done, n_train=ds.n_train, n_valid=len(ds.files["val"]))
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "status.json", {"status": "finished", "epochs_done": log.epoch_done})
    report.append_result(results, report.result_row(recipe, run_dir, metrics))
    return Result(recipe, run_dir, metrics)

