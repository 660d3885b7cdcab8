"""Packed image cache: every image decoded once, resized, and stored as one uint8 array file per split.

A pack is a folder under $TOOLKIT_HOME/packs holding `train.u8` and `val.u8` (N x S x S x 3, read through a
memory map) and `meta.json` (shapes, labels, vocab, file list, resize method, the source's fingerprint, skipped
files, disk sizes). It is built under a temporary name and renamed into place only when complete, so a killed or
failed build is never read; a pack whose source listing changed is detected by its fingerprint and rebuilt.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from .. import display
from ..atomic import atomic_dir, tmp_prefix, write_json
from .datasets import DOWNLOADS, EMBEDDED, SPLITS, Dataset, readable, scan_of, source_side, toolkit_home
from .images import DEEP, open_rgb
from ..errors import DatasetError
from ..recipes.recipe import Recipe

FORMAT = 1
DEEP_RULE = "rescaled by bit depth"   # how images deeper than 8 bits were read (toolkit/data/images.py); older
# packs clipped them to white, and are rebuilt where the dataset holds any
RESIZE = "center crop to a square, then PIL bilinear resize to S x S (JPEGs decoded with PIL draft at >= S px)"
CHUNK = 64  # images per decode task: large enough to amortise process overhead, small enough for a smooth bar


@dataclass(frozen=True)
class Pack:
    """A finished pack: memory-mapped uint8 images and their labels, per split."""
    path: Path
    meta: dict

    @property
    def size(self) -> int:
        return self.meta["stored_size"]

    @property
    def vocab(self) -> list[str]:
        return self.meta["vocab"]

    def images(self, split: str) -> np.memmap:
        info = self.meta["splits"][split]
        return np.memmap(self.path / info["file"], dtype=np.uint8, mode="r", shape=tuple(info["shape"]))

    def labels(self, split: str) -> np.ndarray:
        return np.asarray(self.meta["splits"][split]["labels"], dtype=np.int64)

    @property
    def disk_bytes(self) -> int:
        return sum(s["bytes"] for s in self.meta["splits"].values())


def stored_size(size: int, presize: float = Recipe.presize, source: int | None = None) -> int:
    """The side a pack stores for training at `size`: presize x size, what fastai's item Resize would give, but
    never more than `source`, the source images' own side (see `datasets.source_side`): above it a pack would only
    hold upsampled copies. The batch augmentation upsamples from there, as the item Resize would have."""
    side = max(int(size), round(size * presize))
    return min(side, source) if source else side


def pack_side(ds: Dataset, size: int, presize: float = Recipe.presize) -> int:
    """The side of the pack that serves training on `ds` at `size` px (`stored_size`, capped at the source's)."""
    return stored_size(size, presize, source_side(ds))


def planned_bytes(ds: Dataset, side: int) -> int:
    """Disk bytes of the pack of `ds` at `side` px: every image as side x side x 3 uint8."""
    return sum(len(ds.files[s]) for s in SPLITS) * side * side * 3


def pack_dir(ds: Dataset, side: int) -> Path:
    """Where the pack of `ds` at `side` px lives: one folder per dataset and stored size."""
    if ds.name in EMBEDDED or ds.name in DOWNLOADS:
        slug = ds.name
    else:  # a folder or CSV: its name plus a hash of its absolute path (and of how it was read and split, where
        # that is not the folder's own), so two folders called `data`, two splits of one folder, or two label
        # columns of one CSV never share a pack
        slug = f"{ds.path.name}-{hashlib.sha1((str(ds.path.resolve()) + ds.rule).encode()).hexdigest()[:8]}"
    return toolkit_home() / "packs" / f"{slug}-{side}px"


def open_pack(path: Path, ds: Dataset | None = None, side: int | None = None) -> Pack | None:
    """The pack at `path` if it is complete and (given `ds`, `side`) built from this very source listing."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("format") != FORMAT:
        return None
    if ds is not None and (meta.get("fingerprint") != ds.fingerprint or meta.get("source") != str(ds.path)):
        return None
    if side is not None and meta.get("stored_size") != side:
        return None
    if ds is not None and meta.get("deep") != DEEP_RULE and _has_deep(ds):
        return None
    for info in meta.get("splits", {}).values():
        f = Path(path) / info["file"]
        if not f.exists() or f.stat().st_size != info["bytes"]:
            return None
    return Pack(Path(path), meta)


def _has_deep(ds: Dataset) -> bool:
    """Whether any image of `ds` is deeper than 8 bits (from its decode pass)."""
    return any(info.get("mode") in DEEP for info in scan_of(ds).values())


def ensure_pack(ds: Dataset, side: int, workers: int | None = None, progress: str | None = None) -> Pack:
    """The pack of `ds` at `side` px: reused when it matches the source listing, built (or rebuilt) otherwise.
    `progress`: see toolkit/display.py (a line per packed split, or a bar)."""
    mode = display.choose(progress)
    log = functools.partial(display.line, mode=mode)
    dest = pack_dir(ds, side)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.with_name(dest.name + ".lock"))):   # two runs starting together build it once
        pack = open_pack(dest, ds, side)
        if pack is not None:
            return pack
        if dest.exists():
            old = open_pack(dest)
            why = ("its source listing changed since it was built (files added, removed or modified)"
                   if old is not None else "it is incomplete or from another toolkit version")
            log(f"Pack {dest} is stale: {why}; rebuilding it.")
        else:
            log(f"Packing {ds.path} at {side} px into {dest}: {sum(len(ds.files[s]) for s in SPLITS):,} images, "
                f"{_mb(planned_bytes(ds, side))} planned (each image is decoded once; later runs reuse it).")
        pack = build_pack(ds, side, dest, workers=workers, progress=mode)
        log(describe(pack))
        return pack


def build_pack(ds: Dataset, side: int, dest: Path, workers: int | None = None, progress: str | None = None) -> Pack:
    """Decode, resize and write every image of `ds`; the pack appears at `dest` only once it is complete."""
    for leftover in dest.parent.glob(f"{tmp_prefix(dest)}*"):  # from a killed build (we hold the lock)
        shutil.rmtree(leftover, ignore_errors=True)
    need = planned_bytes(ds, side)
    t0 = time.perf_counter()
    try:
        with atomic_dir(dest, replace=True) as tmp:   # a stale pack at `dest` is replaced only once this one is whole
            _check_space(tmp, need)
            splits, skipped = {}, []
            for split in SPLITS:
                splits[split], bad = _write_split(ds, split, side, tmp / f"{split}.u8", workers,
                                                    display.choose(progress))
                skipped += bad
            source_bytes = sum(f.stat().st_size for s in SPLITS for f in ds.files[s])
            meta = {
                "format": FORMAT, "source": str(ds.path), "dataset": ds.name, "fingerprint": ds.fingerprint,
                "stored_size": side, "resize": RESIZE, "deep": DEEP_RULE, "dtype": "uint8", "layout": "N x H x W x 3",
                "classes": list(ds.classes), "vocab": [readable(c) for c in ds.classes],
                "splits": splits,
                "skipped": [*({"file": f, "reason": "unreadable (found by the image check)"} for f in ds.bad_files),
                            *skipped],
                "source_bytes": source_bytes, "pack_bytes": sum(s["bytes"] for s in splits.values()),
                "build_seconds": round(time.perf_counter() - t0, 2),
            }
            meta["n_skipped"] = len(meta["skipped"])
            write_json(tmp / "meta.json", meta)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DatasetError(
                f"Ran out of disk space while packing {ds.path} at {side} px into {dest.parent} (the pack needs "
                f"about {_mb(need)}; {_mb(shutil.disk_usage(dest.parent).free)} free now). Nothing was kept. "
                f"Free some space, point TOOLKIT_HOME at a larger disk, lower the stored size (--set presize=...), "
                f"or train from the folder with --set loader=folder.") from None
        raise
    pack = Pack(dest, meta)
    if skipped:
        warnings.warn(f"Packing skipped {len(skipped)} image(s) that could not be decoded: "
                      + ", ".join(s["file"] for s in skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
                      stacklevel=2)
    return pack


def describe(pack: Pack) -> str:
    m = pack.meta
    n = {s: i["shape"][0] for s, i in m["splits"].items()}
    return (f"Pack {pack.path}: {sum(n.values()):,} images at {m['stored_size']} px "
            f"({', '.join(f'{s} {k:,}' for s, k in n.items())}; {m['n_skipped']} skipped), "
            f"{_mb(m['pack_bytes'])} on disk vs {_mb(m['source_bytes'])} of source files "
            f"({m['pack_bytes'] / max(m['source_bytes'], 1):.1f}x), built in {m['build_seconds']:.0f} s.")


def plan_line(ds: Dataset, size: int, presize: float = Recipe.presize) -> str:
    """What the pack for training at `size` stores, and what the cap at the source's own side saves."""
    side, full, n = pack_side(ds, size, presize), stored_size(size, presize), sum(len(ds.files[s]) for s in SPLITS)
    saved = (f"; presize x size alone would store {full} px, {_mb(planned_bytes(ds, full))}, above the sources' "
             f"{source_side(ds)} px" if full > side else "")
    return (f"Pack of {ds.path} for {size} px training: {n:,} images at {side} px, {_mb(planned_bytes(ds, side))} "
            f"planned{saved}.")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


def _check_space(tmp: Path, need: int) -> None:
    free = shutil.disk_usage(tmp).free
    if free < need:
        raise OSError(errno.ENOSPC, f"{need} bytes needed, {free} free")


def _write_split(ds: Dataset, split: str, side: int, out: Path, workers: int | None, mode: str):
    """Decode one split in parallel, in order, straight into `out`; returns its metadata and skipped files."""
    t0 = time.perf_counter()
    files = ds.files[split]
    index = {c: i for i, c in enumerate(ds.classes)}
    labels_all = [index[c] for c in ds.labels[split]]
    row = side * side * 3
    chunks = [(tuple(str(f) for f in files[i:i + CHUNK]), side) for i in range(0, len(files), CHUNK)]
    kept_labels, kept_files, skipped = [], [], []
    with out.open("wb") as fh:
        _reserve(fh.fileno(), len(files) * row)  # reserve the space now: a full disk fails before any decoding
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
        with ProcessPoolExecutor(n_workers) if n_workers > 1 else contextlib.nullcontext() as pool:
            results = pool.map(_decode_chunk, chunks) if pool else map(_decode_chunk, chunks)
            for ci, (arr, bad) in enumerate(display.bar(results, mode, total=len(chunks),
                                                     comment=f"packing {split} at {side} px")):
                base = ci * CHUNK
                for j in range(len(chunks[ci][0])):
                    if j in bad:
                        skipped.append({"file": ds.relative(files[base + j]), "reason": bad[j]})
                    else:
                        kept_labels.append(labels_all[base + j])
                        kept_files.append(ds.relative(files[base + j]))
                fh.write(arr.tobytes())
            if mode == "bars":
                print(flush=True)  # the console bar leaves the cursor on its line
        fh.truncate(len(kept_labels) * row)  # drop the reserve of any skipped image
        fh.flush()
        os.fsync(fh.fileno())
    n = len(kept_labels)
    if mode == "lines":
        display.line(f"packed {split}: {n:,} images at {side} px in {time.perf_counter() - t0:.1f}s"
                  + (f" ({len(skipped)} skipped)" if skipped else ""), mode)
    return {"file": out.name, "shape": [n, side, side, 3], "bytes": n * row,
            "labels": kept_labels, "files": kept_files}, skipped


def _reserve(fd: int, nbytes: int) -> None:
    if not hasattr(os, "posix_fallocate"):  # macOS: writing reports a full disk just the same
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # file systems without fallocate (EOPNOTSUPP, EINVAL): writing reports a full disk just the same


def decode(path: str | os.PathLike, side: int) -> np.ndarray:
    """One image as a side x side x 3 uint8 array: center crop to a square, bilinear resize (see RESIZE)."""
    from PIL import Image
    im = open_rgb(path, draft=side)  # JPEG: let libjpeg decode at a reduced scale that is still >= side
    w, h = im.size
    m = min(w, h)
    left, top = (w - m) // 2, (h - m) // 2
    if w != h:
        im = im.crop((left, top, left + m, top + m))
    im = im.resize((side, side), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _decode_chunk(task) -> tuple[np.ndarray, dict[int, str]]:
    """Decode a chunk of files (in a worker process); undecodable ones are reported, not fatal."""
    paths, side = task
    out, bad = [], {}
    for j, p in enumerate(paths):
        try:
            out.append(decode(p, side))
        except Exception as e:  # PIL raises many types for damaged files; any of them means "skip this one"
            bad[j] = f"{type(e).__name__}: {e}"
    arr = np.stack(out) if out else np.zeros((0, side, side, 3), np.uint8)
    return arr, bad


def pack(spec: str, size: int | None = None, presize: float = Recipe.presize, workers: int | None = None,
         progress: str | None = None, plan: bool = False, **options) -> Pack | None:
    """`toolkit data pack`: the pack of dataset `spec` for training at `size` px (stored at presize x size, at most
    the source images' own side).

    `size` defaults to the dataset's default training size, the one a recipe without --size uses. `plan`: only
    print what it would store (and what presize x size alone would have), build nothing. `options`: how
    the dataset is read (toolkit/data/sources.py), as the recipes that train on it read it.
    """
    from .datasets import load
    if size is not None and size < 8:
        raise DatasetError(f"--size must be at least 8 px (got {size}), as a recipe's.")
    if workers is not None and workers < 1:
        raise DatasetError(f"--workers must be at least 1 (got {workers}).")
    ds = load(spec, **options)
    size = size or ds.default_size
    side = pack_side(ds, size, presize)
    if plan:
        print(plan_line(ds, size, presize))
        return None
    existing = open_pack(pack_dir(ds, side), ds, side)
    if existing is not None:
        print("Up to date. " + describe(existing))   # the command's result: shown even with --quiet
        return existing
    built = ensure_pack(ds, side, workers=workers, progress=progress)
    if display.choose(progress) == "none":   # ensure_pack described it otherwise
        print(describe(built))
    return built
