"""Learning-rate schedules as recipe data, and the curve `toolkit show --plot` draws."""
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from fastai.callback.core import Callback, CancelBatchException, CancelValidException
from fastai.callback.schedule import ParamScheduler
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.torch_core import TensorCategory

from toolkit.train import schedule
from toolkit.recipes.recipe import Recipe
from toolkit.train.schedule import lr_curve, warmup_exp


class Hypers(Callback):
    """Every training batch's lr and mom of every parameter group, exactly as set; no batch really runs."""
    order = 100

    def __init__(self):
        self.seen = []

    def before_batch(self):
        if self.training:
            self.seen.append([(h["lr"], h.get("mom")) for h in self.opt.hypers])
        raise CancelBatchException

    def before_validate(self):
        raise CancelValidException


def stand_in(batches=7):
    """A two-group Learner over fake batches (fine_tune freezes the first group)."""
    xb, yb = torch.zeros(2, 4), TensorCategory(torch.zeros(2, dtype=torch.long))
    dls = DataLoaders([(xb, yb)] * batches, [(xb, yb)])
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    rec = Hypers()
    learn = Learner(dls, model, loss_func=torch.nn.CrossEntropyLoss(), cbs=[rec],
                    splitter=lambda m: [list(m[0].parameters()), list(m[1].parameters())])
    return learn, rec


def fastai_own(how, n, lr, recipe):
    learn, rec = stand_in()
    with learn.no_bar(), learn.no_logging():
        if how == "one_cycle":
            learn.fit_one_cycle(n, lr)
        elif how == "flat_cos":
            learn.fit_flat_cos(n, lr)
        elif how == "fine_tune":
            learn.fine_tune(n - 1, lr)
        else:
            sched = warmup_exp(lr, n, recipe.warmup_epochs, recipe.hold_epochs, recipe.lr_decay)
            learn.fit(n, lr, cbs=ParamScheduler({"lr": sched}))
    return rec.seen


def ours(how, n, lr, recipe, start=0):
    learn, rec = stand_in()
    with learn.no_bar(), learn.no_logging():
        schedule.fit(learn, n, lr, how, recipe, start=start)
    return rec.seen


@pytest.mark.parametrize("how", ["one_cycle", "flat_cos", "fine_tune", "warmup_exp"])
def test_each_schedule_sets_what_fastais_own_method_sets(how):
    recipe = Recipe(schedule=how)
    theirs, mine = fastai_own(how, 5, 1e-2, recipe), ours(how, 5, 1e-2, recipe)
    assert len(mine) == len(theirs) == 5 * 7
    for a, b in zip(mine, theirs):  # fastai sums 1/(n_iter*n_epoch) per batch; here one division: rounding apart
        assert [x for pair in a for x in pair if x is not None] == pytest.approx(
            [x for pair in b for x in pair if x is not None], rel=1e-9)


@pytest.mark.parametrize("how", ["one_cycle", "flat_cos", "fine_tune", "warmup_exp"])
@pytest.mark.parametrize("start", [1, 2, 4])
def test_a_stage_started_at_epoch_k_sets_exactly_what_the_whole_stage_sets_there(how, start):
    recipe = Recipe(schedule=how)
    whole, rest = ours(how, 5, 1e-2, recipe), ours(how, 5, 1e-2, recipe, start=start)
    assert rest == whole[start * 7:]        # bit for bit: what a resumed run needs


def test_warmup_then_hold_then_decay_every_epoch():
    f = warmup_exp(1.0, n_epoch=6, warmup=2, hold=1, decay=0.5, div=25)
    at = lambda epoch: f(epoch / 6)  # noqa: E731
    assert at(0) == pytest.approx(1 / 25) and at(1) == pytest.approx((1 + 1 / 25) / 2)  # linear ramp
    assert at(2) == at(2.9) == 1.0                                                    # hold
    lo = 1 / 25
    assert at(3) == pytest.approx(1.0) and at(3.5) == pytest.approx(1.0)             # first decay epoch at peak
    assert at(4) == pytest.approx(lo + (1 - lo) * 0.5) and at(5.5) == pytest.approx(lo + (1 - lo) * 0.25)


@pytest.mark.parametrize("schedule", ["one_cycle", "flat_cos", "warmup_exp"])
def test_curves_follow_fastai_and_peak_at_lr(schedule):
    c = lr_curve(Recipe(epochs=4, lr=1e-2, schedule=schedule, size=64), batches_per_epoch=10)
    assert len(c) == 40 and c["lr"].max() == pytest.approx(1e-2, rel=1e-3)
    if schedule != "warmup_exp":
        assert c["lr"].iloc[-1] < 2e-3                          # the annealing ones end low
    if schedule == "flat_cos":
        assert c["lr"].iloc[:30].tolist() == pytest.approx([1e-2] * 30)  # flat for the first 75%
    if schedule == "one_cycle":
        assert c["lr"].iloc[0] == pytest.approx(1e-2 / 25, rel=1e-2)
    if schedule == "warmup_exp":
        per_epoch = c.groupby(c["epoch"].astype(int))["lr"].first().tolist()
        lo = 1e-2 / 25
        assert per_epoch[1:] == pytest.approx([lo + (1e-2 - lo) * 0.8 ** k for k in range(3)], rel=1e-3)


def test_stages_are_laid_end_to_end():
    r = Recipe(epochs=4, stages=((0.5, 0.5, 3e-3, "one_cycle"), (1.0, 0.5, 1e-3, "fine_tune")))
    c = lr_curve(replace(r, size=64), batches_per_epoch=5)
    assert c["stage"].tolist() == [0] * 10 + [1] * 10 and c["size"].tolist() == [32] * 10 + [64] * 10
    assert c["epoch"].is_monotonic_increasing and c["epoch"].iloc[-1] == pytest.approx(3.8)


def test_show_plot_writes_a_png(tmp_path):
    out = tmp_path / "s.png"
    cmd = [sys.executable, "-m", "toolkit", "show", "warmup_exp", "--epochs", "6", "--plot", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"Written: {out}" in res.stdout
    assert "schedule" in res.stdout and "warmup_exp" in res.stdout
