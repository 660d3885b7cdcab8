"""Wall time of one sweep run three ways: serially with torch's default threads, serially with one thread, and
as Ray tasks on 2 one-CPU workers (a local Ray, started by the command itself), in one run of this script.

Each way runs the launcher as a user would, in a fresh results folder (so nothing is skipped), with the caches
warm; the three alternate their order from one repeat to the next. Printed: every wall time, the medians, their
ratios to the first way, and the inputs of the "Scaling out" estimate in docs/sweeps.md (per-job time, the cost of
starting Ray and of importing the toolkit in a fresh process).

    python bench/executors.py [--size 16] [--epochs 2] [--seeds 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

WAYS = {
    "serial, torch's default threads": ([], {}),
    "serial, 1 thread (OMP_NUM_THREADS=1)": ([], {"OMP_NUM_THREADS": "1"}),
    "Ray, 2 workers x 1 CPU": (["--executor", "ray", "--cpus-per-run", "1"], {}),
}


def sweep_args(args) -> list[str]:
    return ["run", "chapter7", "--dataset", "digits", "--size", str(args.size), "--epochs", str(args.epochs),
            "--set", "arch=xresnet18", "--seeds", str(args.seeds), "--quiet"]


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="toolkit-executors-"))
    toolkit = [sys.executable, "-m", "toolkit"]
    print(f"chapter7 x {args.seeds} seeds on digits, {args.size} px, {args.epochs} epochs, xresnet18; "
          f"{os.cpu_count()} cores; {args.repeats} repeats\n", flush=True)
    timed([*toolkit, "run", "baseline", "--dataset", "digits", "--size", str(args.size), "--epochs", "1",
           "--set", "arch=xresnet18", "--quiet", "--results", str(work / "warm-up")], {})  # digits, pack, checks

    walls = {w: [] for w in WAYS}
    jobs = {}
    for rep in range(args.repeats):
        order = list(WAYS)[rep % len(WAYS):] + list(WAYS)[:rep % len(WAYS)]
        for way in order:
            extra, env = WAYS[way]
            res = work / f"{rep}-{list(WAYS).index(way)}"
            walls[way].append(timed([*toolkit, *sweep_args(args), *extra, "--results", str(res)], env))
            table = pd.read_csv(res / "runs.csv")
            jobs.setdefault(way, []).extend(table["wall_seconds"])
            print(f"repeat {rep + 1}, {way}: {walls[way][-1]:.1f} s ({len(table)} jobs)", flush=True)

    first = statistics.median(walls[list(WAYS)[0]])
    print("\n| way | wall time per repeat (s) | median (s) | ratio to serial, default threads | median job (s) |")
    print("|:--|--:|--:|--:|--:|")
    for way, w in walls.items():
        print(f"| {way} | {', '.join(f'{x:.0f}' for x in w)} | {statistics.median(w):.0f} | "
              f"{statistics.median(w) / first:.2f} | {statistics.median(jobs[way]):.1f} |")

    ray_start = [timed([sys.executable, "-c", "import ray; ray.init(include_dashboard=False, logging_level='ERROR');"
                        " ray.shutdown()"], {}) for _ in range(args.repeats)]
    imports = [timed([sys.executable, "-c", "import toolkit_experiments, toolkit.sweep.execute, toolkit.train.learner"], {})
               for _ in range(args.repeats)]
    print(f"\nstarting and stopping a local Ray (python -c 'import ray; ray.init(); ray.shutdown()'): "
          f"median {statistics.median(ray_start):.1f} s")
    print(f"a fresh process importing the toolkit (torch, fastai): median {statistics.median(imports):.1f} s")


if __name__ == "__main__":
    main()
