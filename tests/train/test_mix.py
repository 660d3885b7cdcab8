"""MixUp on part of the batch, CutMix and the switch: what each batch becomes, and the loss, checked by hand."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from toolkit.recipes import registry
from toolkit.train.mix import Mix
from toolkit.data.pipeline import dataloaders, prepare
from toolkit.train.learner import build_learner


class Watch(Callback):
    """Keeps each training batch as it was before mixing, and checks the loss after."""
    order = -10  # before Mix changes the batch

    def __init__(self):
        self.seen = []

    def before_batch(self):
        if self.training:
            self.orig = (self.x.clone(), self.y.clone())

    def after_loss(self):
        if not self.training:
            return
        mix, pred = self.learn.mix, self.pred.detach().float()
        eps = getattr(mix.old_lf, "eps", 0.0)
        logp = F.log_softmax(pred, dim=-1)

        def ls(y):  # label-smoothed cross-entropy per sample, by hand
            return (1 - eps) * -logp.gather(1, y[:, None])[:, 0] + eps / pred.shape[-1] * -logp.sum(-1)
        expected = (mix.lam * ls(self.orig[1]) + (1 - mix.lam) * ls(mix.yb1[0])).mean()
        self.seen.append(dict(x0=self.orig[0], x=self.x.detach().clone(), lam=mix.lam.clone(), kind=mix.kind,
                              loss=float(self.learn.loss), expected=float(expected)))


def _train(tiny, epochs=1, **changes):
    recipe = replace(registry.get("normalize"), dataset=str(tiny), size=32, bs=16, epochs=epochs,
                     label_smoothing=0.1, **changes)
    watch = Watch()
    learn = build_learner(recipe, dataloaders(recipe, prepare(recipe, progress="none"), 32), cbs=[watch])
    assert any(isinstance(cb, Mix) for cb in learn.cbs)
    set_seed(0, reproducible=True)  # the switch draws with Python's random: fixed, so the test is too
    with learn.no_bar(), learn.no_logging():
        learn.fit(epochs, 1e-3)
    assert watch.seen, "no training batch was seen"
    return watch.seen


def test_partial_mixup_leaves_the_rest_of_the_batch_untouched(tiny):
    for b in _train(tiny, mixup=0.4, mix_frac=0.25):
        k = round(0.25 * len(b["x"]))
        assert torch.equal(b["x"][k:], b["x0"][k:]) and (b["lam"][k:] == 1).all()
        assert (b["lam"][:k] >= 0.5).all() and not torch.equal(b["x"][:k], b["x0"][:k])
        assert b["loss"] == pytest.approx(b["expected"], rel=1e-5)  # untouched samples count with their own label


def test_cutmix_pastes_a_box_and_weights_the_loss_by_its_area(tiny):
    for b in _train(tiny, cutmix=1.0):
        diff = (b["x"] != b["x0"]).any(dim=1)                # pixels that changed, per sample
        lam = b["lam"][0].item()
        assert (b["lam"] == lam).all() and b["kind"] == "cutmix"
        changed_area = diff.float().mean(dim=(1, 2)).max().item()
        assert changed_area <= 1 - lam + 1e-6                  # only inside the box
        assert b["loss"] == pytest.approx(b["expected"], rel=1e-5)


def test_switch_uses_both_over_batches(tiny):
    seen = _train(tiny, epochs=4, mixup=0.4, cutmix=1.0, mix_switch=0.5)
    kinds = {b["kind"] for b in seen}
    assert kinds == {"mixup", "cutmix"}
    for b in seen:
        assert b["loss"] == pytest.approx(b["expected"], rel=1e-5)
