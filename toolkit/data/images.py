"""How every reader of a dataset turns an image file into 8-bit pixels: the folder loader, the pack, the proxy and
the data check all call `to_8bit`, so a picture is the same picture whichever of them reads it.

PIL's `convert("RGB")` clips an image deeper than 8 bits (a 16-bit PNG, a 32-bit integer or float TIFF) to white.
Here such an image is rescaled by its bit depth: the depth its largest value needs, rounded up to the depths that
cameras and scanners store (10, 12, 14 or 16 bits), so that a 12-bit image is not darkened by a 16-bit scale (an
image whose largest value falls just past a band's top is read at the next depth: a per-image rule, as each reader
sees one image at a time). A float image in [0, 1] is taken as it is; any other float or signed image,
by its own range. (Written here with PIL and numpy: fastai and torchvision open such images with PIL's clip.)
"""
from __future__ import annotations

DEEP = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")   # PIL modes of more than 8 bits per pixel
DEPTHS = (8, 10, 12, 14, 16, 24, 32)                  # the bit depths an integer image is rescaled by


def to_8bit(im):
    """A PIL image as one PIL can convert to RGB without loss of meaning: deeper than 8 bits -> 8-bit grey ("L"),
    rescaled as the module says; any other image as it is."""
    if im.mode not in DEEP:
        return im
    import numpy as np
    from PIL import Image
    a = np.asarray(im, dtype=np.float64)
    finite = a[np.isfinite(a)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    a = np.nan_to_num(a, nan=low, posinf=high, neginf=low)   # a "no data" pixel takes the darkest value
    if im.mode == "F" and low >= 0 and high <= 1:
        low, top = 0.0, 1.0
    elif im.mode != "F" and low >= 0:
        bits = int(high).bit_length()
        low, top = 0.0, float(2 ** next((d for d in DEPTHS if d >= bits), DEPTHS[-1]) - 1)
    else:
        top = (high - low) or 1.0
    return Image.fromarray(np.clip(np.rint((a - low) * (255 / top)), 0, 255).astype(np.uint8), mode="L")


def open_rgb(path, draft: int | None = None):
    """The image file at `path` as a loaded 8-bit RGB PIL image. `draft`: a side in px that a JPEG may be decoded
    at a reduced scale for (still at least that side)."""
    from PIL import Image
    with Image.open(path) as im:
        if draft:
            im.draft("RGB", (draft, draft))
        im.load()
        return to_8bit(im).convert("RGB")
