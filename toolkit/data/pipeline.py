"""The data pipeline of a recipe: one choice of loader (packed or folder) and one builder of batch transforms.

Training, the data benchmark and the statistics for `normalize=data` all build their DataLoaders here, so a
recipe's flags turn into the same transforms wherever it runs.

  packed  the packed image cache (toolkit/data/pack.py), read by the batch (toolkit/data/loader.py), augmented per sample
          on the device by `BatchAugment` (toolkit/data/augment.py)
  folder  fastai's DataBlock as in fastbook chapter 7: PIL per item, item Resize(presize x size), then
          batch `aug_transforms(size, min_scale)`
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import FuncSplitter, Normalize
from fastai.vision.augment import RandomErasing, Resize, aug_transforms
from fastai.vision.core import PILImage, imagenet_stats
from fastai.vision.data import ImageBlock

from .augment import BatchAugment
from .images import open_rgb
from .datasets import Dataset, LabelOf, cache_json, of_recipe, options_of, readable
from .loader import PackedDL, PackedItems, packed_dataloaders
from .pack import Pack, ensure_pack, pack_side
from ..errors import RecipeError
from ..recipes.recipe import Recipe
from ..recipes.stages import stage_plan


@dataclass(frozen=True)
class RunData:
    """What a resolved recipe trains on: the checked dataset, its stage plan and (loader=packed) its pack."""
    ds: Dataset
    plan: list          # [(size_px, epochs, lr, how)] per stage
    pack: Pack | None


def check_batches(recipe: Recipe, ds: Dataset) -> None:
    """A training set must make at least one full batch: the last, partial one is dropped (as fastai does), so a
    batch size above the number of training images would train on nothing and record chance as a result."""
    if recipe.bs > ds.n_train:
        raise RecipeError(f"Recipe {recipe.name!r} has bs={recipe.bs:,}, but {ds.name} has only {ds.n_train:,} "
                          f"training images: not one full batch, so the run would train on no image at all (the "
                          f"last, partial batch of an epoch is dropped). Use --set bs=N with N at most "
                          f"{ds.n_train:,}, and well below it for more than one step per epoch.")


def data_key(recipe: Recipe) -> tuple:
    """What decides a recipe's dataset: its name, folder or CSV, and how it is read and split."""
    return recipe.dataset, *options_of(recipe).values()


def prepare(recipe: Recipe, ds: Dataset | None = None, progress: str | None = None) -> RunData:
    """Load (or take) the dataset of a resolved recipe, plan its stages and build its pack if it needs one."""
    ds = ds or of_recipe(recipe)
    plan = stage_plan(recipe, recipe.size)
    pack = None
    if recipe.loader == "packed":  # stored at presize x the largest stage size, as fastai's item Resize would give,
        # at most the source's own side (`pack_side`)
        pack = ensure_pack(ds, pack_side(ds, max(p[0] for p in plan), recipe.presize), progress=progress)
    return RunData(ds, plan, pack)


def dataloaders(recipe: Recipe, data: RunData, size: int, num_workers: int | None = None, prefetch: int | None = None,
                augment: bool = True, stats_size: int | None = None):
    """The recipe's DataLoaders at `size` px, from its pack (loader=packed) or its image folder (loader=folder).

    `stats_size`: normalize=data with the statistics at that size (an evaluation at another size uses the ones
    the model was trained with)."""
    stats = normalize_stats(recipe, data, stats_size or size)
    tfms = batch_tfms(recipe, data.ds, size, stats, augment=augment)
    if recipe.loader == "folder":
        return folder_dataloaders(data.ds, size, recipe.bs, tfms, presize=recipe.presize if augment else 1.0,
                                  num_workers=num_workers)
    return packed_dataloaders(data.pack, recipe.bs, tfms, prefetch=prefetch)


def batch_tfms(recipe: Recipe, ds: Dataset, size: int, stats=None, augment: bool = True) -> list:
    """The recipe's flags as a list of batch transforms: augmentation, the automatic policy, Normalize, then random
    erasing (`sh`: on normalized batches, as fastai's Imagenette example does).

    `augment=False`: resize only (validation-style) on every split, for statistics and the benchmark's reads.
    """
    policy = [auto_policy(recipe, ds)] if recipe.autoaug and augment else []
    if recipe.loader == "folder":
        tfms = [*aug_transforms(size=size, min_scale=recipe.min_scale, **ds.aug)] if augment else []
    else:
        aug = dict(ds.aug)
        if not augment:
            aug.update(do_flip=False, max_rotate=0.0, max_zoom=1.0, max_warp=0.0, max_lighting=0.0)
        tfms = [BatchAugment(size, min_scale=recipe.min_scale if augment else 1.0, presize=recipe.presize, **aug)]
    tfms += policy
    if stats is not None:
        tfms.append(Normalize.from_stats(*stats))
    if recipe.sh and augment:
        tfms.append(RandomErasing(p=0.3, max_count=3, sh=recipe.sh))
    return tfms


def auto_policy(recipe: Recipe, ds: Dataset):
    """The recipe's automatic-augmentation policy, within the dataset's limits (digits: small rotations only)."""
    from ..recipes.vocabulary import parse_ops
    from .autoaug import BatchPolicy
    return BatchPolicy(recipe.autoaug, recipe.autoaug_n, recipe.autoaug_m,
                       parse_ops(recipe.autoaug_ops, recipe.autoaug_add), max_rotate=ds.aug.get("max_rotate"))


class InSplit:
    """Whether a file is one of `files`: the dataset's own split, whatever its folders (a class so worker processes
    can pickle it)."""
    def __init__(self, files):
        self.files = frozenset(map(str, files))

    def __call__(self, path) -> bool:
        return str(path) in self.files


class RGBImage(PILImage):
    """fastai's PILImage, opened from a file as the pack and the proxy read it (toolkit/data/images.py): an image
    deeper than 8 bits rescaled, where fastai's `convert("RGB")` would clip it to white."""
    @classmethod
    def create(cls, fn, **kwargs):
        return cls(open_rgb(fn)) if isinstance(fn, (str, os.PathLike)) else super().create(fn, **kwargs)


def folder_dataloaders(ds: Dataset, size: int, bs: int, tfms: list, presize: float = Recipe.presize,
                       num_workers: int | None = None):
    """fastai's DataBlock over the dataset's files and labels: item Resize(presize x size), then `tfms` on each
    batch."""
    vocab = [readable(c) for c in ds.classes]
    block = DataBlock(blocks=(ImageBlock(RGBImage), CategoryBlock(vocab=vocab, sort=False)),  # class ids in folder order
                      get_y=LabelOf(ds), splitter=FuncSplitter(InSplit(ds.files["val"])),
                      item_tfms=Resize(round(size * presize)), batch_tfms=tfms)
    items = [*ds.files["train"], *ds.files["val"]]
    kw = {} if num_workers is None else {"num_workers": num_workers}
    return block.dataloaders(items, bs=bs, **kw)


def valid_files(data: RunData) -> list[str]:
    """The validation images in the order the recipe's loader serves them, as paths relative to the dataset: the
    pack's own list (it may have skipped an image it could not decode), else the dataset's."""
    if data.pack is not None:
        return list(data.pack.meta["splits"]["val"]["files"])
    return [data.ds.relative(f) for f in data.ds.files["val"]]


# --- normalization statistics ------------------------------------------------------------------------

def normalize_stats(recipe: Recipe, data: RunData, size: int):
    """(mean, std) for the recipe's Normalize, or None: ImageNet's, or the training set's own at `size`."""
    if recipe.normalize == "imagenet":
        return imagenet_stats
    if recipe.normalize == "data":
        return pack_stats(data.pack, size) if recipe.loader == "packed" else dataset_stats(data.ds, size)
    return None


def dataset_stats(ds: Dataset, size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images read from the folder at `size` (in [0, 1]), cached."""
    def compute():
        dls = folder_dataloaders(ds, size, bs=128, tfms=[], presize=1.0)
        return channel_stats(xb for xb, _ in dls.train.new(shuffle=False, drop_last=False))
    stats = cache_json("stats", f"{ds.fingerprint}-{size}", compute)
    return stats["mean"], stats["std"]


def pack_stats(pack: Pack, size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a pack's training images resized to `size`, cached."""
    def compute():
        items = PackedItems(pack, "train", 1)  # split 1: resize only, no random draws
        tfms = [BatchAugment(size, min_scale=1.0, do_flip=False, max_rotate=0.0, max_zoom=1.0, max_warp=0.0,
                             max_lighting=0.0)]
        dl = PackedDL(items, bs=256, shuffle=False, prefetch=0, after_batch=tfms)
        return channel_stats(xb for xb, _ in dl)
    stats = cache_json("stats", f"{pack.meta['fingerprint']}-{size}-pack{pack.size}", compute)
    return stats["mean"], stats["std"]


def channel_stats(batches) -> dict:
    """Mean and std per channel over batches of N x 3 x H x W images, accumulated in float64."""
    import torch
    n, s, s2 = 0, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for xb in batches:
        x = xb.double()
        n += x.numel() // 3
        s += x.sum(dim=(0, 2, 3))
        s2 += (x * x).sum(dim=(0, 2, 3))
    mean = s / n
    std = (s2 / n - mean * mean).clamp_min(1e-12).sqrt()
    return {"mean": mean.tolist(), "std": std.tolist()}
