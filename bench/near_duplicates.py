"""Which rule tells a copy of a picture from another picture: the trade-off behind `toolkit data check`'s near
duplicates (toolkit/data/audit.py), measured on real photos.

Copies: each of N photos per class of a folder dataset, re-encoded as JPEG at several qualities, resized (smaller,
or larger) and re-encoded, and converted to grey: what a dataset gathered from the web holds twice. Distinct: every
pair of different photos of one class (the hardest honest pairs of a photo dataset), and every pair of scikit-learn's
handwritten digits (small, centred, alike: the hardest pairs the toolkit ships). For each rule, "hash bits apart <=
B and mean grey difference <= G" (the
rule until it was measured) and "grey <= G" alone (the rule since), it prints the share of copies caught and the distinct pairs flagged, and the
distances themselves. Seeded; no training.

    python bench/near_duplicates.py [FOLDER] [--per-class 100]

FOLDER: default, the Imagenette copy in ../shared/data (its train images).
"""
import argparse
import io
import random
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-sq224"
COPIES = {   # name: what is done to the photo
    "jpeg q90": lambda im: _jpeg(im, 90),
    "jpeg q50": lambda im: _jpeg(im, 50),
    "jpeg q20": lambda im: _jpeg(im, 20),
    "resized 0.5x, q75": lambda im: _jpeg(_scale(im, 0.5), 75),
    "resized 0.25x, q75": lambda im: _jpeg(_scale(im, 0.25), 75),
    "resized 1.5x, q90": lambda im: _jpeg(_scale(im, 1.5), 90),
    "grey, q75": lambda im: _jpeg(im.convert("L"), 75),
    "resized 0.5x, png": lambda im: _scale(im, 0.5),
}
RULES = [(b, g) for b in (7, 10, 12, 16, 24, 32) for g in (1.0, 2.0, 3.0)]


def _jpeg(im, q):
    from PIL import Image
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=q)
    buf.seek(0)
    return Image.open(buf)


def _scale(im, f):
    from PIL import Image
    return im.resize((max(8, round(im.width * f)), max(8, round(im.height * f))), Image.BICUBIC)


def fingerprint(im):
    """(its 256-bit difference hash, the toolkit's grey thumbnail) of a picture: the two tests of the old rule."""
    from PIL import Image

    from toolkit.data.scan import THUMB, thumbnail
    wide = np.asarray(im.convert("L").resize((THUMB + 1, THUMB), Image.BILINEAR), dtype=np.int16)
    return wide[:, 1:].ravel() > wide[:, :-1].ravel(), np.frombuffer(bytes.fromhex(thumbnail(im)), np.uint8).astype(np.int16)


def pair_distances(bits, grey):
    """Bits apart and mean grey difference of every pair (i < j)."""
    i, j = np.triu_indices(len(bits), 1)
    return (bits[i] != bits[j]).sum(1), np.abs(grey[i] - grey[j]).mean(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(SHARED))
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from PIL import Image

    from toolkit.data import datasets
    from toolkit.data.audit import NEAR_GREY
    ds = datasets.load(args.folder)
    rng = random.Random(args.seed)
    photos = {c: rng.sample([f for f, k in ds.items("train") if k == c], args.per_class) for c in ds.classes}
    copies = {k: ([], []) for k in COPIES}   # name: (bits apart, grey apart) of each photo and its copy
    distinct = ([], [])
    for c, files in photos.items():
        fps = []
        for f in files:
            with Image.open(f) as im:
                im = im.convert("RGB")
                b0, g0 = fingerprint(im)
                fps.append((b0, g0))
                for name, make in COPIES.items():
                    b1, g1 = fingerprint(make(im))
                    copies[name][0].append(int((b0 != b1).sum()))
                    copies[name][1].append(float(np.abs(g0 - g1).mean()))
        d = pair_distances(np.array([b for b, _ in fps]), np.array([g for _, g in fps]))
        distinct[0].extend(d[0])
        distinct[1].extend(d[1])
    from sklearn.datasets import load_digits
    digits = load_digits().images   # 8 x 8, 0-16: as toolkit/data/digits.py writes them
    fps = [fingerprint(Image.fromarray((im * (255 / 16)).round().astype(np.uint8), mode="L").resize((32, 32), Image.BICUBIC))
           for im in digits]
    dbits, dgrey = pair_distances(np.array([b for b, _ in fps]), np.array([g for _, g in fps]))

    n_photos = sum(len(v) for v in photos.values())
    print(f"{n_photos:,} photos ({args.per_class} per class of {len(photos)}) of {ds.path}, seed {args.seed}; "
          f"{len(distinct[0]):,} pairs of distinct photos of one class; {len(dbits):,} pairs of distinct digits\n")
    print("| pairs | bits apart: median | max (copies) / min (distinct) | grey apart: median | max / min |")
    print("|:--|--:|--:|--:|--:|")
    for name, (b, g) in copies.items():
        print(f"| copy: {name} | {np.median(b):.0f} | {max(b)} | {np.median(g):.2f} | {max(g):.2f} |")
    for name, (b, g) in [("distinct photos, one class", distinct), ("distinct digits", (dbits, dgrey))]:
        print(f"| {name} | {np.median(b):.0f} | {min(b)} | {np.median(g):.2f} | {min(g):.2f} |")

    print("\n| rule: bits <= B and grey <= G | copies caught | distinct photo pairs flagged | distinct digit pairs "
          "flagged |")
    print("|:--|--:|--:|--:|")
    cb = np.concatenate([b for b, _ in copies.values()])
    cg = np.concatenate([g for _, g in copies.values()])
    pb, pg = np.array(distinct[0]), np.array(distinct[1])
    for b, g in RULES:
        caught = ((cb <= b) & (cg <= g)).mean()
        print(f"| B={b}, G={g:g} | {caught:.2%} | {int(((pb <= b) & (pg <= g)).sum()):,} | "
              f"{int(((dbits <= b) & (dgrey <= g)).sum()):,} |")
    for g in (0.5, 1.0, 1.5, NEAR_GREY, 3.0):
        print(f"| grey <= {g:g} alone{' (the rule)' if g == NEAR_GREY else ''} | {(cg <= g).mean():.2%} | {int((pg <= g).sum()):,} | "
              f"{int((dgrey <= g).sum()):,} |")


if __name__ == "__main__":
    main()
