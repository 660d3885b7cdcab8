"""Learning-rate schedules as recipe data: how a stage is fitted, and the curve it follows.

  one_cycle   fastai's fit_one_cycle (warm-up then cosine annealing; the default)
  fine_tune   fastai's fine_tune: one frozen one-cycle epoch, then the rest unfrozen
  flat_cos    fastai's fit_flat_cos: flat at lr for 75% of the stage, then cosine annealing
  warmup_exp  linear warm-up from lr/div over `warmup_epochs`, hold for `hold_epochs`, then multiply by
              `lr_decay` every epoch (the fine-tuning recipe of Keras' TPU flowers tutorials)

The same schedules as fastai's methods (its `combined_cos` curves, its hyper-parameter handling), with one
difference: a stage can start at any of its epochs and then sets exactly the values the whole stage would have
set there. fastai's own `start_epoch` cannot do that: fit_flat_cos and fine_tune ignore it, and the skipped epochs
still run every callback's after_epoch. So the position in a stage is counted here in whole iterations.
"""
from __future__ import annotations

import math

import numpy as np
from fastai.callback.schedule import ParamScheduler, combined_cos


def warmup_exp(lr: float, n_epoch: int, warmup: float = 1.0, hold: float = 0.0, decay: float = 0.8,
               div: float = 25.0):
    """pos in [0, 1] of the stage -> learning rate: ramp, hold, then a step down every epoch, towards lr/div."""
    lo = lr / div

    def sched(pos: float) -> float:
        e = pos * n_epoch
        if e < warmup:
            return lo + (lr - lo) * e / warmup
        if e < warmup + hold:
            return lr
        return lo + (lr - lo) * decay ** math.floor(e - warmup - hold)
    return sched


def fit(learn, n_epoch: int, lr: float, how: str, recipe, start: int = 0, on_start=None) -> None:
    """Fit `learn` for one stage of `n_epoch` epochs at peak `lr` with schedule `how`, from epoch `start`.

    `on_start()`, if given, runs once just before the first epoch is trained (after fine_tune's freezing):
    where a resumed run puts back its optimizer and random states.
    """
    if how == "fine_tune" and n_epoch >= 2:
        fine_tune(learn, n_epoch, lr, start, on_start)   # its frozen epoch is the stage's first
    elif how == "flat_cos":
        _start(learn, on_start)
        one_cycle(learn, n_epoch, lr, start, div=1.0, pct_start=0.75, moms=False)
    elif how == "warmup_exp":
        sched = warmup_exp(lr, n_epoch, recipe.warmup_epochs, recipe.hold_epochs, recipe.lr_decay)
        _start(learn, on_start)
        learn.fit(n_epoch - start, lr, cbs=StageScheduler({"lr": sched}, n_epoch, start))
    else:
        _start(learn, on_start)
        one_cycle(learn, n_epoch, lr, start)


def _start(learn, on_start) -> None:
    if learn.opt is None:
        learn.create_opt()
    if on_start is not None:
        on_start()


def one_cycle(learn, n_epoch: int, lr_max, start: int = 0, div: float = 25.0, div_final: float = 1e5,
              pct_start: float = 0.25, moms=None) -> None:
    """fastai's fit_one_cycle from epoch `start` of `n_epoch` (moms=False: leave momentum alone, as fit_flat_cos)."""
    if learn.opt is None:
        learn.create_opt()
    learn.opt.set_hyper("lr", lr_max)
    lr_max = np.array([h["lr"] for h in learn.opt.hypers])
    scheds = {"lr": combined_cos(pct_start, lr_max / div, lr_max, lr_max / div_final)}
    if moms is not False:
        scheds["mom"] = combined_cos(pct_start, *(learn.moms if moms is None else moms))
    learn.fit(n_epoch - start, cbs=StageScheduler(scheds, n_epoch, start))


def fine_tune(learn, n_epoch: int, lr: float, start: int = 0, on_start=None) -> None:
    """fastai's fine_tune(n_epoch - 1, lr): one frozen epoch (pct_start 0.99), then the rest unfrozen at lr / 2
    with discriminative rates (lr / 200 to lr / 2, pct_start 0.3, div 5); from epoch `start` of the stage.

    Freezing and unfreezing clear the optimizer's state, so a resumed run puts its state back before them
    when the run it continues went through them after its checkpoint (start 0 and 1), and after otherwise.
    """
    if start == 0:
        _start(learn, on_start)
        learn.freeze()
        one_cycle(learn, 1, slice(lr), 0, pct_start=0.99)
    elif start == 1:
        _start(learn, on_start)
    learn.unfreeze()
    if start > 1:
        _start(learn, on_start)
    one_cycle(learn, n_epoch - 1, slice(lr / 2 / 100, lr / 2), max(0, start - 1), pct_start=0.3, div=5.0)


class StageScheduler(ParamScheduler):
    """fastai's ParamScheduler with the stage position counted in whole iterations from the stage's start.

    A stage of `n_epoch` epochs fitted from epoch `start` sets, at every batch, exactly the values the whole stage
    sets there: pct = (start * n_iter + train_iter) / (n_epoch * n_iter), integers until the division.
    """
    def __init__(self, scheds, n_epoch: int, start: int = 0):
        super().__init__(scheds)
        self.n_stage, self.start = n_epoch, start

    def before_batch(self):
        self._update_val((self.start * self.n_iter + self.train_iter) / (self.n_stage * self.n_iter))


def lr_curve(recipe, batches_per_epoch: int = 20):
    """The learning rate at every batch of a resolved recipe's stages, recorded from fastai's own fit methods.

    A tiny stand-in model is "trained" with every batch cancelled right after the schedulers have set the
    hyper-parameters, so the curve is exactly what a real run follows, at no cost.
    Returns a DataFrame with columns epoch (fractional), stage, size, lr (of the last parameter group).
    """
    import pandas as pd
    import torch
    from fastai.callback.core import Callback, CancelBatchException, CancelValidException
    from fastai.callback.progress import ProgressCallback  # noqa: F401  (adds Learner.no_bar)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.torch_core import TensorCategory

    from ..recipes.stages import stage_plan

    plan = stage_plan(recipe, recipe.size)
    xb, yb = torch.zeros(2, 4), TensorCategory(torch.zeros(2, dtype=torch.long))
    batches = [(xb, yb)] * batches_per_epoch
    dls = DataLoaders(batches, batches[:1])
    dls.c = 2
    rows = []

    class Record(Callback):
        order = 100  # after ParamScheduler has set this batch's lr

        def before_batch(self):
            if self.training:  # every stage runs exactly its epochs x batches_per_epoch training batches
                done = sum(r["stage"] == stage for r in rows)
                rows.append({"epoch": epoch0 + done / batches_per_epoch, "stage": stage, "size": px,
                             "lr": float(self.opt.hypers[-1]["lr"])})
            raise CancelBatchException

        def before_validate(self):
            raise CancelValidException

    body, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    learn = Learner(dls, torch.nn.Sequential(body, head), loss_func=torch.nn.CrossEntropyLoss(),
                    splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())], cbs=[Record()])
    epoch0 = 0
    with learn.no_bar(), learn.no_logging():
        for stage, (px, n, lr, how) in enumerate(plan):
            fit(learn, n, lr, how, recipe)
            epoch0 += n
    return pd.DataFrame(rows)


def plot(curve, title: str):
    """The learning rate against epochs, one colour per stage, with the stage's size in the legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    for stage, part in curve.groupby("stage"):
        ax.plot(part["epoch"], part["lr"], label=f"stage {stage}: {part['size'].iloc[0]} px")
    ax.set(xlabel="epoch", ylabel="learning rate", title=title)
    ax.grid(alpha=0.3)
    if curve["stage"].nunique() > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
