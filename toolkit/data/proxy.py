"""Small, deterministic proxies of any folder dataset: N images per class, resized, same layout and split ratio."""
from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

from .. import display
from ..atomic import atomic_dir, check_folder, write_json
from .datasets import SETTINGS, SPLITS, load
from ..errors import DatasetError
from ..recipes.recipe import Recipe


def make_proxy(src: str, dst: str | Path, per_class: int, size: int, seed: int = 0,
               progress: str | None = None, valid_pct: float = Recipe.valid_pct,
               split_seed: int = Recipe.split_seed) -> dict:
    """Copy `per_class` random training images per class from dataset `src` to `dst`, shorter side resized to `size`.

    Validation keeps the source's val/train ratio per class (at least one image). The same arguments always
    pick the same files. `dst` appears only once complete (built under a temporary name, then renamed).
    `progress`: see toolkit/display.py (a bar, or a line per split written). `valid_pct`, `split_seed`: the
    split of a source of class folders alone (the proxy writes it as train/ and val/).
    """
    dst = Path(dst)
    if per_class < 1:
        raise DatasetError(f"--per-class must be at least 1 (got {per_class}).")
    if size < 8:
        raise DatasetError(f"--size must be at least 8 px (got {size}).")
    check_folder(dst.parent, "The proxy's destination")
    if dst.exists():
        raise DatasetError(f"Proxy destination {dst} already exists; remove it or choose another folder.")
    ds = load(src, valid_pct, split_seed)
    chosen = _choose(ds.files, per_class, random.Random(seed))  # unreadable images: skipped in load

    skipped, written = [], {s: 0 for s in SPLITS}
    todo = [(split, f) for per in chosen.values() for split in SPLITS for f in per[split]]
    with atomic_dir(dst) as tmp:
        if not ds.flips:   # a proxy of digits is digits still: mirroring changes its classes
            write_json(tmp / SETTINGS, {"flip": False, "why": f"a proxy of {src}, whose images change class when mirrored"})
        mode, t0 = display.choose(progress), time.perf_counter()
        for split, f in display.bar(todo, mode, comment=f"proxy of {src}"):
            out = tmp / split / f.parent.name / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                _resized_copy(f, out, size)
                written[split] += 1
            except OSError as e:
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
    return {"path": str(dst), "classes": len(chosen), **written, "skipped": len(skipped)}


def _choose(files: dict, per_class: int, rng: random.Random) -> dict:
    """{class: {"train": files, "val": files}}: `per_class` training images per class, validation in the same ratio."""
    chosen = {}
    for cls in sorted({f.parent.name for f in files["train"]}):
        train = [f for f in files["train"] if f.parent.name == cls]
        val = [f for f in files["val"] if f.parent.name == cls]
        n_train = min(per_class, len(train))
        n_val = min(len(val), max(1, round(n_train * len(val) / len(train)))) if val else 0
        chosen[cls] = {"train": rng.sample(train, n_train), "val": rng.sample(val, n_val)}
    return chosen


def _resized_copy(src: Path, out: Path, size: int) -> None:
    """`src` with its shorter side resized to `size`, as fastai's imagenette2-160/-320 are made, written to `out`."""
    from PIL import Image
    with Image.open(src) as im:
        im.load()
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
        im.save(out, quality=90) if out.suffix.lower() in (".jpg", ".jpeg") else im.save(out)
