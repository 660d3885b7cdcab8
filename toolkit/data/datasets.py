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
from . import scan, sources
from .sources import SPLITS, image_exts

# Datasets fetched by fastai's untar_data: (name of the fastai URLs attribute, default training size in px).
# The book trains Imagenette at 224; the 160 px downloads at 128; CIFAR-10 at its own 32 px.
DOWNLOADS = {
    "imagenette": ("IMAGENETTE", 224),
    "imagenette-320": ("IMAGENETTE_320", 224),
    "imagenette-160": ("IMAGENETTE_160", 128),
    "imagewoof-320": ("IMAGEWOOF_320", 224),
    "imagewoof-160": ("IMAGEWOOF_160", 128),
    "pets": ("PETS", 224),
    "cifar10": ("CIFAR", 32),
}
# How a download is read, where it is not a folder in Imagenette's layout: (sub-folder, label_re). Oxford-IIIT Pets
# names each image by its breed (images/great_pyrenees_173.jpg) and has no split: valid_pct draws one.
NAMED_SOURCES = {"pets": ("images", r"^(.*)_\d+\.jpg$")}
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


def toolkit_home() -> Path:
    """Where the toolkit caches what it derives (embedded datasets, image checks, stats): $TOOLKIT_HOME."""
    home = Path(os.environ.get("TOOLKIT_HOME", Path.home() / ".cache" / "toolkit")).expanduser()
    return check_folder(home, "The cache folder TOOLKIT_HOME")


@dataclass(frozen=True)
class Dataset:
    """A checked dataset: which file has which label in which split (the one place every reader takes it from:
    the folder DataBlock, the pack, the proxy, export, the benchmarks), its augmentation defaults and its identity
    (`fingerprint`). How it was read: toolkit/data/sources.py."""
    name: str
    path: Path                          # the folder, or the CSV file
    files: dict[str, tuple[Path, ...]]  # split -> usable image files (bad ones removed)
    labels: dict[str, tuple[str, ...]]  # split -> each file's label, in the same order
    classes: tuple[str, ...]            # the training labels, sorted
    default_size: int
    aug: dict = field(default_factory=dict)  # aug_transforms kwargs this dataset needs (digits: no flips)
    bad_files: tuple[str, ...] = ()
    fingerprint: str = ""
    split: str = ""                     # how the split was decided, in words
    read: str = ""                      # how files and labels were read, when not from class folders
    scan_key: str = ""                  # what its decode pass is cached under (`scanned`)

    @property
    def root(self) -> Path:
        """The folder its files are named relative to (and its dataset.json sits in)."""
        return self.path if self.path.is_dir() else self.path.parent

    @property
    def rule(self) -> str:
        """How it was read and split, as its identity (fingerprint, pack) holds it."""
        return sources.rule(self.read, self.split)

    def relative(self, f: Path) -> str:
        """A file's name relative to the dataset's root (with ../ where a CSV's `folder` points elsewhere)."""
        return os.path.relpath(f, self.root)

    def items(self, split: str) -> list[tuple[Path, str]]:
        return list(zip(self.files[split], self.labels[split]))

    def describe(self) -> dict:
        """What a run's record keeps of its dataset: how it was read and split, and what it is a proxy of."""
        proxy = self.root / PROXY_INFO
        out = {"read": self.read or "class folders", "split": self.split}
        if proxy.is_file():
            try:
                out["proxy_of"] = json.loads(proxy.read_text())
            except (OSError, ValueError):
                pass
        return out

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


class LabelOf:
    """A file's readable label, from the dataset's lists (a class so worker processes can pickle it)."""
    def __init__(self, ds: Dataset):
        self.labels = {str(f): readable(c) for s in SPLITS for f, c in ds.items(s)}

    def __call__(self, path) -> str:
        return self.labels[str(path)]


# --- finding a dataset ------------------------------------------------------------------------------

def options_of(recipe) -> dict:
    """A recipe's dataset options (toolkit/data/sources.py): how its dataset is read and split."""
    return {k: getattr(recipe, k) for k in sources.OPTIONS}


def of_recipe(recipe) -> "Dataset":
    """The dataset of a resolved recipe, read as its options say."""
    return load(recipe.dataset, **options_of(recipe))


def load(spec: str | os.PathLike, **options) -> Dataset:
    """A dataset by name (`digits`, `pets`, ...), folder or CSV file, read as `options` say (the dataset options of
    toolkit/data/sources.py; those left out at their defaults), checked and ready to use."""
    unknown = sorted(set(options) - set(sources.OPTIONS))
    if unknown:
        raise DatasetError(f"Unknown dataset option(s) {', '.join(unknown)}; the options are "
                           f"{', '.join(sources.OPTIONS)}.")
    options = {**sources.default_options(), **options}
    problems = [msg for ok, msg in split_checks(options["valid_pct"], options["split_seed"]) if not ok]
    if problems:
        raise DatasetError(f"Cannot split dataset {spec}: " + "; ".join(problems) + ".")
    spec = str(spec)
    aug = {}
    if spec in EMBEDDED:
        from .digits import ensure_digits
        path, aug = ensure_digits(toolkit_home() / "data"), {"do_flip": False, "max_rotate": 10.0}  # a flipped 2 is no digit
    elif spec in DOWNLOADS:
        path = _download(spec, DOWNLOADS[spec][0])
        if spec in NAMED_SOURCES:
            sub, pattern = NAMED_SOURCES[spec]
            path, options["label_re"] = path / sub, pattern
    else:
        path = _folder(spec)
    if options["dataset_hash"] and sources.is_table(path) and sources.file_hash(path) != options["dataset_hash"]:
        raise DatasetError(f"{sources.named(path)} has changed since this run was planned (its content hash was "
                           f"{options['dataset_hash']}, now {sources.file_hash(path)}): the run would read other "
                           f"labels than its record says. Plan the runs again (toolkit run), or put the file back.")
    root = path if path.is_dir() else path.parent
    if spec not in EMBEDDED and folder_settings(root).get("flip") is False:
        aug = {"do_flip": False}
    listing = sources.read(path, options)
    files, labels = listing.files, listing.labels
    fp = fingerprint(root, files, labels, sources.rule(listing.read, listing.split), labelled=bool(listing.read))
    key = listing_key(root, files)
    bad = {rel for rel, info in scanned(root, all_files(files), key).items() if "error" in info}
    if bad:
        shown = "\n  ".join(sorted(bad)[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(f"Skipping {len(bad)} unreadable or truncated image file(s) in {path} "
                      f"(the run goes on without them; delete or replace them to silence this):\n  {shown}",
                      stacklevel=2)
        keep = {s: [os.path.relpath(f, root) not in bad for f in files[s]] for s in SPLITS}
        files = {s: tuple(f for f, k in zip(files[s], keep[s]) if k) for s in SPLITS}
        labels = {s: tuple(c for c, k in zip(labels[s], keep[s]) if k) for s in SPLITS}
        sources.check_listing(path, files, labels, {"train": "training (its readable images)",
                                                    "val": "validation (its readable images)"})
    size = default_size(spec, options, listing)
    return Dataset(name=spec, path=path, files=files, labels=labels, classes=tuple(sorted(set(labels["train"]))),
                   default_size=size, aug=aug, bad_files=tuple(sorted(bad)), fingerprint=fp, split=listing.split,
                   read=listing.read, scan_key=key)


def _folder(spec: str) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetError(
            f"Dataset {spec!r} is neither a known dataset name ({', '.join([*EMBEDDED, *DOWNLOADS])}) "
            f"nor an existing folder or file. Pass a folder of images, one sub-folder per class (split by "
            f"valid_pct), or in Imagenette's layout (train/ beside val/, valid/ or test/, one sub-folder per class "
            f"each); a CSV of file names and labels; or one of those names.")
    if not path.is_dir() and not sources.is_table(path):
        raise DatasetError(
            f"Dataset {spec!r} is a file, but neither a folder of images nor a table of file names and labels (a "
            f"table's name ends in .csv, .csv.gz or .tsv). Pass the folder that holds the images, or the CSV.")
    return path.resolve()


PROXY_INFO = "proxy.json"  # a proxy's record of what it was made from (toolkit/studies/proxies.py)
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


def default_size(spec: str | os.PathLike, options: dict | None = None, listing=None) -> int:
    """The training size of a recipe that leaves `size` unset, decided here only.

    A named dataset has its own (digits 16 px, Imagenette 224 px as in the book, its 160 px downloads 128 px,
    CIFAR-10 32 px); a folder or a CSV trains at its first training image's shorter side, up to MAX_DEFAULT_SIZE.
    No download needed. `listing`: the dataset's, when it was read already.
    """
    spec = str(spec)
    if spec in EMBEDDED:
        return EMBEDDED[spec]
    if spec in DOWNLOADS:
        return DOWNLOADS[spec][1]
    path = _folder(spec)
    options = {**sources.default_options(), **(options or {})}
    if not sources.is_table(path) and not options["label_re"]:
        return _native_size(path, _first_class_images(path))
    return _native_size(path, (listing or sources.read(path, options)).files["train"])


def with_dataset(recipe):
    """The recipe as it will run: its dataset named canonically, read as its options say and its size decided (see
    `default_size`). An option that does nothing on its dataset (valid_pct on a folder with its own split, a CSV's
    columns on a folder) is put back at its default, so that it neither changes a run's id nor says what did not
    happen; a CSV's columns are named, and its content hash recorded (toolkit/data/sources.py)."""
    name = canonical_name(recipe.dataset)
    options = sources.resolve(recipe, name, _fixed(name))
    return replace(recipe, dataset=name, size=recipe.size or default_size(name, options), **options)


def _fixed(name: str) -> dict | None:
    """What a named dataset decides of its own reading (None: a folder or CSV, read as the options say)."""
    return {"drawn": name in NAMED_SOURCES} if name in EMBEDDED or name in DOWNLOADS else None


def read_options(spec: str | os.PathLike, overrides=None) -> dict:
    """The dataset options `overrides` give (`key=value` strings or a dict, as --set takes them), resolved for the
    dataset `spec` as a run resolves them: what `toolkit data pack` and `toolkit data proxy` read a source with."""
    from ..recipes.overrides import apply_overrides, pairs
    given = pairs(overrides)
    unknown = sorted(set(given) - set(sources.OPTIONS) | ({"dataset_hash"} & set(given)))
    if unknown:
        raise DatasetError(f"--set {', '.join(unknown)}: not a dataset option. Dataset options: "
                           f"{', '.join(k for k in sources.OPTIONS if k != 'dataset_hash')}.")
    from ..recipes.overrides import check_settings
    check_settings(given, "A dataset option")   # its error names the option, not a recipe
    recipe = apply_overrides(Recipe(dataset=str(spec)), given)
    name = canonical_name(spec)
    return sources.resolve(recipe, name, _fixed(name))


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


def fingerprint(root: Path, files: dict, labels: dict, rule: str = "", labelled: bool = False) -> str:
    """A hash of the listing (relative path, size, mtime) that changes whenever the source does. How it was read
    and split (`rule`) is part of it when the split was drawn or the labels were not class folders, with each file's
    split, and then each file's label too: another column, expression or split is another dataset, with caches
    and a pack of its own. (A folder's own split is in its paths already: those hashes are as before.)"""
    h = hashlib.sha1(rule.encode())
    for split in SPLITS:
        for f, label in zip(files[split], labels[split]):
            st = f.stat()
            tail = f"\0{label}" if labelled else ""
            h.update(f"{split + chr(0) if rule else ''}{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}"
                     f"{tail}\n".encode())
    return h.hexdigest()[:16]


def files_hash(relative_paths) -> str:
    """A set of files, named relative to their dataset, as a short hash of their sorted names: which validation
    images a run's predictions are of (the packed and the folder loader agree on it)."""
    return hashlib.sha1("\n".join(sorted(map(str, relative_paths))).encode()).hexdigest()[:16]


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


def listing_key(root: Path, files: dict) -> str:
    """A hash of the files alone (relative path, size, mtime; not their labels or split): what a scan is keyed by,
    so that two label columns of one CSV, or two splits of one folder, share it."""
    h = hashlib.sha1(f"scan{scan.VERSION}".encode())
    for f in all_files(files):
        st = f.stat()
        h.update(f"{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def all_files(files: dict) -> list[Path]:
    """Every file of a listing once, sorted."""
    return sorted(set(f for s in SPLITS for f in files[s]))


def scanned(root: Path, files: list[Path], key: str) -> dict:
    """{relative path: what the decode pass found} for `files` (toolkit/data/scan.py), once per listing, cached
    under `key` (`listing_key` of those very files)."""
    return cache_json("scans", key, lambda: {os.path.relpath(f, root): info
                                             for f, info in zip(files, scan.scan_files(files))})


def scan_of(ds: Dataset) -> dict:
    """The decode pass of a dataset's files, the unreadable ones too (as its key was made when it was loaded)."""
    return scanned(ds.root, sorted(set(all_files(ds.files)) | {ds.root / b for b in ds.bad_files}), ds.scan_key)


def source_side(ds: Dataset) -> int:
    """The largest shorter side among the dataset's images, in px: the most a pack can store without inventing
    pixels (a pack center-crops each image to a square of its shorter side first). For a folder of mixed sizes this
    keeps every pixel of its largest images, and the smaller ones are upsampled as fastai's item Resize would.
    Read from the scan of its files."""
    found = scan_of(ds)
    return max((min(found[ds.relative(f)]["size"]) for s in SPLITS for f in ds.files[s]
                if "size" in found.get(ds.relative(f), {})), default=0)


def _first_class_images(path: Path):
    """The images of the class folders (of train/, or of the folder itself), in order: the first readable one
    gives the default size."""
    exts = image_exts()
    train = Path(path) / "train" if (Path(path) / "train").is_dir() else Path(path)   # or class folders alone
    for d in sorted(p for p in train.iterdir() if p.is_dir()):
        yield from sorted(p for p in d.iterdir() if p.suffix.lower() in exts and p.is_file())
    sources.read(path, sources.default_options())  # no image at all: raises the clear layout error


def _native_size(path: Path, files) -> int:
    """The shorter side of the first readable of `files`, capped at MAX_DEFAULT_SIZE."""
    from PIL import Image
    for f in files:
        try:
            with Image.open(f) as im:
                return min(MAX_DEFAULT_SIZE, min(im.size))
        except OSError:
            continue
    raise DatasetError(f"{sources.named(path)}: its training images are none of them readable.")
