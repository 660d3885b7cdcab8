"""Wall time of a recipe run through the toolkit vs the same recipe written directly in fastai.

Both run in one process on the same data, seed, size and epochs, alternating which goes first, and the
script prints each pair, the per-pair ratio and the median ratio (target: at most 1.05x, same accuracy).

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
from fastai.data.transforms import GrandparentSplitter, get_image_files, parent_label  # noqa: E402
from fastai.learner import Learner  # noqa: E402
from fastai.losses import CrossEntropyLossFlat  # noqa: E402
from fastai.metrics import accuracy  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastai.vision.augment import Resize, aug_transforms  # noqa: E402
from fastai.vision.data import ImageBlock  # noqa: E402
from fastai.vision.models import xresnet  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import experiments  # noqa: E402,F401
from toolkit import api  # noqa: E402
from toolkit.data import datasets as data  # noqa: E402
from toolkit.recipes import registry  # noqa: E402
from toolkit.recipes.recipe import apply_overrides  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-sq224"


def plain_fastai(path: Path, r, aug: dict) -> float:
    """Fastbook chapter 7's baseline, as one writes it without the toolkit; returns final accuracy."""
    set_seed(r.seed, reproducible=True)
    # Sorted items: the toolkit lists files in sorted order too, so both sides shuffle the same items alike.
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda p: sorted(get_image_files(p)),
                       get_y=parent_label,
                       splitter=GrandparentSplitter(valid_name="val"), item_tfms=Resize(round(r.size * r.presize)),
                       batch_tfms=aug_transforms(size=r.size, min_scale=r.min_scale, **aug))
    dls = dblock.dataloaders(path, bs=r.bs)
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
        from toolkit.data.proxy import make_proxy
        dataset = str(work / "imagenette-p100-80")
        make_proxy(str(SHARED), dataset, per_class=100, size=80, seed=0, progress="none")
    dataset = dataset or "digits"
    ds = data.load(dataset)  # the toolkit's one-time image check is cached; done here so both sides start warm
    recipe = apply_overrides(registry.get("baseline"), dict(dataset=dataset, size=str(args.size),
                                                            epochs=str(args.epochs), arch=args.arch,
                                                            loader="folder"))  # like for like: the DataBlock
    print(f"dataset {ds.path} ({ds.n_train} train / {len(ds.files['val'])} val), {args.arch}, {args.size} px, "
          f"{args.epochs} epochs, bs {recipe.bs}, seed {recipe.seed}, {args.repeats} repeats\n")

    rows = []
    for i in range(args.repeats):
        order = ("toolkit", "fastai") if i % 2 == 0 else ("fastai", "toolkit")
        t, acc = {}, {}
        for side in order:
            start = time.perf_counter()
            if side == "toolkit":
                done = api.sweep_and_compare([recipe], {}, reference=False, rerun=True, results=work / "results",
                                             quiet=True, checkpoint_every=args.checkpoint_every,
                                             log=lambda *a: None)   # checkpoints on, as always
                acc[side] = float(done.sweep.rows["accuracy"].iloc[0])
            else:
                acc[side] = plain_fastai(ds.path, recipe, ds.aug)
            t[side] = time.perf_counter() - start
        rows.append((t["toolkit"], t["fastai"], t["toolkit"] / t["fastai"], acc["toolkit"], acc["fastai"]))

    print("| repeat | toolkit (s) | plain fastai (s) | ratio | toolkit acc % | fastai acc % |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, (tt, tf, ratio, at, af) in enumerate(rows, 1):
        print(f"| {i} | {tt:.1f} | {tf:.1f} | {ratio:.3f} | {100 * at:.1f} | {100 * af:.1f} |")
    med = statistics.median(r[2] for r in rows)
    print(f"\nmedian ratio toolkit / plain fastai: {med:.3f}  (target <= 1.05)")
    print(f"median accuracy: toolkit {100 * statistics.median(r[3] for r in rows):.1f}%, "
          f"plain fastai {100 * statistics.median(r[4] for r in rows):.1f}%")


if __name__ == "__main__":
    main()
