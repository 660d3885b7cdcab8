"""Learning-rate schedules as recipe data: how a stage is fitted, and the curve it follows.

  one_cycle   fastai's fit_one_cycle (warm-up then cosine annealing; the default)
  fine_tune   fastai's fine_tune: one frozen one-cycle epoch, then the rest unfrozen
  flat_cos    fastai's fit_flat_cos: flat at lr for 75% of the stage, then cosine annealing
  warmup_exp  linear warm-up from lr/div over `warmup_epochs`, hold for `hold_epochs`, then multiply by
              `lr_decay` every epoch (the fine-tuning recipe of Keras' TPU flowers tutorials)
"""
from __future__ import annotations

import math

HOWS = ("one_cycle", "fine_tune", "flat_cos", "warmup_exp")


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


def fit(learn, n_epoch: int, lr: float, how: str, recipe) -> None:
    """Fit `learn` for one stage of `n_epoch` epochs at peak `lr` with schedule `how`."""
    from fastai.callback.schedule import ParamScheduler  # also adds fit_one_cycle, fit_flat_cos, fine_tune

    if how == "fine_tune" and n_epoch >= 2:
        learn.fine_tune(n_epoch - 1, lr)   # its frozen epoch is the stage's first
    elif how == "flat_cos":
        learn.fit_flat_cos(n_epoch, lr)
    elif how == "warmup_exp":
        sched = warmup_exp(lr, n_epoch, recipe.warmup_epochs, recipe.hold_epochs, recipe.lr_decay)
        learn.fit(n_epoch, lr, cbs=ParamScheduler({"lr": sched}))
    else:
        learn.fit_one_cycle(n_epoch, lr)


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

    from .recipe import stage_plan

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
