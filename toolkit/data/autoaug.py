"""RandAugment, TrivialAugment and AutoAugment, drawn per sample and applied to whole batches on their device.

The policies' magnitude tables come from torchvision (`RandAugment`, `TrivialAugmentWide` and `AutoAugment` with
the ImageNet policy), and so do the image ops that work on batches (`equalize`, `autocontrast`, `posterize`,
`rgb_to_grayscale`). torchvision's policy classes draw one operation and one magnitude per call, so applied to a
batch every image gets the same change; here every sample draws its own operation(s) and magnitude(s), and each
operation then runs once on the sub-batch that drew it, with a magnitude per sample (blends, thresholds and affine
matrices take a tensor of them). That is the hand-written part, and why: per-sample draws at batch speed.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from fastai.torch_core import TensorImage
from fastai.vision.augment import RandTransform
from torchvision.transforms.v2 import AutoAugment as TVAutoAugment
from torchvision.transforms.v2 import AutoAugmentPolicy, RandAugment, TrivialAugmentWide

from ..recipes.recipe import Recipe
from ..recipes.vocabulary import OPS, POLICIES
from .augment import projective_grid

_TV_NAMES = {"auto_contrast": "AutoContrast", "brightness": "Brightness", "color": "Color", "contrast": "Contrast",
             "equalize": "Equalize", "invert": "Invert", "posterize": "Posterize", "rotate": "Rotate",
             "sharpness": "Sharpness", "shear_x": "ShearX", "shear_y": "ShearY", "solarize": "Solarize",
             "translate_x": "TranslateX", "translate_y": "TranslateY"}
_NAMES_TV = {v: k for k, v in _TV_NAMES.items()}


def _space(policy: str, op: str, bins: int, size: int):
    """(magnitudes per bin or None, signed) of `op` under `policy`, from torchvision's tables where it has one."""
    if op == "solarize_add":   # original AutoAugment: add up to 110/255 to the darker half
        return torch.linspace(0, 110 / 255, bins), False
    if op == "cutout":         # a square of up to half the side, filled with grey
        return torch.linspace(0, 0.5, bins), False
    if op == "invert":
        return None, False
    table = {"randaugment": RandAugment, "trivialaugment": TrivialAugmentWide,
             "autoaugment": TVAutoAugment}[policy]._AUGMENTATION_SPACE
    fn, signed = table[_TV_NAMES[op]]
    return fn(bins, size, size), signed


# --- the operations: x is k x C x H x W float in [0, 1], m a tensor of k magnitudes -------------------------

def _col(m):
    return m.view(-1, 1, 1, 1)


def _blend(a, b, factor):
    return (_col(factor) * a + (1 - _col(factor)) * b).clamp_(0, 1)


def _gray(x):
    return TF.rgb_to_grayscale(x, num_output_channels=x.shape[1]) if x.shape[1] == 3 else x


def _sharp_degenerate(x):
    kernel = torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=x.dtype, device=x.device) / 13
    blurred = F.conv2d(x.reshape(-1, 1, *x.shape[-2:]), kernel[None, None]).reshape(*x.shape[:2], *[
        s - 2 for s in x.shape[-2:]])
    out = x.clone()
    out[..., 1:-1, 1:-1] = blurred  # PIL keeps the border pixels, and so does torchvision
    return out


def _affine(x, m, kind):
    n, _, h, w = x.shape
    mat = torch.eye(3, device=x.device, dtype=x.dtype).repeat(n, 1, 1)
    if kind == "rotate":
        t = m * math.pi / 180
        mat[:, 0, 0], mat[:, 0, 1], mat[:, 1, 0], mat[:, 1, 1] = t.cos(), -t.sin(), t.sin(), t.cos()
    elif kind == "shear_x":
        mat[:, 0, 1] = m
    elif kind == "shear_y":
        mat[:, 1, 0] = m
    elif kind == "translate_x":
        mat[:, 0, 2] = 2 * m / w
    elif kind == "translate_y":
        mat[:, 1, 2] = 2 * m / h
    grid = projective_grid(mat, h) if h == w else F.affine_grid(mat[:, :2], list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # torchvision: black fill


def _cutout(x, m):
    n, _, h, w = x.shape
    side = (m * h).round()
    cy, cx = torch.rand(n, device=x.device) * h, torch.rand(n, device=x.device) * w
    ys, xs = torch.arange(h, device=x.device).view(1, h, 1), torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy.view(-1, 1, 1)).abs() <= side.view(-1, 1, 1) / 2) & \
             ((xs - cx.view(-1, 1, 1)).abs() <= side.view(-1, 1, 1) / 2)
    return torch.where(inside[:, None], torch.full_like(x, 0.5), x)


def _posterize(x, bits):
    out = torch.empty_like(x)
    u8 = (x * 255).round().to(torch.uint8)
    for b in bits.unique().tolist():  # one call per distinct bit depth (at most 7)
        sel = bits == b
        out[sel] = TF.posterize(u8[sel], int(b)).float() / 255
    return out


APPLY = {
    "auto_contrast": lambda x, m: TF.autocontrast(x),
    "equalize": lambda x, m: TF.equalize((x * 255).round().to(torch.uint8)).float() / 255,
    "invert": lambda x, m: 1 - x,
    "brightness": lambda x, m: _blend(x, torch.zeros_like(x), 1 + m),
    "color": lambda x, m: _blend(x, _gray(x), 1 + m),
    "contrast": lambda x, m: _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), 1 + m),
    "sharpness": lambda x, m: _blend(x, _sharp_degenerate(x), 1 + m),
    "posterize": _posterize,
    "solarize": lambda x, m: torch.where(x >= _col(m), 1 - x, x),
    "solarize_add": lambda x, m: torch.where(x < 0.5, (x + _col(m)).clamp(max=1), x),
    "rotate": lambda x, m: _affine(x, m, "rotate"),
    "shear_x": lambda x, m: _affine(x, m, "shear_x"),
    "shear_y": lambda x, m: _affine(x, m, "shear_y"),
    "translate_x": lambda x, m: _affine(x, m, "translate_x"),
    "translate_y": lambda x, m: _affine(x, m, "translate_y"),
    "cutout": _cutout,
}


class BatchPolicy(RandTransform):
    """An automatic augmentation policy drawn per sample on a batch of float images in [0, 1] (training only).

    randaugment:    `n` operations per sample, each chosen uniformly, all at magnitude bin `m` of 31
    trivialaugment: one operation per sample at a uniformly drawn magnitude bin of 31 (the "wide" ranges)
    autoaugment:    one of the 25 sub-policies of the ImageNet policy per sample, each operation with its probability
    Operations outside `ops` are never applied (an AutoAugment step that names one does nothing); rotations are
    capped at `max_rotate` degrees when given (digits: never upside down).
    """
    split_idx, order = 0, 35  # after BatchAugment (30), before Normalize

    def __init__(self, policy: str = "randaugment", n: int = Recipe.autoaug_n, m: int = Recipe.autoaug_m, ops: tuple[str, ...] = OPS,
                 max_rotate: float | None = None):
        super().__init__(p=1.0)
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}")
        self.policy, self.n, self.m, self.ops, self.max_rotate = policy, n, m, tuple(ops), max_rotate
        self.bins = 10 if policy == "autoaugment" else 31
        self.subpolicies = TVAutoAugment(AutoAugmentPolicy.IMAGENET)._policies
        self.last = []  # (op, sample indices) applied in the last call: what tests and curious users can inspect

    def encodes(self, x: TensorImage):
        out = x.as_subclass(torch.Tensor).clone()
        n, size = out.shape[0], out.shape[-1]
        self.last = []
        for step in self._draw(n):
            for op, (idx, bins) in step.items():
                mags, signed = _space(self.policy, op, self.bins, size)
                m = (mags[bins] if mags is not None else torch.zeros(len(idx))).to(out.device, out.dtype)
                if signed:
                    m = m * (torch.randint(0, 2, (len(idx),), device=out.device) * 2 - 1).to(out.dtype)
                if op == "rotate" and self.max_rotate is not None:
                    m = m.clamp(-self.max_rotate, self.max_rotate)
                out[idx] = APPLY[op](out[idx], m).to(out.dtype)
                self.last.append((op, idx))
        return TensorImage(out)

    def _draw(self, n: int):
        """Per step, {op: (sample indices, magnitude bins)} for the samples that apply `op` in that step."""
        steps = []
        if self.policy == "autoaugment":
            picks = [random.randrange(len(self.subpolicies)) for _ in range(n)]
            for k in range(2):
                step: dict = {}
                for i, p in enumerate(picks):
                    name, prob, b = self.subpolicies[p][k]
                    op = _NAMES_TV[name]
                    if op in self.ops and random.random() < prob:
                        step.setdefault(op, ([], []))
                        step[op][0].append(i)
                        step[op][1].append(b or 0)
                steps.append(step)
        else:
            layers = self.n if self.policy == "randaugment" else 1
            for _ in range(layers):
                step = {}
                for i in range(n):
                    op = random.choice(self.ops)
                    b = self.m if self.policy == "randaugment" else random.randrange(self.bins)
                    step.setdefault(op, ([], []))
                    step[op][0].append(i)
                    step[op][1].append(min(b, self.bins - 1))
                steps.append(step)
        return [{op: (torch.tensor(i), torch.tensor(b)) for op, (i, b) in s.items()} for s in steps]


def per_item_policy(policy: str, n: int = Recipe.autoaug_n, m: int = Recipe.autoaug_m):
    """torchvision's own policy object, for applying the same policy one uint8 image at a time (the benchmark)."""
    return {"randaugment": lambda: RandAugment(n, m), "trivialaugment": TrivialAugmentWide,
            "autoaugment": lambda: TVAutoAugment(AutoAugmentPolicy.IMAGENET)}[policy]()
