"""The embedded offline dataset: scikit-learn's handwritten digits written once as an image folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_dir

SIZE = 32          # px the 8x8 digits are upsampled to on disk
VAL_FRACTION = 0.2  # per class, drawn with a fixed seed so every machine gets the same split


def ensure_digits(root: Path) -> Path:
    """`root/digits` in Imagenette's layout (train/ and val/, a folder per digit), written on first use."""
    dest = Path(root) / "digits"
    if (dest / "train").is_dir() and (dest / "val").is_dir():
        return dest
    from PIL import Image
    from sklearn.datasets import load_digits  # ships its data inside the package: no download

    digits = load_digits()
    rng = np.random.RandomState(0)
    with atomic_dir(dest) as tmp:   # two first uses at once: the one that finishes second keeps the first's
        for label in range(10):
            idx = np.flatnonzero(digits.target == label)
            rng.shuffle(idx)
            n_val = round(len(idx) * VAL_FRACTION)
            for split, part in (("val", idx[:n_val]), ("train", idx[n_val:])):
                folder = tmp / split / str(label)
                folder.mkdir(parents=True)
                for i in part:
                    pixels = (digits.images[i] * (255 / 16)).round().astype(np.uint8)  # values are 0..16
                    img = Image.fromarray(pixels, mode="L").resize((SIZE, SIZE), Image.BICUBIC)
                    img.save(folder / f"{i:04d}.png")
    return dest
