"""Small, deterministic proxies of any dataset: N images per class (of all classes, or of some), resized, with the
source's split ratio, and a record of what they were made from (proxy.json).

Which N: `select="random"` draws them; `select="easy"` keeps the N with the lowest loss under a short training run
on the source (Shleifer & Prokop, 2019), given as `losses` (toolkit/studies/proxies.py makes and caches that run).
Validation is drawn at random either way, so a proxy is judged on images like the source's.

A folder source (class folders, file names, a named download) gives a folder in Imagenette's layout. A CSV source
gives a CSV of the same columns, sampled by row, beside the images it names: so each of its label columns (say
noisy_labels_0 and noisy_labels_25) labels the same images in the proxy as in the source.
"""
from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path

from .. import display
from ..atomic import atomic_dir, check_folder, write_json
from ..errors import DatasetError
from . import sources
from .images import to_8bit
from .datasets import DOWNLOADS, EMBEDDED, PROXY_INFO, SETTINGS, SPLITS, Dataset, load, readable

SELECT = ("random", "easy")   # how a proxy picks its training images (make_proxy's `select`)


def make_proxy(src: str, dst: str | Path, per_class: int, size: int, seed: int = 0, progress: str | None = None,
               classes: int | str | list | None = None, select: str = "random", losses: dict | None = None,
               ranking: dict | None = None, **options) -> dict:
    """Copy `per_class` random training images per class from dataset `src` to `dst`, shorter side resized to `size`.

    Validation keeps the source's val/train ratio per class (at least one image). The same arguments always
    pick the same files. `classes`: keep only that many classes (drawn with `seed`), or those named (a list, or
    names separated by commas). `select`: one of SELECT; "easy" needs `losses`, {training file relative to the
    source: loss}, and `ranking`, how they were measured (kept in proxy.json). `options`: how `src` is read (toolkit/data/sources.py), e.g. `label_col`. `dst`
    appears only once complete (built under a temporary name, then renamed). `progress`: see toolkit/display.py.
    """
    if select == "easy" and not losses:
        raise DatasetError("select=easy needs the loss of each training image from a ranking run "
                           "(toolkit data proxy --select easy makes one).")
    dst = Path(dst)
    ds = check_request(src, dst, per_class, size, select, **options)
    rng = random.Random(seed)
    kept = _classes(ds, classes, rng)
    chosen = _choose(ds, per_class, rng, kept, losses if select == "easy" else None)  # unreadable: skipped in load
    table = sources.is_table(ds.path)
    picked = [(split, label, f) for label, per in chosen.items() for split in SPLITS for f in per[split]]
    todo = [(split, f, _written_name(ds, f, k) if table else f"{split}/{label}/{f.name}")
            for k, (split, label, f) in enumerate(picked)]
    skipped, written, names = [], {s: 0 for s in SPLITS}, {}
    with atomic_dir(dst) as tmp:
        if not ds.flips:   # a proxy of digits is digits still: mirroring changes its classes
            write_json(tmp / SETTINGS, {"flip": False, "why": f"a proxy of {src}, whose images change class when mirrored"})
        mode, t0 = display.choose(progress), time.perf_counter()
        for split, f, name in display.bar(todo, mode, comment=f"proxy of {src}"):
            out = tmp / name
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                _resized_copy(f, out, size)
                written[split] += 1
                names[f] = name
            except (OSError, ValueError) as e:   # PIL: unreadable, or no format known for the name's suffix
                skipped.append(f"{f} ({e})")
        if mode == "lines":
            for split in SPLITS:
                display.line(f"proxy {split}: {written[split]:,} images at {size} px", mode)
            display.line(f"proxy written in {time.perf_counter() - t0:.1f}s", mode)
        if skipped:
            warnings.warn(f"Skipped {len(skipped)} unreadable source image(s):\n  " + "\n  ".join(skipped[:20]),
                          stacklevel=2)
        if not written["train"] or not written["val"]:
            raise DatasetError(f"Proxy of {src} would have an empty split (train: {written['train']}, "
                               f"val: {written['val']} images); nothing was written.")
        if table:
            _write_rows(ds, options, names, tmp / ds.path.name)
        write_json(tmp / PROXY_INFO, {
            "source": ds.name if ds.name in EMBEDDED or ds.name in DOWNLOADS else str(ds.path),
            "fingerprint": ds.fingerprint, "read": ds.read or "class folders", "split": ds.split,
            "options": {k: v for k, v in options.items() if v != sources.default_options().get(k)},
            "per_class": per_class, "size": size, "seed": seed, "classes": [readable(c) for c in kept],
            "of_classes": len(ds.classes), "select": select, **({"ranking": ranking} if select == "easy" else {})})
    out = dst / ds.path.name if table else dst
    return {"path": str(out), "classes": len(chosen), **written, "skipped": len(skipped)}


def check_request(src: str, dst: str | Path, per_class: int, size: int, select: str = "random",
                  **options) -> Dataset:
    """The source dataset of a proxy asked for, after every check that can refuse it, before anything is written
    (a ranking run included): the numbers, the rule, and a destination that is new and neither inside its source
    (a proxy written into its source would change the dataset it is made from; a new folder cannot hold it)."""
    dst = Path(dst)
    if per_class < 1:
        raise DatasetError(f"--per-class must be at least 1 (got {per_class}).")
    if size < 8:
        raise DatasetError(f"--size must be at least 8 px (got {size}).")
    if select not in SELECT:
        raise DatasetError(f"select={select!r}: a proxy selects its training images by one of {', '.join(SELECT)}.")
    check_folder(dst.parent, "The proxy's destination")
    if dst.exists():
        raise DatasetError(f"Proxy destination {dst} already exists; remove it or choose another folder.")
    ds = load(src, **options)
    target = dst.expanduser().resolve()
    for root in _source_folders(ds):
        if target == root or root in target.parents:
            raise DatasetError(f"Proxy destination {dst} is inside its source's folder {root}: writing it there "
                               f"would add the proxy's images to the dataset it is made from (and change it). "
                               f"Choose a folder outside {root}; nothing was written.")
    return ds


def _source_folders(ds: Dataset) -> list[Path]:
    """The folders a proxy must not be written into: a folder dataset's own, and the folder holding every image a
    table names (unless that is a filesystem root or the home folder, as for a table of images from all over)."""
    files = [f for s in SPLITS for f in ds.files[s]]
    common = Path(os.path.commonpath(files)).resolve() if files else None
    home = Path.home().resolve()
    out = [] if sources.is_table(ds.path) else [ds.root.resolve()]
    if common is not None and common.parent != common and common != home and common not in home.parents:
        out.append(common)
    return list(dict.fromkeys(out))


def _classes(ds: Dataset, classes, rng: random.Random) -> list[str]:
    """The classes a proxy keeps: all, K drawn with the proxy's seed, or those named (raw or readable names)."""
    if classes in (None, "", 0):
        return list(ds.classes)
    if isinstance(classes, int) or (isinstance(classes, str) and classes.strip().isdigit()):
        k = int(classes)
        if not 2 <= k <= len(ds.classes):
            raise DatasetError(f"--classes {k}: a proxy keeps between 2 and {len(ds.classes)} of {ds.name}'s "
                               f"{len(ds.classes)} classes.")
        return sorted(rng.sample(list(ds.classes), k))
    names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
    by_name = {**{readable(c): c for c in ds.classes}, **{c: c for c in ds.classes}}
    unknown = [n for n in names if n not in by_name]
    if unknown or len(set(names)) < 2:
        raise DatasetError(f"--classes: {', '.join(map(repr, unknown)) or 'fewer than two classes'} "
                           f"{'are not classes of ' + ds.name if unknown else ''}; its classes: "
                           f"{', '.join(readable(c) for c in ds.classes)}.")
    return sorted({by_name[n] for n in names})


def _choose(ds: Dataset, per_class: int, rng: random.Random, kept: list[str], losses: dict | None = None) -> dict:
    """{class: {"train": files, "val": files}}: `per_class` training images per class (random, or the lowest
    `losses`), validation drawn at random in the same ratio."""
    chosen = {}
    if losses is not None:
        missing = [f for f, c in ds.items("train") if c in kept and ds.relative(f) not in losses]
        if missing:
            raise DatasetError(f"The ranking run has no loss for {len(missing):,} training image(s) of {ds.name} "
                               f"(e.g. {ds.relative(missing[0])}): it was made from other data. Remove the ranking "
                               f"from the cache and make the proxy again.")
    for cls in kept:
        train = [f for f, c in ds.items("train") if c == cls]
        val = [f for f, c in ds.items("val") if c == cls]
        n_train = min(per_class, len(train))
        n_val = min(len(val), max(1, round(n_train * len(val) / len(train)))) if val else 0
        picked = (sorted(train, key=lambda f: (losses[ds.relative(f)], str(f)))[:n_train] if losses is not None
                  else rng.sample(train, n_train))
        chosen[cls] = {"train": picked, "val": rng.sample(val, n_val)}
    return chosen


def _written_name(ds: Dataset, f: Path, k: int) -> str:
    """Where a CSV proxy keeps an image: at its path relative to the source's folder, or, for one outside it,
    under images/ with its place among the proxy's images in its name (so that no two share one)."""
    rel = ds.relative(f)
    return rel if not rel.startswith("..") else f"images/{k}-{f.name}"


def _write_rows(ds: Dataset, options: dict, names: dict, dest: Path) -> None:
    """The source's rows of the written images, every column kept, so that the proxy read with no option reads what
    the source was read as: the file names first (relative to the proxy: no folder or suff needed), the labels
    second, and the split in a boolean is_valid column (a source's own is_valid, if it split by another column,
    is replaced by the split it was read with)."""
    df = sources._read_table(ds.path)
    opts = {**{k: "" for k in sources.CSV_OPTIONS}, **options}
    cols = sources.columns(ds.path, opts)
    files = sources.csv_files(ds.path, df, {**opts, **cols})
    val = set(ds.files["val"])
    rows = [i for i, f in enumerate(files) if f in names]
    out = df.iloc[rows].copy()
    out[cols["fn_col"]] = [names[files[i]] for i in rows]
    out[sources.VALID_COL] = [files[i] in val for i in rows]
    first = [cols["fn_col"], cols["label_col"]]
    out[first + [c for c in out.columns if c not in first]].to_csv(dest, index=False)


def _resized_copy(src: Path, out: Path, size: int) -> None:
    """`src` with its shorter side resized to `size`, as fastai's imagenette2-160/-320 are made, written to `out`."""
    from PIL import Image
    with Image.open(src) as im:
        im.load()
        im = to_8bit(im)   # deeper than 8 bits: rescaled, as the loaders read it
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
        im.save(out, quality=90) if out.suffix.lower() in (".jpg", ".jpeg") else im.save(out)

