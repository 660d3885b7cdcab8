"""Per-sample augmentation of whole batches, on the device where the batch lives.

`BatchAugment` gives each image of a batch its own random resized crop, flip, rotation, zoom, perspective warp and
lighting change (the draws of fastai's `aug_transforms(min_scale=...)`), and resamples the batch to the training
size in a single `grid_sample` pass.

Hand-written because fastai's `aug_transforms` resamples twice (the affine ops at the stored size, then the crop)
and picks one crop per batch; one pass at the output size is several times cheaper, and the crop is per sample.
The random draws reuse fastai's own matrix helpers (flip_mat, rotate_mat, zoom_mat, _WarpCoord, logit lighting).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.torch_core import TensorImage
from fastai.vision.augment import RandTransform, _BrightnessLogit, _ContrastLogit, _WarpCoord, find_coeffs, flip_mat
from fastai.vision.augment import rotate_mat, zoom_mat

from ..recipes.recipe import Recipe


def projective_grid(h: torch.Tensor, size: int) -> torch.Tensor:
    """grid_sample's sampling grid for output pixels q in [-1, 1]^2: the point h @ (q, 1), per sample.

    Elementwise on purpose: F.affine_grid's batched matmul is an order of magnitude slower on the CPU.
    """
    lin = torch.linspace(-1, 1, size, device=h.device, dtype=h.dtype)
    gx, gy = lin.view(1, 1, size), lin.view(1, size, 1)
    m = h[:, :, :, None, None]
    u = m[:, 0, 0] * gx + m[:, 0, 1] * gy + m[:, 0, 2]
    v = m[:, 1, 0] * gx + m[:, 1, 1] * gy + m[:, 1, 2]
    w = m[:, 2, 0] * gx + m[:, 2, 1] * gy + m[:, 2, 2]
    return torch.stack([u / w, v / w], dim=-1)


def crop_mat(x: torch.Tensor, min_scale: float) -> torch.Tensor:
    """Per-sample square crops covering U(min_scale, 1) of the image area at a random place, as 3x3 matrices."""
    n = x.size(0)
    side = x.new_empty(n).uniform_(min_scale, 1.0).sqrt()    # fraction of the width (and height) kept
    cx = (x.new_empty(n).uniform_(-1, 1)) * (1 - side)        # centre, in grid_sample's [-1, 1] coordinates
    cy = (x.new_empty(n).uniform_(-1, 1)) * (1 - side)
    m = torch.zeros(n, 3, 3, device=x.device, dtype=x.dtype)
    m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2], m[:, 2, 2] = side, side, cx, cy, 1
    return m


class BatchAugment(RandTransform):
    """Training: per-sample crop + flip + rotate + zoom + warp + lighting, resampled once to `size`.

    Validation (and any split other than training): the whole image resized to `size`, as fastai's
    RandomResizedCropGPU does. Inputs larger than presize x size are first resized to that with antialiasing,
    so that a progressive-resizing stage sees what fastai's item Resize would have given it.
    """
    split_idx, order = None, 30  # runs on every split (it also resizes); after IntToFloatTensor, before Normalize

    def __init__(self, size: int, min_scale: float = Recipe.min_scale, presize: float = Recipe.presize, do_flip: bool = True,
                 max_rotate: float = 10.0, min_zoom: float = 1.0, max_zoom: float = 1.1, max_warp: float = 0.2,
                 max_lighting: float = 0.2, p_affine: float = 0.75, p_lighting: float = 0.75):
        super().__init__(p=1.0)
        self.size, self.min_scale, self.presize = int(size), min_scale, presize
        self.do_flip, self.max_rotate, self.min_zoom, self.max_zoom = do_flip, max_rotate, min_zoom, max_zoom
        self.max_warp, self.max_lighting, self.p_affine, self.p_lighting = max_warp, max_lighting, p_affine, p_lighting

    def before_call(self, b, split_idx):
        self.do, self.train = True, split_idx == 0

    def encodes(self, x: TensorImage):
        scale = 1 / 255 if x.dtype == torch.uint8 else 1.0  # uint8 batches: convert once, rescale the small output
        x = self._presize(x.as_subclass(torch.Tensor).float())
        n, c = x.shape[:2]
        h = torch.eye(3, device=x.device, dtype=x.dtype).expand(n, 3, 3)
        if self.train:
            h = self._affine(x) @ crop_mat(x, self.min_scale)
            if self.max_warp:  # fastai's perspective warp acts on the affine grid: one 3x3 projective matrix in all
                warp = _WarpCoord(magnitude=self.max_warp, p=self.p_affine)
                warp.before_call(x)
                coeffs = find_coeffs(warp.orig_pts, warp.targ_pts)
                h = torch.cat([coeffs, torch.ones_like(coeffs[:, :1])], 1).view(n, 3, 3) @ h
        out = F.grid_sample(x, projective_grid(h.as_subclass(torch.Tensor), self.size), mode="bilinear",
                            padding_mode="reflection", align_corners=True)
        if scale != 1.0:
            out.mul_(scale)
        if self.train and self.max_lighting:
            out = self._lighting(out)
        return TensorImage(out)

    def _presize(self, x):
        limit = max(self.size, round(self.size * self.presize))
        if x.shape[-1] > limit or x.shape[-2] > limit:
            x = F.interpolate(x, size=(limit, limit), mode="bilinear", antialias=True, align_corners=False)
        return x

    def _affine(self, x):
        """fastai's flip, rotate and zoom draws (per sample), composed in aug_transforms' order."""
        m = torch.eye(3, device=x.device, dtype=x.dtype).expand(x.size(0), 3, 3)
        if self.do_flip:
            m = m @ flip_mat(x, p=0.5)
        if self.max_rotate:
            m = m @ rotate_mat(x, max_deg=self.max_rotate, p=self.p_affine)
        if self.min_zoom < 1 or self.max_zoom > 1:
            m = m @ zoom_mat(x, min_zoom=self.min_zoom, max_zoom=self.max_zoom, p=self.p_affine)
        return m

    def _lighting(self, x):
        """fastai's Brightness then Contrast, in logit space, drawn per sample: sigmoid(c * (logit(x) + logit(b)))."""
        b, c = _BrightnessLogit(self.max_lighting, self.p_lighting), _ContrastLogit(self.max_lighting, self.p_lighting)
        b.before_call(x)
        c.before_call(x)
        y = torch.logit(x, eps=1e-7)
        y.add_(torch.logit(b.change.as_subclass(torch.Tensor), eps=1e-7)[:, None, None, None])
        y.mul_(c.change.as_subclass(torch.Tensor)[:, None, None, None])
        return y.sigmoid_()

