"""A sweep's memory: N short runs in one process (`toolkit.run(..., seeds=N)`, as `toolkit run ... --seeds N` does),
and the process's resident memory after each finished run, anonymous (heap: what a leak grows) and file-backed
(memory-mapped packs and libraries: pages the kernel may drop at any time) apart. Prints a markdown table.

    python bench/sweep_memory.py DATASET [--runs 12] [--size 64] [--epochs 1] [--arch xresnet18]

DATASET: a folder in Imagenette's layout, e.g. a proxy of the Imagenette copy:
    toolkit data proxy ../shared/data/imagenette2-sq224 /tmp/inet260 --per-class 260 --size 128
"""
import argparse
import tempfile
import time
from pathlib import Path

import toolkit


def resident() -> dict:
    """This process's resident memory in MB, from /proc/self/status: all, anonymous, file-backed, and the peak."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    mb = {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")}
    return {"rss": mb["VmRSS"], "anon": mb["RssAnon"], "file": mb["RssFile"] + mb["RssShmem"], "peak": mb["VmHWM"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--arch", default="xresnet18")
    ap.add_argument("--results", help="results folder (default: a new temporary one)")
    args = ap.parse_args()
    lines = [(0, resident(), 0.0)]
    t0 = time.perf_counter()

    def log(message: str) -> None:
        if message.lstrip().startswith("accuracy "):   # the sweep's line for a finished run
            lines.append((len(lines), resident(), time.perf_counter() - t0))
            print(f"run {len(lines) - 1}: {message.strip()}; {lines[-1][1]['anon']:,.0f} MB anonymous", flush=True)

    results = args.results or tempfile.mkdtemp(prefix="sweep-memory-")
    toolkit.run("baseline", dataset=args.dataset, size=args.size, epochs=args.epochs, arch=args.arch,
                seeds=args.runs, reference=False, results=results, quiet=True, log=log)
    first = lines[1][1]["anon"] if len(lines) > 1 else lines[0][1]["anon"]
    print(f"\n{args.runs} runs of baseline in one process: {Path(args.dataset).name}, {args.size} px, "
          f"{args.epochs} epoch(s), {args.arch}, seeds 42.., results in {results}. Resident memory in MB after each "
          f"finished run (/proc/self/status: anonymous = RssAnon, file-backed = RssFile + RssShmem).\n")
    print("| runs finished | resident | anonymous | file-backed | anonymous since run 1 | peak so far | seconds |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for n, m, s in lines:
        print(f"| {n} | {m['rss']:,.0f} | {m['anon']:,.0f} | {m['file']:,.0f} | "
              f"{m['anon'] - first:+,.0f} | {m['peak']:,.0f} | {s:.0f} |")
    if len(lines) > 2:
        per_run = (lines[-1][1]["anon"] - first) / (len(lines) - 2)
        print(f"\nAnonymous memory grew {per_run:+,.0f} MB per run after the first.")


if __name__ == "__main__":
    main()
