"""The toolkit's own callbacks on a run's Learner: the epoch log (and its plain progress lines), checkpoints, an
interrupt deferred to a batch boundary, and bfloat16 autocast off CUDA. Each undoes what it changes (signal handlers) when the fit ends."""
from __future__ import annotations

import csv
import signal
import threading
import time
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.learner import Recorder
from fastai.torch_core import to_float

from ..defaults import CHECKPOINT_COST, CHECKPOINT_EVERY
from ..errors import Terminated
from . import checkpoint


class EpochLog(Callback):
    """Append each finished epoch's metrics and compute to a CSV, flushed at once, so an interrupted run keeps them.

    Compute: the training images and pixels (images x size^2, what progressive resizing saves and what does not
    depend on machine load) and the seconds of the train phase. Hand-written because fastai's CSVLogger restarts
    per fit() and cannot add the stage, size and compute columns.
    """
    order = Recorder.order + 1  # after the Recorder has computed this epoch's values

    def __init__(self, path: Path | None, lines: bool = False, total: int = 0, on_row=None):
        self.path, self.stage, self.size, self.epoch_done = path and Path(path), 0, 0, 0
        self.lines, self.total = lines, total   # lines: print each epoch as one plain line (toolkit/display.py)
        self.on_row = on_row   # called with each row once it is written, and the run's pixels and seconds so far
        self.train_seconds, self.train_images, self.train_pixels = 0.0, 0, 0
        self.valid_seconds = 0.0   # the last epoch's validation: what the plain evaluation costs

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

    def before_validate(self):
        self._tv = time.perf_counter()

    def after_validate(self):
        self.valid_seconds = time.perf_counter() - self._tv

    def after_epoch(self):
        names = self.learn.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        row = {"epoch": self.epoch_done, "stage": self.stage, "size": self.size,
               **dict(zip(names, self.learn.recorder.values[-1])),
               "train_seconds": round(self._epoch_seconds, 3), "valid_seconds": round(self.valid_seconds, 3),
               "images_per_second": round(self._n / max(self._epoch_seconds, 1e-9), 2),
               "images": self._n, "pixels": self._px}
        self.epoch_done += 1
        if self.lines:
            print(epoch_line(row, self.total), flush=True)
        if self.path is not None:
            append_csv(self.path, row)
        if self.on_row is not None:
            self.on_row({**row, "pixels_seen": self.train_pixels, "train_seconds_seen": round(self.train_seconds, 3)})


def append_csv(path: Path, row: dict) -> None:
    """One row at the end of a CSV file (its header first, for a new file), flushed at once."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
        fh.flush()


class Checkpoints(Callback):
    """At every epoch end, take the state training needs to go on from there (`checkpoint.capture`); write it
    with `save(state)` at every stage's end and whenever `every` seconds have passed since the last write.

    `every` None: CHECKPOINT_EVERY seconds, or CHECKPOINT_COST times what the last write took if that is longer
    (toolkit/defaults.py; xresnet18 with Adam is about 130 MiB, written in well under a second), so that writing costs
    under 2% of the training time. The end of the last stage is written only with `keep_last` (the run is about to
    finish, and its checkpoint would be removed). `flush()` writes the last finished epoch's state if it is not
    written yet: what Ctrl-C and SIGTERM call.
    """
    order = EpochLog.order + 1  # after the epoch's row is logged

    def __init__(self, save, log: EpochLog, every: float | None = None, resume: dict | None = None,
                 keep_last: bool = False):
        self.save, self.log, self.every, self.resume, self.keep_last = save, log, every, resume, keep_last
        self.pending, self.cost, self.written_at = None, 0.0, time.monotonic()
        self.stage, self.in_stage, self.n_stage, self.last = 0, 0, 1, True

    def before_fit(self):
        if self.resume is not None:  # resumed within a fit: its smoothed training loss and loss scale go on
            checkpoint.restore_smooth_loss(self.learn, self.resume)
            checkpoint.restore_scaler(self.learn, self.resume)
        self.resume = None

    def begin_stage(self, stage: int, start: int, n_epoch: int, last: bool) -> None:
        self.stage, self.in_stage, self.n_stage, self.last = stage, start, n_epoch, last

    def after_epoch(self):
        self.in_stage += 1
        done = self.in_stage >= self.n_stage
        position = {"stage": self.stage + 1 if done else self.stage, "epoch": 0 if done else self.in_stage,
                    "epochs_done": self.log.epoch_done}
        self.pending = checkpoint.capture(self.learn, position, self.log.counters())
        interval = self.every if self.every is not None else max(CHECKPOINT_EVERY, CHECKPOINT_COST * self.cost)
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


def epoch_line(row: dict, total: int) -> str:
    """`epoch 2/4  stage 1  32px  train_loss 1.2345  valid_loss 1.1234  accuracy 61.3%  3.2s`: one epoch, plainly."""
    values = "  ".join(f"{k} {100 * v:.1f}%" if k == "accuracy" else f"{k} {v:.4f}"
                       for k, v in row.items() if k in ("train_loss", "valid_loss", "accuracy"))
    return (f"epoch {row['epoch'] + 1}/{total}  stage {row['stage'] + 1}  {row['size']}px  {values}  "
            f"{row['train_seconds']:.1f}s")


class Autocast(Callback):
    """bfloat16 autocast on the learner's own device type, for training, validation and TTA alike. Hand-written
    because fastai 2.8's MixedPrecision autocasts on 'cuda' only (on a CPU torch warns and turns it off).

    While the fit lasts, a strided convolution whose input map is no larger than its kernel or stride (xresnet's
    last stage below 32 px) trains in fp32: there torch's bf16 CPU weight gradient reads uninitialized memory, so
    the same run gives different weights, or NaN (bench/bf16_conv.py shows it and where it stops)."""
    order = MixedPrecision.order

    def __init__(self, precision: str = "bf16"):
        self.precision, self.dtype, self.ctx, self.hooks = precision, {"bf16": torch.bfloat16}[precision], None, []

    def before_fit(self):
        self.release()
        convs = [m for m in self.learn.model.modules() if isinstance(m, torch.nn.Conv2d) and max(m.stride) > 1]
        for m in convs:
            self.hooks += [m.register_forward_pre_hook(self._guard_in), m.register_forward_hook(self._guard_out)]

    def _guard_in(self, module, args):
        x = args[0]
        if torch.is_grad_enabled() and min(x.shape[-2:]) <= max(*module.kernel_size, *module.stride):
            module._fp32 = torch.autocast(x.device.type, enabled=False)
            module._fp32.__enter__()
            return (x.float(), *args[1:])

    @staticmethod
    def _guard_out(module, args, out):
        ctx = module.__dict__.pop("_fp32", None)
        if ctx is not None:
            ctx.__exit__(None, None, None)

    def before_batch(self):
        self.close()
        self.ctx = torch.autocast(self.dls.device.type, dtype=self.dtype)
        self.ctx.__enter__()

    def after_pred(self):
        self.learn.pred = to_float(self.pred)

    def after_loss(self):
        self.close()

    def close(self):
        """Leave autocast: after the loss, and wherever a batch ends early (a run calls it when one raises)."""
        if self.ctx is not None:
            ctx, self.ctx = self.ctx, None
            ctx.__exit__(None, None, None)

    def release(self):
        """Leave autocast and take the guards off the model."""
        self.close()
        for h in self.hooks:
            h.remove()
        self.hooks = []

    after_cancel_batch = after_batch = close
    after_fit = release


class WeightEMA(Callback):
    """An exponential moving average of the weights (and BatchNorm statistics): timm's `ModelEmaV3`, updated after
    every optimizer step of every fit (progressive stages included), with timm's warm-up (inv_gamma 1, power 2/3:
    the decay is 1 - step^(-2/3) until it reaches `decay`), so that a short run is not dominated by the
    initial weights. It only reads the model: the raw training is unchanged, bit for bit.

    The average is made once, at the first before_fit, and never restarts: fastai fires before_fit / after_epoch
    / after_fit in `validate`, `get_preds` and `tta` too, so it is neither reset nor swapped on those events
    and it moves on training batches only (its first update copies the weights: timm's decay is 0 at step 1,
    so when it was made does not matter). Its state (weights and step) goes into a run's checkpoint (`state`,
    `load`)."""
    order = 0   # after ChannelsLast (-1): the copy has the model's memory format; before Autocast (10) puts its
                # hooks on the model, which a copy would carry (and deepcopy cannot copy what they hold)

    def __init__(self, decay: float):
        self.decay, self.ema, self.step, self.pending = decay, None, 0, None

    def _new(self):
        from timm.utils.model_ema import ModelEmaV3
        return ModelEmaV3(self.learn.model, decay=self.decay, use_warmup=True)

    def before_fit(self):
        if self.ema is None:   # made here, once the model is on its device and in its memory format
            self.ema = self._new()
            if self.pending:
                self.ema.module.load_state_dict(self.pending["model"])
                self.step, self.pending = int(self.pending["step"]), None

    def after_batch(self):
        if self.training:
            self.step += 1
            self.ema.update(self.learn.model, step=self.step)

    @property
    def model(self):
        """The averaged model (None before the first training batch)."""
        return None if self.ema is None else self.ema.module

    def state(self) -> dict:
        return {} if self.ema is None else {"step": self.step, "model": self.ema.module.state_dict()}

    def load(self, state: dict) -> None:
        """Go on from a checkpoint's `state()` (an empty one: none made yet), put back at the next before_fit."""
        self.ema, self.pending = None, state or None
