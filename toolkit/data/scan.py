"""One decode pass over a dataset's files: whether each opens (as fastai's `verify_image` decides), its size and
mode, and two fingerprints of its content, for duplicates: the file's bytes, and its pixels at a small size.

The pass runs once per file listing and is cached (toolkit/data/datasets.py `scanned`): the image check of every
first load, the pack's source side and `toolkit data check` all read it.

The pixel fingerprint is the image in grey at THUMB x THUMB px (`thumb`). The same picture re-encoded or resized
keeps nearly every grey level; toolkit/data/audit.py pairs files whose thumbnails differ by at most NEAR_GREY
levels on average (bench/near_duplicates.py measured the rule). (Written here in a few lines with PIL and numpy: a
hashing library would add a dependency for this one function.)
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

THUMB = 16         # a 16 x 16 grey thumbnail
VERSION = 3        # bump when what a scan holds changes: older cached scans are then computed again


def scan_file(path: str | Path) -> dict:
    """{"error": why} for a file PIL cannot decode, else {"size": [w, h], "mode", "bytes": hash, "thumb": grey}."""
    from PIL import Image
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return {"error": f"{type(e).__name__}: {e}"}
    out = {"bytes": hashlib.sha1(data).hexdigest()[:20]}
    try:
        with Image.open(io.BytesIO(data)) as im:
            out.update(size=list(im.size), mode=im.mode)
            im.draft(im.mode, (im.size[0] // 2, im.size[1] // 2))   # as fastai's verify_image: decoding is the test
            im.load()
            out["thumb"] = thumbnail(im)
    except Exception as e:   # PIL raises many kinds (OSError, SyntaxError, ValueError, DecompressionBombError)
        return {"error": f"{type(e).__name__}: {e}"}
    return out


def thumbnail(im) -> str:
    """The grey thumbnail of a PIL image (THUMB x THUMB px, bilinear), as hex."""
    import numpy as np
    from PIL import Image

    from .images import to_8bit
    grey = to_8bit(im).convert("L")   # deeper than 8 bits: rescaled as every loader reads it
    return np.asarray(grey.resize((THUMB, THUMB), Image.BILINEAR), dtype=np.uint8).tobytes().hex()


def scan_files(files: list[Path], workers: int | None = None) -> list[dict]:
    """`scan_file` of each file, in order, in parallel (fastcore's `parallel`, as fastai's verify_images)."""
    import os

    from fastcore.parallel import parallel
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n <= 1 or len(files) < 64:
        return [scan_file(f) for f in files]
    return list(parallel(scan_file, files, n_workers=n, progress=False, chunksize=64))
