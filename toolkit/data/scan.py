"""One decode pass over a dataset's files: whether each opens (as fastai's `verify_image` decides), its size and
mode, and two fingerprints of its content, for duplicates: the file's bytes, and its pixels at a small size.

The pass runs once per file listing and is cached (toolkit/data/datasets.py `scanned`): the image check of every
first load, the pack's source side and `toolkit data check` all read it.

The pixel fingerprints are the image in grey at HASH x HASH px (`thumb`), and its difference hash (`pixels`: one
bit per pair of horizontal neighbours at (HASH + 1) x HASH px, is the right one brighter). The same picture
re-encoded or resized keeps all but a few bits and nearly every grey level; toolkit/data/audit.py pairs files whose
hashes differ in at most NEAR_BITS bits and whose thumbnails differ by at most NEAR_GREY levels on average.
(Written here in a few lines with PIL and numpy: a hashing library would add a dependency for this one function.)
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

HASH = 16          # 16 x 16 = 256 bits, and a 16 x 16 thumbnail
VERSION = 2        # bump when what a scan holds changes: older cached scans are then computed again


def scan_file(path: str | Path) -> dict:
    """{"error": why} for a file PIL cannot decode, else {"size": [w, h], "mode", "bytes": hash, "pixels": hash}."""
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
            out["pixels"], out["thumb"] = pixel_hash(im)
    except Exception as e:   # PIL raises many kinds (OSError, SyntaxError, ValueError, DecompressionBombError)
        return {"error": f"{type(e).__name__}: {e}"}
    return out


def pixel_hash(im) -> tuple[str, str]:
    """(the difference hash, the grey thumbnail) of a PIL image, as hex."""
    import numpy as np
    from PIL import Image
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):   # deeper than 8 bits: convert("L") would clip to white
        a = np.asarray(im, dtype=np.float64)
        span = float(a.max() - a.min()) or 1.0
        im = Image.fromarray(((a - a.min()) * (255 / span)).astype(np.uint8))
    grey = im.convert("L")
    wide = np.asarray(grey.resize((HASH + 1, HASH), Image.BILINEAR), dtype=np.int16)
    thumb = np.asarray(grey.resize((HASH, HASH), Image.BILINEAR), dtype=np.uint8)
    return np.packbits(wide[:, 1:] > wide[:, :-1]).tobytes().hex(), thumb.tobytes().hex()


def scan_files(files: list[Path], workers: int | None = None) -> list[dict]:
    """`scan_file` of each file, in order, in parallel (fastcore's `parallel`, as fastai's verify_images)."""
    import os

    from fastcore.parallel import parallel
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n <= 1 or len(files) < 64:
        return [scan_file(f) for f in files]
    return list(parallel(scan_file, files, n_workers=n, progress=False, chunksize=64))
