"""What the first load of a dataset costs: fastai's `verify_images` (the image check before the decode pass took
its place) against the toolkit's decode pass (toolkit/data/scan.py: the same check, plus the sizes, modes and
fingerprints `toolkit data check` reads), on the same files, alternating, in one process. Prints a markdown table
of the median seconds and their ratio.

    python bench/scan.py [FOLDER] [--repeats 3] [--limit N]

FOLDER: default, the Imagenette copy in ../shared/data (its train and val images).
"""
import argparse
import os
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette2-sq224"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(SHARED))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--limit", type=int, help="the first N files only")
    args = ap.parse_args()

    from fastai.vision.utils import verify_images

    from toolkit.data import datasets, scan
    ds = datasets.load(args.folder)
    files = sorted(set(ds.files["train"]) | set(ds.files["val"]))[:args.limit]
    sides = {"fastai verify_images": lambda: verify_images(files),
             "toolkit decode pass": lambda: scan.scan_files(files)}
    times = {k: [] for k in sides}
    for i in range(args.repeats):
        for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):   # each goes first in turn
            t0 = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["fastai verify_images"])
    print(f"{len(files):,} files of {ds.path}, {os.cpu_count()} cores, {args.repeats} repeats, alternating\n")
    print("| pass | median s | min s | max s | ratio to verify_images |\n|:--|--:|--:|--:|--:|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.1f} | {min(ts):.1f} | {max(ts):.1f} | "
              f"{statistics.median(ts) / base:.2f} |")


if __name__ == "__main__":
    main()
