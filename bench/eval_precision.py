"""What evaluating in bf16 costs: one bf16-trained model per seed, validated (and TTA'd) under bf16 autocast, as a
run does, and again in fp32; the paired differences, per seed and their mean.

    python bench/eval_precision.py --dataset DIR [--size 64] [--epochs 5] [--arch xresnet18] [--seeds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastai.metrics import accuracy  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402

import toolkit_experiments  # noqa: E402,F401
from toolkit import api  # noqa: E402
from toolkit.train.callbacks import Autocast  # noqa: E402


def evaluate(learn, seed: int, tta_n: int = 4) -> tuple[float, float]:
    """(accuracy, TTA accuracy) of `learn` as it is; TTA's augmentations drawn from `seed`, alike in both precisions."""
    acc = float(learn.validate()[1])
    set_seed(seed, reproducible=True)
    preds, targs = learn.tta(n=tta_n)
    return acc, float(accuracy(preds, targs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for seed in range(42, 42 + args.seeds):
        learn = api.learner("baseline", dataset=args.dataset, size=args.size, epochs=args.epochs, arch=args.arch,
                            precision="bf16", seed=seed, progress="none")
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(args.epochs, learn.recipe.lr)
            bf16 = evaluate(learn, seed)
            with learn.removed_cbs(learn.cbs.filter(lambda c: isinstance(c, Autocast))):
                fp32 = evaluate(learn, seed)
        rows.append((seed, *bf16, *fp32))
    print(f"{args.dataset}, {args.size} px, {args.epochs} epochs, {args.arch}, trained in bf16; seeds "
          f"{', '.join(str(r[0]) for r in rows)}\n")
    print("| seed | accuracy, bf16 eval % | accuracy, fp32 eval % | TTA, bf16 % | TTA, fp32 % |")
    print("|---:|---:|---:|---:|---:|")
    for seed, a16, t16, a32, t32 in rows:
        print(f"| {seed} | {100 * a16:.2f} | {100 * a32:.2f} | {100 * t16:.2f} | {100 * t32:.2f} |")
    d = [100 * (r[3] - r[1]) for r in rows]
    dt = [100 * (r[4] - r[2]) for r in rows]
    print(f"\nfp32 minus bf16 evaluation, points: accuracy mean {statistics.mean(d):+.2f} (per seed "
          f"{', '.join(f'{v:+.2f}' for v in d)}), TTA mean {statistics.mean(dt):+.2f} "
          f"(per seed {', '.join(f'{v:+.2f}' for v in dt)})")


if __name__ == "__main__":
    main()
