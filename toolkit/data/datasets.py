"""Datasets by name or folder -> checked file lists; a recipe's dataset and size resolved in one place.

fastai is imported inside the functions that need it, so that resolving a recipe (`toolkit show`, the checks
before a sweep) stays quick.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..atomic import check_folder, write_json
from ..errors import DatasetError
from ..recipes.recipe import Recipe, split_checks

# Datasets fetched by fastai's untar_data: (name of the fastai URLs attribute, default training size in px).
# The book trains Imagenette at 224; the 160 px downloads at 128.
DOWNLOADS = {
    "imagenette": ("IMAGENETTE", 224),
    "imagenette-320": ("IMAGENETTE_320", 224),
    "imagenette-160": ("IMAGENETTE_160", 128),
    "imagewoof-320": ("IMAGEWOOF_320", 224),
    "imagewoof-160": ("IMAGEWOOF_160", 128),
}
EMBEDDED = {"digits": 16}  # written from data shipped inside installed packages (no download): default size
# digits: the 8x8 images at heart; 16 px keeps every detail and costs a quarter of 32 px.
MAX_DEFAULT_SIZE = 224  # a folder trains at its images' own size, up to this

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
    home = Path(os.environ.get("TOOLKIT_HOME", Path.home() / ".cache" / "toolkit")).expanduser()
    return check_folder(home, "The cache folder TOOLKIT_HOME")


@dataclass(frozen=True)
class Dataset:
    """A checked image folder, with its split, its augmentation defaults and its identity (`fingerprint`).

    A class's images sit in a folder named for it; the split is the folder's own (train/ beside val/, valid/ or
    test/) or, for a folder of class folders alone, drawn once here (`split`)."""
    name: str
    path: Path
    files: dict[str, tuple[Path, ...]]  # split -> usable image files (bad ones removed)
    classes: tuple[str, ...]            # folder names, sorted
    default_size: int
    aug: dict = field(default_factory=dict)  # aug_transforms kwargs this dataset needs (digits: no flips)
    bad_files: tuple[str, ...] = ()
    fingerprint: str = ""
    split: str = ""                     # how the split was decided, in words (`split_rule`)

    @property
    def n_train(self) -> int:
        return len(self.files["train"])

    @property
    def flips(self) -> bool:
        """Whether a horizontal flip keeps an image's label (digits, or a folder that says so: no)."""
        return self.aug.get("do_flip", True)


def readable(folder: str) -> str:
    """A class folder's display name: ImageNet wnids become words, anything else stays as it is."""
    return WNID_NAMES.get(folder, folder)


class FolderLabel:
    """Label = the parent folder's readable name (a class so worker processes can pickle it)."""
    def __call__(self, path) -> str:
        return readable(Path(path).parent.name)


# --- finding a dataset ------------------------------------------------------------------------------

def load(spec: str | os.PathLike, valid_pct: float = Recipe.valid_pct, split_seed: int = Recipe.split_seed) -> Dataset:
    """A dataset by name (`digits`, `imagenette-160`, ...) or by folder path, checked and ready to use. A folder of
    class folders alone is split here: `valid_pct` of each class validates, drawn with `split_seed`."""
    problems = [msg for ok, msg in split_checks(valid_pct, split_seed) if not ok]
    if problems:
        raise DatasetError(f"Cannot split dataset {spec}: " + "; ".join(problems) + ".")
    spec = str(spec)
    aug = {}
    if spec in EMBEDDED:
        from .digits import ensure_digits
        path, aug = ensure_digits(toolkit_home() / "data"), {"do_flip": False, "max_rotate": 10.0}  # a flipped 2 is no digit
    elif spec in DOWNLOADS:
        path = _download(spec, DOWNLOADS[spec][0])
    else:
        path = _folder(spec)
    if spec not in EMBEDDED and folder_settings(path).get("flip") is False:
        aug = {"do_flip": False}
    files, classes, split = scan_folder(path, valid_pct, split_seed)
    fp = fingerprint(path, files, split if _val_folder(path) is None else "")
    bad = check_images(path, files, fp)
    if bad:
        shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(f"Skipping {len(bad)} unreadable or truncated image file(s) in {path} "
                      f"(the run goes on without them; delete or replace them to silence this):\n  {shown}",
                      stacklevel=2)
        bad_set = {path / b for b in bad}
        files = {s: tuple(f for f in fs if f not in bad_set) for s, fs in files.items()}
        _check_splits(path, files, classes)
    return Dataset(name=spec, path=path, files=files, classes=classes, default_size=default_size(spec),
                   aug=aug, bad_files=tuple(bad), fingerprint=fp, split=split)


def _folder(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Dataset {spec!r} is neither a known dataset name ({', '.join([*EMBEDDED, *DOWNLOADS])}) "
            f"nor an existing folder. Pass a folder of images, one sub-folder per class (split by valid_pct), or "
            f"in Imagenette's layout (train/ beside val/, valid/ or test/, one sub-folder per class each), or one "
            f"of those names.")
    return path.resolve()


SETTINGS = "dataset.json"  # a folder's own facts: {"flip": false} = a mirrored image is another class (text, digits)


def folder_settings(path: Path) -> dict:
    """A folder's dataset.json, checked: {"flip": false} turns off flips in training and refuses tta=flip."""
    f = Path(path) / SETTINGS
    if not f.exists():
        return {}
    try:
        d = json.loads(f.read_text())
        if not isinstance(d, dict) or set(d) - {"flip", "why"} or not isinstance(d.get("flip", True), bool):
            raise ValueError('expected an object such as {"flip": false, "why": "a mirrored letter is no letter"}')
    except (OSError, ValueError) as e:
        raise DatasetError(f"Dataset folder {path}: {SETTINGS} cannot be used ({e}). It may hold only \"flip\" "
                           f"(true, or false when mirroring an image changes its class: training then never flips, "
                           f"and tta=flip is refused) and a \"why\" note; fix or remove it.") from None
    return d


def canonical_name(spec: str | os.PathLike) -> str:
    """A dataset as a run records it: its registered name, or the absolute path of its folder."""
    spec = str(spec)
    return spec if spec in EMBEDDED or spec in DOWNLOADS else str(_folder(spec))


def default_size(spec: str | os.PathLike) -> int:
    """The training size of a recipe that leaves `size` unset, decided here only.

    A named dataset has its own (digits 16 px, Imagenette 224 px as in the book, its 160 px downloads 128 px);
    a folder trains at its first training image's shorter side, up to MAX_DEFAULT_SIZE. No download needed.
    """
    spec = str(spec)
    if spec in EMBEDDED:
        return EMBEDDED[spec]
    if spec in DOWNLOADS:
        return DOWNLOADS[spec][1]
    return _native_size(_folder(spec))


def with_size(recipe):
    """The recipe as it will run: its dataset named canonically and its size decided (see `default_size`). On a
    dataset with a split of its own, valid_pct and split_seed do nothing and are put back at their defaults, so
    that they neither change a run's id nor say what did not happen."""
    name = canonical_name(recipe.dataset)
    r = replace(recipe, dataset=name, size=recipe.size or default_size(recipe.dataset))
    if has_own_split(name):
        r = replace(r, valid_pct=Recipe.valid_pct, split_seed=Recipe.split_seed)
    return r


def has_own_split(name: str) -> bool:
    """Whether a canonical dataset comes with its split (a named one; train/ beside val/, valid/ or test/)."""
    return name in EMBEDDED or name in DOWNLOADS or _val_folder(Path(name)) is not None


def _download(name: str, attr: str) -> Path:
    """fastai's untar_data, with the usual offline failure turned into advice on where the data goes."""
    from fastai.data.external import URLs, fastai_path, untar_data
    url = getattr(URLs, attr)
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


VALID_FOLDERS = ("val", "valid", "test")   # beside train/, the folder that validates (the first one found)
FOLDER_SPLIT = "the folder's own: train/ and {val}/"


def _val_folder(path: Path) -> str | None:
    return next((v for v in VALID_FOLDERS if (Path(path) / v).is_dir()), None) if (Path(path) / "train").is_dir() \
        else None


def split_rule(valid_pct: float, split_seed: int) -> str:
    """How a folder of class folders alone is split, in words: part of its identity."""
    return f"valid_pct={valid_pct:g} of each class, drawn with split_seed={split_seed}"


def scan_folder(path: Path, valid_pct: float = Recipe.valid_pct, split_seed: int = Recipe.split_seed):
    """(image files per split, classes, how the split was decided) of a folder: train/ beside val/, valid/ or
    test/ (each with one sub-folder per class), or one sub-folder per class alone, split here by `valid_pct`.
    A clear error for anything else."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"Dataset folder {path} does not exist or is not a folder.")
    val = _val_folder(path)
    if (path / "train").is_dir() and val is None:
        raise DatasetError(f"Dataset folder {path} has train/ but no {', '.join(v + '/' for v in VALID_FOLDERS)} "
                           f"beside it: the validation images go there, one sub-folder per class (or put the class "
                           f"folders at the top and let valid_pct split them).")
    if val is not None:
        per_split = {"train": _class_folders(path / "train"), "val": _class_folders(path / val)}
        split = FOLDER_SPLIT.format(val=val)
    else:
        per_split, split = _split(path, _class_folders(path), valid_pct, split_seed), split_rule(valid_pct, split_seed)
    files = {s: tuple(f for fs in per_split[s].values() for f in fs) for s in SPLITS}
    vocab = tuple(per_split["train"])
    _check_splits(path, files, vocab)
    extra = sorted(set(per_split["val"]) - set(vocab))
    if extra:
        raise DatasetError(f"Dataset folder {path}: {val}/ has classes that train/ lacks ({', '.join(extra)}); "
                           f"a model cannot learn them. Add training images for them or remove them from {val}/.")
    return files, vocab, split


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """{class folder name: its image files, sorted}, for every sub-folder of `root` holding images."""
    exts, out = image_exts(), {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in exts and f.is_file())
        if imgs:
            out[d.name] = imgs
    return out


def _split(path: Path, per_class: dict, valid_pct: float, split_seed: int) -> dict:
    """A stratified split, drawn once with a generator of its own (never the run's: every run and every recipe
    is judged on the same images, and the seeds' initial weights stay their own): `valid_pct` of each class's
    images, at least one, validate."""
    import numpy as np
    if not per_class:
        raise DatasetError(f"Dataset folder {path} holds no sub-folder of images. Expected one sub-folder per class "
                           f"({path}/<class>/<image>), or Imagenette's layout ({path}/train/<class>/<image> beside "
                           f"val/, valid/ or test/).")
    few = {c: len(fs) for c, fs in per_class.items() if len(fs) < 2}
    if few:
        raise DatasetError(f"Dataset folder {path}: class(es) {', '.join(f'{c} ({n} image)' for c, n in few.items())} "
                           f"have too few images for a split: each class needs at least 2, one to train on and one "
                           f"to validate. Add images, or remove the class folder.")
    rng, out = np.random.default_rng(split_seed), {"train": {}, "val": {}}
    for cls, fs in per_class.items():
        n_val = min(len(fs) - 1, max(1, round(valid_pct * len(fs))))
        chosen = set(rng.permutation(len(fs))[:n_val].tolist())
        out["val"][cls] = [f for i, f in enumerate(fs) if i in chosen]
        out["train"][cls] = [f for i, f in enumerate(fs) if i not in chosen]
    return out


def _check_splits(path: Path, files: dict, classes: tuple) -> None:
    val = _val_folder(path)
    names = {"train": "train/", "val": f"{val}/"} if val else {"train": "the folder", "val": "the folder"}
    for split in SPLITS:
        if not files[split]:
            raise DatasetError(f"Dataset folder {path}: {names[split]} holds no readable images (expected one "
                               f"sub-folder per class, with extensions such as .jpg, .jpeg, .png).")
    n_classes = len({f.parent.name for f in files["train"]})
    if n_classes < 2:
        raise DatasetError(f"Dataset folder {path}: {names['train']} has {n_classes} class with images "
                           f"({', '.join(classes)}); classification needs at least two class sub-folders.")


def fingerprint(path: Path, files: dict, rule: str = "") -> str:
    """A hash of the listing (relative path, size, mtime) that changes whenever the source does. A split drawn
    here is part of it (its rule, and each file's split): another valid_pct or split_seed is another dataset, with
    caches and a pack of its own. (A folder's own split is in its paths already: those hashes are as before.)"""
    h = hashlib.sha1(rule.encode())
    for split in SPLITS:
        for f in files[split]:
            st = f.stat()
            h.update(f"{split + chr(0) if rule else ''}{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_json(kind: str, key: str, compute):
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
        from fastai.vision.utils import verify_images
        all_files = [f for s in SPLITS for f in files[s]]
        bad_idx = verify_images(all_files)
        return sorted(str(f.relative_to(path)) for f in bad_idx)
    return cache_json("checks", fp, compute)


def source_side(ds: Dataset) -> int:
    """The largest shorter side among the dataset's images, in px: the most a pack can store without inventing
    pixels (a pack center-crops each image to a square of its shorter side first). For a folder of mixed sizes this
    keeps every pixel of its largest images, and the smaller ones are upsampled as fastai's item Resize would.
    Read from the image headers once per source listing and cached."""
    def compute():
        from PIL import Image
        side = 0
        for f in (f for s in SPLITS for f in ds.files[s]):
            try:
                with Image.open(f) as im:
                    side = max(side, min(im.size))
            except OSError:
                continue
        return {"side": side}
    return int(cache_json("sides", ds.fingerprint or hashlib.sha1(str(ds.path).encode()).hexdigest()[:16],
                          compute)["side"])


def image_exts() -> set[str]:
    """fastai's `image_extensions` (every extension with an image/* mime type), without importing fastai here."""
    import mimetypes
    return {k.lower() for k, v in mimetypes.types_map.items() if v.startswith("image/")}


def _native_size(path: Path) -> int:
    """The shorter side of the first readable training image (sorted order), capped at MAX_DEFAULT_SIZE."""
    from PIL import Image
    exts = image_exts()
    train = Path(path) / "train" if (Path(path) / "train").is_dir() else Path(path)   # or class folders alone
    for d in sorted(p for p in train.iterdir() if p.is_dir()):
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in exts and p.is_file()):
            try:
                with Image.open(f) as im:
                    return min(MAX_DEFAULT_SIZE, min(im.size))
            except OSError:
                continue
    scan_folder(path)  # no readable image: raises the clear layout or "holds no readable images" error
    raise DatasetError(f"Dataset folder {path}: its training images are none of them readable.")
