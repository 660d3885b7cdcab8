"""MixUp on part of a batch, CutMix, and the MixUp/CutMix switch, as one fastai callback.

Built on fastai's MixHandler, which swaps the loss for lerp(loss(y_partner), loss(y), lam) per sample and restores
it after training; so it composes with label smoothing (the wrapped loss is whatever the recipe uses). Samples
outside the mixed part keep lam = 1: their loss is their own label's, unchanged.
Plain MixUp on whole batches stays fastai's `MixUp`; this class covers what fastai's callbacks cannot do.
"""
from __future__ import annotations

import random

import torch
from fastai.callback.mixup import CutMix, MixHandler
from torch.distributions import Beta


class Mix(MixHandler):
    """Per batch: CutMix with probability `switch` (when both are on), else MixUp; only the first `frac` mixed."""

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0, switch: float = 0.5, frac: float = 1.0):
        super().__init__(mixup or cutmix)
        self.mixup, self.cutmix, self.switch, self.frac = mixup, cutmix, switch, frac
        self.mixup_beta = Beta(torch.tensor(float(mixup)), torch.tensor(float(mixup))) if mixup else None
        self.cutmix_beta = Beta(torch.tensor(float(cutmix)), torch.tensor(float(cutmix))) if cutmix else None

    def before_batch(self):
        x, y = self.x, self.y
        n = y.size(0)
        k = max(1, round(self.frac * n))           # the mixed part: the first k samples of the batch
        use_cutmix = self.cutmix_beta is not None and (self.mixup_beta is None or random.random() < self.switch)
        self.kind = "cutmix" if use_cutmix else "mixup"
        partner = torch.randperm(n, device=x.device)
        self.yb1 = (y[partner],)
        lam = torch.ones(n, device=x.device)
        xb = x.clone()
        if use_cutmix:                             # one box for the mixed part, as fastai's CutMix
            _, _, h, w = x.shape
            x1, y1, x2, y2 = CutMix.rand_bbox(self, w, h, self.cutmix_beta.sample((1,)).to(x.device))
            xb[:k, ..., y1:y2, x1:x2] = x[partner][:k, ..., y1:y2, x1:x2]
            lam[:k] = 1 - float((x2 - x1) * (y2 - y1)) / (w * h)
        else:                                      # fastai's MixUp: lam per sample, the larger weight on itself
            m = self.mixup_beta.sample((k,)).to(x.device)
            lam[:k] = torch.maximum(m, 1 - m)
            shape = (k,) + (1,) * (x.dim() - 1)
            xb[:k] = torch.lerp(x[partner][:k], x[:k], lam[:k].view(shape))
        self.lam = lam
        self.learn.xb = (xb,)
        if not self.stack_y:                       # a loss without integer targets gets mixed targets instead
            self.learn.yb = (torch.lerp(self.yb1[0].float(), y.float(), lam.view((n,) + (1,) * (y.dim() - 1))),)
