"""Datasets by name or folder -> checked file lists -> fastai DataLoaders (DataBlock)."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.external import URLs, fastai_path, untar_data
from fastai.data.transforms import GrandparentSplitter, Normalize, image_extensions
from fastai.vision.augment import Resize, aug_transforms
from fastai.vision.core import imagenet_stats
from fastai.vision.data import ImageBlock
from fastai.vision.utils import verify_images

from .atomic import write_json
from .errors import DatasetError

# Datasets fetched by fastai's untar_data; `size` is the default training size (the book trains Imagenette at 224).
DOWNLOADS = {
    "imagenette": (URLs.IMAGENETTE, 224),
    "imagenette-320": (URLs.IMAGENETTE_320, 224),
    "imagenette-160": (URLs.IMAGENETTE_160, 128),
    "imagewoof-320": (URLs.IMAGEWOOF_320, 224),
    "imagewoof-160": (URLs.IMAGEWOOF_160, 128),
}
EMBEDDED = ("digits",)  # written from data shipped inside installed packages: no download

# ImageNet wnids of Imagenette and Imagewoof, mapped to readable class names.
WNID_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
    "n02086240": "Shih-Tzu", "n02087394": "Rhodesian ridgeback", "n02088364": "beagle",
    "n02089973": "English foxhound", "n02093754": "Border terrier", "n02096294": "Australian terrier",
    "n02099601": "golden retriever", "n02105641": "Old English sheepdog", "n02111889": "Samoyed",
    "n02115641": "dingo",
}

SPLITS = ("train", "val")


def toolkit_home() -> Path:
    """Where the toolkit caches what it derives (embedded datasets, image checks, stats): $TOOLKIT_HOME."""
    return Path(os.environ.get("TOOLKIT_HOME", Path.home() / ".cache" / "toolkit")).expanduser()


@dataclass(frozen=True)
class Dataset:
    """A checked image folder in Imagenette's layout, with its augmentation defaults."""
    name: str
    path: Path
    files: dict[str, tuple[Path, ...]]  # split -> usable image files (bad ones removed)
    classes: tuple[str, ...]            # folder names, sorted
    default_size: int
    aug: dict = field(default_factory=dict)  # aug_transforms kwargs this dataset needs (digits: no flips)
    bad_files: tuple[str, ...] = ()
    fingerprint: str = ""

    @property
    def n_train(self) -> int:
        return len(self.files["train"])


def readable(folder: str) -> str:
    """A class folder's display name: ImageNet wnids become words, anything else stays as it is."""
    return WNID_NAMES.get(folder, folder)


class FolderLabel:
    """Label = the parent folder's readable name (a class so worker processes can pickle it)."""
    def __call__(self, path) -> str:
        return readable(Path(path).parent.name)


# --- finding a dataset ------------------------------------------------------------------------------

def load(spec: str | os.PathLike) -> Dataset:
    """A dataset by name (`digits`, `imagenette-160`, ...) or by folder path, checked and ready to use."""
    spec = str(spec)
    aug = {}
    if spec in EMBEDDED:
        from .digits import ensure_digits
        path, aug = ensure_digits(toolkit_home() / "data"), {"do_flip": False, "max_rotate": 10.0}  # a flipped 2 is no digit
        default_size = 16  # the digits are 8x8 at heart: 16 px keeps every detail and costs a quarter of 32 px
    elif spec in DOWNLOADS:
        url, default_size = DOWNLOADS[spec]
        path = _download(spec, url)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise DatasetError(
                f"Dataset {spec!r} is neither a known dataset name ({', '.join([*EMBEDDED, *DOWNLOADS])}) "
                f"nor an existing folder. Pass a folder in Imagenette's layout (train/ and val/, one sub-folder "
                f"per class) or one of those names.")
        default_size = None
    files, classes = scan_folder(path)
    fp = fingerprint(path, files)
    bad = check_images(path, files, fp)
    if bad:
        shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(f"Skipping {len(bad)} unreadable or truncated image file(s) in {path} "
                      f"(the run goes on without them; delete or replace them to silence this):\n  {shown}",
                      stacklevel=2)
        bad_set = {path / b for b in bad}
        files = {s: tuple(f for f in fs if f not in bad_set) for s, fs in files.items()}
        _check_splits(path, files, classes)
    if default_size is None:
        default_size = _native_size(files["train"][0])
    return Dataset(name=spec, path=path, files=files, classes=classes, default_size=default_size,
                   aug=aug, bad_files=tuple(bad), fingerprint=fp)


def _download(name: str, url: str) -> Path:
    """fastai's untar_data, with the usual offline failure turned into advice on where the data goes."""
    try:
        return Path(untar_data(url))
    except KeyboardInterrupt:
        raise
    except Exception as e:  # requests, urllib and socket errors all mean the same thing to the user
        folder = url.rstrip("/").split("/")[-1].removesuffix(".tgz")
        dest = fastai_path("data") / folder
        raise DatasetError(
            f"Could not download dataset {name!r} from {url} ({type(e).__name__}: {e}). Without network access, "
            f"put the extracted folder at {dest} (fastai's data folder; set FASTAI_HOME to move it) or pass the "
            f"folder's path instead of the name, e.g. --dataset /path/to/{folder}.") from None


def scan_folder(path: Path) -> tuple[dict[str, tuple[Path, ...]], tuple[str, ...]]:
    """Image files per split of a folder in Imagenette's layout; a clear error for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"Dataset folder {path} does not exist or is not a folder.")
    missing = [s for s in SPLITS if not (path / s).is_dir()]
    if missing:
        raise DatasetError(
            f"Dataset folder {path} has no {' or '.join(s + '/' for s in missing)} sub-folder. Expected Imagenette's "
            f"layout: {path}/train/<class>/<image> and {path}/val/<class>/<image>.")
    exts = {e.lower() for e in image_extensions}
    files, classes = {}, {}
    for split in SPLITS:
        per_class = {}
        for d in sorted(p for p in (path / split).iterdir() if p.is_dir()):
            imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in exts and f.is_file())
            if imgs:
                per_class[d.name] = imgs
        classes[split] = tuple(per_class)
        files[split] = tuple(f for fs in per_class.values() for f in fs)
    vocab = classes["train"]
    _check_splits(path, files, vocab)
    extra = sorted(set(classes["val"]) - set(vocab))
    if extra:
        raise DatasetError(f"Dataset folder {path}: val/ has classes that train/ lacks ({', '.join(extra)}); "
                           f"a model cannot learn them. Add training images for them or remove them from val/.")
    return files, vocab


def _check_splits(path: Path, files: dict, classes: tuple) -> None:
    for split in SPLITS:
        if not files[split]:
            raise DatasetError(f"Dataset folder {path}: {split}/ holds no readable images (expected "
                               f"{split}/<class>/<image>, with extensions such as .jpg, .jpeg, .png).")
    n_classes = len({f.parent.name for f in files["train"]})
    if n_classes < 2:
        raise DatasetError(f"Dataset folder {path}: train/ has {n_classes} class with images ({', '.join(classes)}); "
                           f"classification needs at least two class sub-folders.")


def fingerprint(path: Path, files: dict) -> str:
    """A hash of the listing (relative path, size, mtime) that changes whenever the source does."""
    h = hashlib.sha1()
    for split in SPLITS:
        for f in files[split]:
            st = f.stat()
            h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cache_json(kind: str, key: str, compute):
    """Read toolkit_home()/kind/key.json, or compute it and write it atomically (temporary name, then rename)."""
    dest = toolkit_home() / kind / f"{key}.json"
    if dest.exists():
        try:
            return json.loads(dest.read_text())
        except json.JSONDecodeError:
            pass  # a damaged cache entry is recomputed
    value = compute()
    write_json(dest, value)
    return value


def check_images(path: Path, files: dict, fp: str) -> list[str]:
    """Relative paths of files PIL cannot decode, found once per source listing (fastai's verify_images) and cached."""
    def compute():
        all_files = [f for s in SPLITS for f in files[s]]
        bad_idx = verify_images(all_files)
        return sorted(str(f.relative_to(path)) for f in bad_idx)
    return _cache_json("checks", fp, compute)


def _native_size(img_path: Path) -> int:
    from PIL import Image
    with Image.open(img_path) as im:
        return min(224, min(im.size))


# --- DataLoaders ------------------------------------------------------------------------------------

def dataloaders(ds: Dataset, size: int, bs: int, presize: float = 2.0, min_scale: float = 0.75,
                normalize: str = "none", num_workers: int | None = None, augment: bool = True, extra_tfms=()):
    """fastai DataLoaders as in fastbook chapter 7: item Resize to presize*size, then batch aug_transforms(size).

    `extra_tfms`: more batch transforms (an automatic-augmentation policy), placed by their `order`.
    """
    batch_tfms = [*aug_transforms(size=size, min_scale=min_scale, **ds.aug), *extra_tfms] if augment else []
    if normalize == "imagenet":
        batch_tfms.append(Normalize.from_stats(*imagenet_stats))
    elif normalize == "data":
        batch_tfms.append(Normalize.from_stats(*dataset_stats(ds, size)))
    vocab = [readable(c) for c in ds.classes]
    block = DataBlock(blocks=(ImageBlock, CategoryBlock(vocab=vocab, sort=False)),  # class ids in folder order
                      get_y=FolderLabel(), splitter=GrandparentSplitter(train_name="train", valid_name="val"),
                      item_tfms=Resize(round(size * presize) if augment else size), batch_tfms=batch_tfms)
    items = [*ds.files["train"], *ds.files["val"]]
    kw = {} if num_workers is None else {"num_workers": num_workers}
    return block.dataloaders(items, bs=bs, **kw)


def dataset_stats(ds: Dataset, size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images at `size` (in [0, 1]), computed once and cached."""
    def compute():
        dls = dataloaders(ds, size, bs=128, augment=False)
        return channel_stats(xb for xb, _ in dls.train.new(shuffle=False, drop_last=False))
    stats = _cache_json("stats", f"{ds.fingerprint}-{size}", compute)
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
