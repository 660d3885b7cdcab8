"""Wall time of a recipe run through the toolkit vs the same recipe written directly in fastai.

All run in one process on the same data, seed, size and epochs, in an order that rotates each repeat:
  like for like  the toolkit on fastai's folder DataBlock in fp32, contiguous (target: at most 1.05x the plain one)
  as shipped     the toolkit's defaults: the packed loader, precision and channels_last auto (target: at most 0.5x)
  plain fastai   fastbook chapter 7's baseline as one writes it, folder DataBlock, fp32
The script prints each repeat, the per-repeat ratios to plain fastai and their medians, and the accuracies.

    python bench/overhead.py [--dataset DIR_OR_NAME] [--size 64] [--epochs 2] [--repeats 3] [--checkpoint-every S]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

from fastai.callback.schedule import fit_one_cycle  # noqa: E402,F401
from fastai.data.block import CategoryBlock, DataBlock  # noqa: E402
from fastai.data.transforms import FuncSplitter  # noqa: E402
from fastai.learner import Learner  # noqa: E402
from fastai.losses import CrossEntropyLossFlat  # noqa: E402
from fastai.metrics import accuracy  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastai.vision.augment import Resize, aug_transforms  # noqa: E402
from fastai.vision.data import ImageBlock  # noqa: E402
from fastai.vision.models import xresnet  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import toolkit_experiments  # noqa: E402,F401
from toolkit import api  # noqa: E402
from toolkit.data import datasets as data  # noqa: E402
from toolkit.recipes import registry  # noqa: E402
from toolkit.recipes.overrides import apply_overrides  # noqa: E402
from toolkit.train import precision  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-sq224"


def plain_fastai(ds, r) -> float:
    """Fastbook chapter 7's baseline, as one writes it without the toolkit; returns final accuracy. Its items,
    labels and split are the dataset's own lists, in their order, so both sides shuffle the same items alike."""
    set_seed(r.seed, reproducible=True)
    labels = {f: c for split in ("train", "val") for f, c in ds.items(split)}
    valid = set(ds.files["val"])
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_y=lambda f: labels[f],
                       splitter=FuncSplitter(lambda f: f in valid), item_tfms=Resize(round(r.size * r.presize)),
                       batch_tfms=aug_transforms(size=r.size, min_scale=r.min_scale, **ds.aug))
    dls = dblock.dataloaders([*ds.files["train"], *ds.files["val"]], bs=r.bs)
    learn = Learner(dls, getattr(xresnet, r.arch)(n_out=dls.c), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(r.epochs, r.lr)
    return float(learn.recorder.values[-1][-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="folder or name (default: a 100-per-class, 80 px proxy of the shared "
                                      "Imagenette copy if present, else digits)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint-every", type=float,
                    help="the toolkit side's checkpoint interval in seconds (default: the toolkit's; 0: every epoch)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="toolkit-bench-"))
    dataset = args.dataset
    if dataset is None and (SHARED / "train").is_dir():
        from toolkit.studies.proxies import make_proxy
        dataset = str(work / "imagenette-p100-80")
        make_proxy(str(SHARED), dataset, per_class=100, size=80, seed=0, progress="none")
    dataset = dataset or "digits"
    ds = data.load(dataset)  # the toolkit's one-time image check is cached; done here so both sides start warm
    base = apply_overrides(registry.get("baseline"), dict(dataset=dataset, size=str(args.size),
                                                          epochs=str(args.epochs), arch=args.arch))
    like = apply_overrides(base, dict(loader="folder", precision="fp32", channels_last="false"))  # like for like
    shipped = precision.decide(base)                          # the packed loader, precision and channels_last auto
    print(f"dataset {ds.path} ({ds.n_train} train / {len(ds.files['val'])} val), {args.arch}, {args.size} px, "
          f"{args.epochs} epochs, bs {base.bs}, seed {base.seed}, {args.repeats} repeats; as shipped here: "
          f"{shipped.loader} loader, {shipped.precision}, channels_last={shipped.channels_last}\n")

    sides = {"like for like": like, "as shipped": shipped, "plain fastai": None}
    names = list(sides)
    rows = []
    for i in range(args.repeats):
        t, acc = {}, {}
        for side in names[i % 3:] + names[:i % 3]:   # each side goes first, second and third in turn
            start = time.perf_counter()
            if sides[side] is None:
                acc[side] = plain_fastai(ds, like)
            else:
                done = api.sweep_and_compare([sides[side]], {}, reference=False, rerun=True, results=work / "results",
                                             quiet=True, checkpoint_every=args.checkpoint_every,
                                             log=lambda *a: None)   # checkpoints on, as always
                acc[side] = float(done.sweep.rows["accuracy"].iloc[0])
            t[side] = time.perf_counter() - start
        rows.append((t, acc))

    print("| repeat | like for like (s) | as shipped (s) | plain fastai (s) | like ÷ fastai | shipped ÷ fastai | "
          "like acc % | shipped acc % | fastai acc % |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, (t, acc) in enumerate(rows, 1):
        print(f"| {i} | {t['like for like']:.1f} | {t['as shipped']:.1f} | {t['plain fastai']:.1f} | "
              f"{t['like for like'] / t['plain fastai']:.3f} | {t['as shipped'] / t['plain fastai']:.3f} | "
              f"{100 * acc['like for like']:.1f} | {100 * acc['as shipped']:.1f} | {100 * acc['plain fastai']:.1f} |")
    med = {s: statistics.median(t[s] / t["plain fastai"] for t, _ in rows) for s in ("like for like", "as shipped")}
    print(f"\nmedian ratio to plain fastai: like for like {med['like for like']:.3f} (target <= 1.05), "
          f"as shipped {med['as shipped']:.3f} (target <= 0.5)")
    print("median accuracy: " + ", ".join(f"{s} {100 * statistics.median(a[s] for _, a in rows):.1f}%" for s in names))


if __name__ == "__main__":
    main()
