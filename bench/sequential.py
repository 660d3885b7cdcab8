"""The sequential design of --seeds auto against fixed numbers of seeds, by simulation (no training): for each
scenario (true difference, spread of the paired differences, margin, in points), how often each verdict comes
out and how many pairs it spends on average. Prints a markdown table.

    python bench/sequential.py [--sweeps 4000] [--max-seeds 10]
"""
import argparse

import numpy as np

from toolkit import stats

SCENARIOS = [  # (true difference, spread, margin): what a row of a comparison may be
    (0.0, 1.0, 1.0), (0.0, 0.5, 1.0), (0.0, 1.0, 3.0), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (2.0, 3.0, 1.0),
    (5.0, 3.0, 1.0), (1.0, 0.5, 1.0),
]


def shares(verdicts) -> dict:
    word = np.array([str(v).split(" (")[0] for v in verdicts])
    out = {}
    for w in ("better", "worse", "within", "equivalent", "inconclusive"):
        hit = np.char.find(word.astype(str), "within") >= 0 if w == "within" else \
            (word == w)
        out[w] = 100 * hit.mean()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=4000)
    ap.add_argument("--max-seeds", type=int, default=stats.MAX_SEEDS)
    args = ap.parse_args()
    plan = stats.design(args.max_seeds)
    print(f"{plan.describe()}.\n{args.sweeps:,} simulated rows per line (normal paired differences, seed 1); "
          f"% of rows with each verdict ('within': better or worse, within the margin).\n")
    print("| true Δ | spread | margin | seeds | better % | worse % | within % | equivalent % | inconclusive % "
          "| pairs spent (mean) | stopped by 5 pairs % |")
    print("|--:|--:|--:|:--|--:|--:|--:|--:|--:|--:|--:|")
    for delta, sd, margin in SCENARIOS:
        rows = [("3 fixed", stats.simulate_fixed(delta, sd, 3, margin, args.sweeps, seed=1), np.full(args.sweeps, 3)),
                (f"{plan.max_pairs} fixed", stats.simulate_fixed(delta, sd, plan.max_pairs, margin, args.sweeps, seed=1),
                 np.full(args.sweeps, plan.max_pairs)),
                ("auto", *stats.simulate(delta, sd, plan, margin, args.sweeps, seed=1))]
        for name, verdicts, spent in rows:
            s = shares(verdicts)
            print(f"| {delta:+.1f} | {sd:.1f} | ±{margin:g} | {name} | {s['better']:.1f} | {s['worse']:.1f} | "
                  f"{s['within']:.1f} | {s['equivalent']:.1f} | {s['inconclusive']:.1f} | {spent.mean():.1f} | "
                  f"{100 * np.mean(spent <= 5):.0f} |")


if __name__ == "__main__":
    main()
