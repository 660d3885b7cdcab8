"""How often a comparison's verdict is wrong when nothing is there: the judgment (toolkit/judgment/) simulated on
count-valued accuracies, against new images from the same population. No training; seeded.

Each simulated comparison draws its own validation set of m images from a population in which the two recipes are
equally good (the question a user asks: on new images like these). The two models disagree on a share p of the
images; a share q of that disagreement is systematic (an image one recipe always gets right and the other wrong, in
a direction drawn per image), the rest drawn afresh with every seed, tilted per seed (a seed's model is a little
better or worse overall, sd 0.1 of the tilt). Accuracies are stored as float32, as run folders store them.

Rules compared, on the same draws:
  judgment   the shipped rule: seeds and images crossed (predictions kept), no verdict from an interval narrower than
             one image or from no spread
  before     the rule until now: Student t on the per-seed differences of the float32 accuracies, a spread below
             1e-9 taken as none and decided from the mean alone
  accuracies the shipped rule for runs without predictions: the seeds alone, spread floored at one image

Cases: one row (a false better / worse); a family of 7 such rows under Holm (any false better / worse); a claim at
the margin (true difference +1 point: a false `within` / `equivalent`); --seeds auto (looks 3, 5, 7, 10 at the
design's per-look level, without its futility stop, which can only remove false verdicts). Then the power left for
true differences of 2 and 5 points. The last line is the largest false-verdict rate of the shipped rule.

    python bench/verdict_error.py [--sweeps 2000]
"""
import argparse
import time

import numpy as np
from scipy import stats as sps

from toolkit import judgment, stats

DISAGREE = (0.005, 0.01, 0.03, 0.10)
IMAGES = (359, 414)
SYSTEMATIC = (0.0, 0.25, 0.5)
PAIRS = (3, 5, 10)
TILT = 0.1
BASE = 0.8   # the reference's accuracy


def draw(rng, sweeps: int, n: int, m: int, p: float, q: float, delta: float = 0.0) -> np.ndarray:
    """Per-image differences D (sweeps x n x m, in {-1, 0, 1}) with a population difference `delta`."""
    lean = 0.5 + delta / (2 * p)                      # P(the disagreement favours the recipe)
    fixed = rng.random((sweeps, 1, m)) < p * q         # images with a systematic disagreement, every seed
    fixed_dir = np.where(rng.random((sweeps, 1, m)) < lean, 1, -1)
    tilt = np.clip(lean + rng.normal(0, TILT, (sweeps, n, 1)), 0, 1)
    other = rng.random((sweeps, n, m)) < p * (1 - q)
    other_dir = np.where(rng.random((sweeps, n, m)) < tilt, 1, -1)
    return np.where(fixed, fixed_dir, np.where(other, other_dir, 0)).astype(np.int8)


def float32_diffs(rng, D: np.ndarray) -> np.ndarray:
    """Per-seed differences of the two accuracies as run folders store them (float32), from the counts."""
    sweeps, n, m = D.shape
    ref = rng.binomial(m, BASE, (sweeps, n))
    rec = ref + D.sum(-1)
    return (rec / m).astype(np.float32).astype(np.float64) - (ref / m).astype(np.float32).astype(np.float64)


def shipped(D: np.ndarray, alpha=stats.ALPHA, alpha_eq=stats.ALPHA, margin=stats.MARGIN):
    mean, se, df, seeds_se = judgment.crossed_arrays(D)
    n = D.shape[-2]
    se_eq, df_eq = judgment.for_equivalence(D)
    codes = stats.codes(mean, judgment.widen(se, df, seeds_se, n, alpha), df, margin, alpha, alpha_eq, 1 / D.shape[-1],
                        judgment.widen(se_eq, df_eq, seeds_se, n, 2 * alpha_eq), df_eq)
    with np.errstate(divide="ignore", invalid="ignore"):   # as judgment.p_value: the larger of the two tests' p
        p = np.maximum(2 * sps.t.sf(np.abs(mean) / se, df), 2 * sps.t.sf(np.abs(mean) / seeds_se, n - 1))
    return codes, np.where((se > 0) & (seeds_se > 0), p, 1.0)


def before(d: np.ndarray, margin=stats.MARGIN):
    """The rule until now, on per-seed differences: zero spread below 1e-9, then decided from the mean."""
    n = d.shape[-1]
    mean, sd = d.mean(-1), d.std(-1, ddof=1)
    se = np.where(sd <= 1e-9, 0.0, sd) / np.sqrt(n)
    half = sps.t.ppf(0.975, n - 1) * se
    eq = sps.t.ppf(0.95, n - 1) * se
    inside = (mean - eq > -margin / 100 + 1e-9) & (mean + eq < margin / 100 - 1e-9)
    better, worse = mean - half > 1e-9, mean + half < -1e-9
    return np.select([better & inside, worse & inside, better, worse, inside], [3, 4, 1, 2, 5], 6)


def accuracies(d: np.ndarray, m: int, margin=stats.MARGIN):
    n = d.shape[-1]
    se = np.maximum(d.std(-1, ddof=1), 1 / m) / np.sqrt(n)
    return stats.codes(d.mean(-1), se, n - 1, margin, stats.ALPHA, stats.ALPHA, 1 / m)


def directed(codes) -> np.ndarray:
    return np.isin(codes, (1, 2, 3, 4))


def claimed_within(codes) -> np.ndarray:
    return np.isin(codes, (3, 4, 5))


def auto(rng, sweeps, m, p, q):
    """--seeds auto at looks 3, 5, 7, 10: a false better / worse at any look (each look at the design's level)."""
    plan = stats.design(10)
    a2, a1 = plan.levels
    D = draw(rng, sweeps, plan.max_pairs, m, p, q)
    wrong, active = np.zeros(sweeps, bool), np.ones(sweeps, bool)
    for n in plan.looks:
        codes, *_ = shipped(D[:, :n], a2, a1)
        wrong |= active & directed(codes)
        active &= ~np.isin(codes, (1, 2, 3, 4, 5))
    return wrong.mean()


def holm7(rng, sweeps, n, m, p, q):
    """7 null rows judged as one family: any false better / worse."""
    codes, ps = [], []
    for _ in range(7):
        c, pv = shipped(draw(rng, sweeps, n, m, p, q))
        codes.append(c)
        ps.append(pv)
    found = stats.holm_rows(np.stack(ps, 1)) & directed(np.stack(codes, 1))
    return found.any(1).mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    worst = []
    print(f"{args.sweeps:,} simulated comparisons per cell (seed {args.seed}); no true difference unless said; "
          f"margin {stats.points(stats.MARGIN)}; seed tilt sd {TILT}; accuracies stored as float32.\n")
    print("One row, a false better / worse:\n")
    print("| disagree | images | systematic | pairs | judgment | before | accuracies (floored) |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for p in DISAGREE:
        for m in IMAGES:
            for q in SYSTEMATIC:
                for n in PAIRS:
                    D = draw(rng, args.sweeps, n, m, p, q)
                    d = float32_diffs(rng, D)
                    new = directed(shipped(D)[0]).mean()
                    worst.append(("one row", p, m, q, n, new))
                    print(f"| {p:.1%} | {m} | {q:.0%} | {n} | {new:.1%} | {directed(before(d)).mean():.1%} | "
                          f"{directed(accuracies(d, m)).mean():.1%} |")
    print("\nA family of 7 rows under Holm (any false better / worse), and a claim at the margin (true Δ = +1 "
          "point: a false within / equivalent), 359 images:\n")
    print("| disagree | systematic | pairs | Holm of 7 | at the margin: judgment | at the margin: before |")
    print("|--:|--:|--:|--:|--:|--:|")
    for p in DISAGREE:
        for q in SYSTEMATIC[1:]:
            for n in PAIRS:
                fam = holm7(rng, args.sweeps, n, 359, p, q)
                worst.append(("Holm of 7", p, 359, q, n, fam))
                if p >= 0.01:
                    D = draw(rng, args.sweeps, n, 359, p, q, delta=0.01)
                    at = claimed_within(shipped(D)[0]).mean()
                    old = claimed_within(before(float32_diffs(rng, D))).mean()
                    worst.append(("at the margin", p, 359, q, n, at))
                    margin = f"{at:.1%} | {old:.1%}"
                else:
                    margin = "- | -"   # a 1-point difference needs at least 1% of the images in disagreement
                print(f"| {p:.1%} | {q:.0%} | {n} | {fam:.1%} | {margin} |")
    print("\n--seeds auto (looks 3, 5, 7, 10; a false better / worse at any look), 359 images:\n")
    print("| disagree | systematic | judgment |")
    print("|--:|--:|--:|")
    for p in DISAGREE:
        for q in SYSTEMATIC[1:]:
            rate = auto(rng, args.sweeps, 359, p, q)
            worst.append(("--seeds auto", p, 359, q, 10, rate))
            print(f"| {p:.1%} | {q:.0%} | {rate:.1%} |")
    print("\nPower left: how often a true difference is found (better), 359 images, 25% of the disagreement "
          "systematic:\n")
    print("| true Δ | disagree | 3 pairs | 5 pairs | 10 pairs |")
    print("|--:|--:|--:|--:|--:|")
    for delta in (0.02, 0.05):
        for p in DISAGREE:
            if p < delta:
                continue
            found = [np.isin(shipped(draw(rng, args.sweeps, n, 359, p, 0.25, delta))[0], (1, 3)).mean() for n in PAIRS]
            print(f"| +{100 * delta:g} | {p:.1%} | " + " | ".join(f"{f:.0%}" for f in found) + " |")
    case, p, m, q, n, rate = max(worst, key=lambda w: w[-1])
    noise = 2 * np.sqrt(0.05 * 0.95 / args.sweeps)
    print(f"\n{len(worst)} cells in {time.perf_counter() - t0:.0f} s; two simulation standard errors at 5%: "
          f"{noise:.1%}. The largest: {case}, {p:.1%} disagreement, {m} images, {q:.0%} systematic, {n} pairs.")
    print(f"largest false-verdict rate: {rate:.1%}")


if __name__ == "__main__":
    main()
