"""Which file has which label in which split: read once from a dataset as a user has it, in fastai's words.

  a folder     train/ beside val/, valid/ or test/ (one sub-folder per class in each): the folder's own split;
               or one sub-folder per class alone, split here by `valid_pct`
  file names   a folder and `label_re`: each image's label is the first group of the expression matched against its
               file name (fastai's `from_name_re`); split by the folder's own train/ and val/, or by `valid_pct`
  a CSV file   file names (`fn_col`, the first column by default) and labels (`label_col`, the second), relative to
               the CSV's folder or to `folder`, with `suff` appended (fastai's `from_csv`); split by `valid_col`, a
               boolean column (`is_valid` when there is one), or by `valid_pct`
  a DataFrame  from Python only: written once to a content-hashed CSV (`table_file`), then read as one

A split drawn here is stratified by label and drawn with a generator of its own (`split_seed`), never the run's:
every run and every recipe is judged on the same images, and each seed keeps its own initial weights.

The dataset options are recipe fields (OPTIONS), so they are set alike from the launcher (`--set label_col=...`)
and from Python (`toolkit.run(..., label_col=...)`); `resolve` puts an option that does nothing on a dataset back
at its default, and names the columns a CSV is read by, so that a run's id says what it read.
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError

SPLITS = ("train", "val")
VALID_FOLDERS = ("val", "valid", "test")   # beside train/, the folder that validates (the first one found)
FOLDER_SPLIT = "the folder's own: train/ and {val}/"
VALID_COL = "is_valid"                     # the boolean column a CSV's split is read from when it has one
# The recipe fields that say how a dataset is read (toolkit/recipes/recipe.py declares them, with their defaults).
OPTIONS = ("valid_pct", "split_seed", "fn_col", "label_col", "valid_col", "folder", "suff", "label_re", "label_delim",
           "dataset_hash")
CSV_OPTIONS = ("fn_col", "label_col", "valid_col", "folder", "suff", "label_delim", "dataset_hash")
DRAWN = ("valid_pct", "split_seed")
SHOWN = 5   # how many bad file names or rows an error lists


@dataclass(frozen=True)
class Listing:
    """A dataset's items as read: files and their labels per split, and how they were decided, in words."""
    files: dict[str, tuple[Path, ...]]
    labels: dict[str, tuple[str, ...]]
    split: str          # how the split was decided
    read: str = ""      # how files and labels were read, when not from class folders: part of the identity


def rule(read: str, split: str) -> str:
    """How a dataset was read and split, as its identity holds it: nothing for a folder's own split of class
    folders (its paths say it all), else the reading and the split in words."""
    own = not read and split.startswith("the folder's own")
    return "" if own else "\n".join(filter(None, [read, split]))


def image_exts() -> set[str]:
    """fastai's `image_extensions` (every extension with an image/* mime type), without importing fastai here."""
    return {k.lower() for k, v in mimetypes.types_map.items() if v.startswith("image/")}


def is_table(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith((".csv", ".csv.gz", ".tsv"))


def val_folder(path: Path) -> str | None:
    """The folder beside train/ that validates, if `path` has its own split."""
    path = Path(path)
    return next((v for v in VALID_FOLDERS if (path / v).is_dir()), None) if (path / "train").is_dir() else None


def split_rule(valid_pct: float, split_seed: int) -> str:
    """How a split drawn here is decided, in words: part of the dataset's identity."""
    return f"valid_pct={valid_pct:g} of each class, drawn with split_seed={split_seed}"


def file_hash(path: Path) -> str:
    """A CSV's content, as a short hash: the same file edited is another dataset."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


FRAMES = "tables"   # where a DataFrame's CSV is written, under TOOLKIT_HOME, named by its content


def table_file(df, home: Path) -> str:
    """A DataFrame as a CSV under `home`, named by its content, so that a Ray worker, `resume` and `--config` read
    the same data from the recipe alone. Written once, atomically."""
    from ..atomic import write_atomic
    text = df.to_csv(index=False)
    dest = Path(home) / FRAMES / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.csv"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, lambda p: Path(p).write_text(text))
    return str(dest)


def is_frame(path: str | os.PathLike) -> bool:
    """Whether a dataset is a DataFrame's CSV (`table_file`), which a user knows as their DataFrame, not a file."""
    path = Path(str(path))
    return path.parent.name == FRAMES and re.fullmatch(r"[0-9a-f]{16}\.csv", path.name) is not None


def named(path: str | os.PathLike) -> str:
    """A dataset as errors name it: "Dataset PATH", or for a DataFrame's CSV, the DataFrame."""
    return f"The DataFrame given as dataset (kept as {path})" if is_frame(path) else f"Dataset {path}"


# --- resolving the options of a recipe's dataset ---------------------------------------------------------------

def default_options() -> dict:
    """The dataset options at their defaults: the recipe fields' (toolkit/recipes/recipe.py)."""
    from ..recipes.recipe import Recipe
    return {k: getattr(Recipe, k) for k in OPTIONS}


def resolve(recipe, name: str, fixed: dict | None = None) -> dict:
    """The dataset options of `recipe` on the canonical dataset `name`, as a run will read it: those that do nothing
    there at their defaults; for a CSV its columns by name, its split column and its content hash. `fixed`: what a
    named dataset decides itself (pets: labels from file names)."""
    defaults = default_options()
    given = {k: getattr(recipe, k) for k in OPTIONS}
    if fixed is not None:            # a named dataset: only its drawn split, if it has one, is the recipe's
        keep = DRAWN if fixed.get("drawn") else ()
    elif is_table(name):
        cols = columns(Path(name), given)
        given.update(cols, dataset_hash=given["dataset_hash"] or file_hash(Path(name)))   # a recorded one is kept:
        # reading checks it against the file (toolkit/data/datasets.py `load`)
        keep = CSV_OPTIONS + (() if cols["valid_col"] else DRAWN)
    else:
        keep = ("label_re",) + (() if val_folder(Path(name)) else DRAWN)
    return {k: (given[k] if k in keep else defaults[k]) for k in OPTIONS}


def _read_table(path: Path, nrows: int | None = None):
    import pandas as pd
    try:
        return pd.read_csv(path, sep="\t" if str(path).lower().endswith(".tsv") else ",", nrows=nrows, dtype=str,
                           keep_default_na=False, na_values=[""])   # text as written: ids 0001, labels 01
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{named(path)} cannot be read as a CSV of file names and labels ({type(e).__name__}: "
                           f"{e}).") from None


def columns(path: Path, options: dict) -> dict:
    """The columns a CSV is read by, by name: `fn_col` (default: the first), `label_col` (the second), `valid_col`
    (default: `is_valid` if there is one, else none: the split is drawn). A clear error for one it lacks."""
    header = list(_read_table(path, nrows=0).columns)

    def pick(option: str, default_index: int | None) -> str:
        value = str(options[option])
        if value == "":
            if default_index is None:
                return VALID_COL if VALID_COL in header else ""
            if len(header) <= default_index:
                raise DatasetError(f"{named(path)} has {len(header)} column(s) ({', '.join(header)}); a CSV of "
                                   f"images needs a column of file names and one of labels.")
            return header[default_index]
        if value in header:
            return value
        if value.isdigit() and int(value) < len(header):   # fastai's fn_col=0, label_col=1: a column by position
            return header[int(value)]
        raise DatasetError(f"{named(path)} has no column {value!r} for {option} (its columns: "
                           f"{', '.join(header)}). Pass --set {option}=NAME with one of them.")
    return {"fn_col": pick("fn_col", 0), "label_col": pick("label_col", 1), "valid_col": pick("valid_col", None)}


# --- reading -----------------------------------------------------------------------------------------------------

def read(path: Path, options: dict) -> Listing:
    """The listing of a resolved dataset: a CSV, or a folder (class folders, or file names with `label_re`)."""
    if is_table(path):
        return _read_csv(path, options)
    return _read_folder(path, options)


def _read_folder(path: Path, options: dict) -> Listing:
    if not path.is_dir():
        raise DatasetError(f"Dataset folder {path} does not exist or is not a folder.")
    val = val_folder(path)
    if (path / "train").is_dir() and val is None:
        raise DatasetError(f"Dataset folder {path} has train/ but no {', '.join(v + '/' for v in VALID_FOLDERS)} "
                           f"beside it: the validation images go there, one sub-folder per class (or put the class "
                           f"folders at the top and let valid_pct split them).")
    pattern = options.get("label_re") or ""
    roots = {"train": path / "train", "val": path / val} if val else {"": path}
    if pattern:
        labeller, read = _name_labeller(pattern), f"labels from file names by label_re='{pattern}'"
        per_root = {k: _labelled(root, labeller, path) for k, root in roots.items()}
    else:
        read, per_root = "", {k: _class_folders(root) for k, root in roots.items()}
    if val:
        per_split, split = per_root, FOLDER_SPLIT.format(val=val)
    else:
        per_split = _split(path, per_root[""], options["valid_pct"], options["split_seed"])
        split = split_rule(options["valid_pct"], options["split_seed"])
    listing = _listing(per_split, split, read)
    _check(path, listing, "train/" if val else "the folder", f"{val}/" if val else "the folder")
    return listing


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """{class folder name: its image files, sorted}, for every sub-folder of `root` holding images."""
    exts, out = image_exts(), {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        imgs = sorted(f for f in d.iterdir() if f.suffix.lower() in exts and f.is_file())
        if imgs:
            out[d.name] = imgs
    return out


def _name_labeller(pattern: str):
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise DatasetError(f"label_re='{pattern}' is not a regular expression ({e}).") from None
    if rx.groups < 1:
        raise DatasetError(f"label_re='{pattern}' has no group: the label is the expression's first group, "
                           f"searched in each file name (as fastai's RegexLabeller takes it). Put the label's part "
                           f"in parentheses, e.g. {'^(.*)_[0-9]+[.]jpg$'!r} for great_pyrenees_173.jpg.") from None

    def label(name: str) -> str | None:
        m = rx.search(name)
        return None if m is None else m.group(1)
    return label


def _labelled(root: Path, labeller, path: Path) -> dict[str, list[Path]]:
    """{label: files} of every image under `root` (sub-folders too), each labelled by its file name."""
    exts = image_exts()
    files = sorted(f for f in root.rglob("*") if f.suffix.lower() in exts and f.is_file())
    out, unmatched = {}, []
    for f in files:
        label = labeller(f.name)
        if not label:
            unmatched.append(f.name)
        else:
            out.setdefault(label, []).append(f)
    if unmatched:
        raise DatasetError(f"Dataset folder {path}: label_re gives no label for {len(unmatched):,} of {len(files):,} "
                           f"image file(s), e.g. {', '.join(unmatched[:SHOWN])}. Fix the expression (its first group "
                           f"is the label, searched in each file name) or remove those files.")
    return dict(sorted(out.items()))


def _read_csv(path: Path, options: dict) -> Listing:
    import pandas as pd
    df = _read_table(path)
    cols = columns(path, options)
    fn_col, label_col, valid_col = cols["fn_col"], cols["label_col"], cols["valid_col"]
    where = f"{named(path)}"
    if df.empty:
        raise DatasetError(f"{where} has no rows.")
    labels = df[label_col]
    empty = [i for i, v in enumerate(labels) if pd.isna(v) or str(v).strip() == ""]
    if empty:
        raise DatasetError(f"{where}: column {label_col!r} is empty in {len(empty):,} row(s) (data rows "
                           f"{', '.join(str(i + 1) for i in empty[:SHOWN])}); every image needs a label.")
    labels = labels.astype(str)
    delim = options.get("label_delim") or ""
    if delim:
        multi = [i for i, v in enumerate(labels) if delim in v]
        if multi:
            raise DatasetError(f"{where}: column {label_col!r} holds several labels split by {delim!r} in "
                               f"{len(multi):,} row(s) (data row {multi[0] + 1}: {labels.iloc[multi[0]]!r}). That is "
                               f"multi-label classification, which the toolkit does not do: give each image one label.")
    names = df[fn_col]
    if names.isna().any():
        raise DatasetError(f"{where}: column {fn_col!r} is empty in data row {int(names.isna().values.argmax()) + 1}.")
    files = csv_files(path, df, {**options, **cols})
    root, folder, suff = files_root(path, options), options.get("folder") or "", options.get("suff") or ""
    seen, repeated = {}, []
    for i, f in enumerate(files):
        if f in seen:
            repeated.append((seen[f], i))
        seen.setdefault(f, i)
    if repeated:
        (a, b), n = repeated[0], len(repeated)
        raise DatasetError(f"{where}: {n:,} file(s) appear in more than one row (data rows {a + 1} and {b + 1} both "
                           f"name {files[a]}). Give each image one row, with one label and one split.")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DatasetError(f"{where}: {len(missing):,} of {len(files):,} file name(s) in column {fn_col!r} name no "
                           f"file (read relative to {root}{f', with suff={suff!r}' if suff else ''}), e.g. "
                           f"{', '.join(missing[:SHOWN])}. Fix the names, or pass --set folder=... (relative to the "
                           f"CSV's folder) or suff=....")
    if valid_col:
        valid = _booleans(df[valid_col], where, valid_col)
        per_split = {"train": {}, "val": {}}
        for f, label, v in zip(files, labels, valid):
            per_split["val" if v else "train"].setdefault(label, []).append(f)
        split = f"the column {valid_col!r}"
    else:
        per_class = {}
        for f, label in zip(files, labels):
            per_class.setdefault(label, []).append(f)
        per_split = _split(path, per_class, options["valid_pct"], options["split_seed"])
        split = split_rule(options["valid_pct"], options["split_seed"])
    read = (f"{path.name} (sha1 {file_hash(path)}): files from {fn_col!r}"
            + (f" in {folder}" if folder else "") + (f" + {suff!r}" if suff else "") + f", labels from {label_col!r}")
    listing = _listing({s: dict(sorted(per_split[s].items())) for s in SPLITS}, split, read)
    _check(path, listing, "the training rows", "the validation rows")
    return listing


def files_root(path: Path, options: dict) -> Path:
    """The folder a CSV's file names are relative to: its own, or `folder` (relative to its own)."""
    folder = options.get("folder") or ""
    return (Path(path).parent / folder) if folder else Path(path).parent


def csv_files(path: Path, df, options: dict) -> list[Path]:
    """Each row's image file: its name in `fn_col` with `suff`, relative to `files_root` unless absolute."""
    root, suff = files_root(path, options), options.get("suff") or ""
    return [Path(os.path.abspath(f"{n}{suff}" if os.path.isabs(str(n)) else root / f"{n}{suff}"))
            for n in df[options["fn_col"]].astype(str)]   # links kept as links, as a folder's files are


def _booleans(column, where: str, name: str) -> list[bool]:
    """A split column as booleans: True/False (any case) or 1/0; anything else is a clear error."""
    truth = {"true": True, "false": False, "1": True, "0": False}
    out = []
    for i, v in enumerate(column):
        key = str(v).strip().lower()
        if isinstance(v, bool) or key in truth:
            out.append(bool(v) if isinstance(v, bool) else truth[key])
        else:
            raise DatasetError(f"{where}: the split column {name!r} must be boolean (True/False or 1/0), but data "
                               f"row {i + 1} holds {v!r}. Fix it, or pass --set valid_col=NAME for another column.")
    return out


def _listing(per_split: dict, split: str, read: str) -> Listing:
    return Listing(files={s: tuple(f for fs in per_split[s].values() for f in fs) for s in SPLITS},
                   labels={s: tuple(c for c, fs in per_split[s].items() for _ in fs) for s in SPLITS},
                   split=split, read=read)


def _split(path: Path, per_class: dict, valid_pct: float, split_seed: int) -> dict:
    """A stratified split, drawn once with a generator of its own (never the run's): `valid_pct` of each class's
    images, at least one, validate."""
    import numpy as np
    if not per_class:
        raise DatasetError(f"Dataset folder {path} holds no sub-folder of images. Expected one sub-folder per class "
                           f"({path}/<class>/<image>), or Imagenette's layout ({path}/train/<class>/<image> beside "
                           f"val/, valid/ or test/).")
    few = {c: len(fs) for c, fs in per_class.items() if len(fs) < 2}
    if few:
        shown = ", ".join(f"{c} ({n} image)" for c, n in list(few.items())[:SHOWN])
        raise DatasetError(f"{named(path)}: class(es) {shown}{' ...' if len(few) > SHOWN else ''} have too few "
                           f"images for a split: each class needs at least 2, one to train on and one to validate. "
                           f"Add images, or remove the class.")
    rng, out = np.random.default_rng(split_seed), {"train": {}, "val": {}}
    for cls, fs in per_class.items():
        n_val = min(len(fs) - 1, max(1, round(valid_pct * len(fs))))
        chosen = set(rng.permutation(len(fs))[:n_val].tolist())
        out["val"][cls] = [f for i, f in enumerate(fs) if i in chosen]
        out["train"][cls] = [f for i, f in enumerate(fs) if i not in chosen]
    return out


def _check(path: Path, listing: Listing, train_name: str, val_name: str) -> None:
    check_listing(path, listing.files, listing.labels, {"train": train_name, "val": val_name})


def check_listing(path: Path, files: dict, labels: dict, names: dict | None = None) -> None:
    """Both splits hold images, training at least two classes, and validation no class that training lacks."""
    names = names or {"train": "the training split", "val": "the validation split"}
    train_name, val_name = names["train"], names["val"]
    check_splits(path, files, labels, names)
    extra = sorted(set(labels["val"]) - set(labels["train"]))
    if extra:
        raise DatasetError(f"{named(path)}: classes in {val_name} that {train_name} lack "
                           f"({', '.join(extra[:SHOWN * 2])}); a model cannot learn them. Add training images for "
                           f"them or remove them from validation.")


def check_splits(path: Path, files: dict, labels: dict, names: dict | None = None) -> None:
    """Both splits hold images, and training holds at least two classes."""
    names = names or {"train": "the training split", "val": "the validation split"}
    for split in SPLITS:
        if not files[split]:
            raise DatasetError(f"{named(path)}: no readable images in {names[split]} (expected image files, with "
                               f"extensions such as .jpg, .jpeg, .png, one sub-folder per class in a folder).")
    classes = sorted(set(labels["train"]))
    if len(classes) < 2:
        raise DatasetError(f"{named(path)}: {len(classes)} class with images in {names['train']} "
                           f"({', '.join(classes)}); classification needs at least two classes.")
