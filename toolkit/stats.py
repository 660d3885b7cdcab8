"""Intervals, verdicts, power and sequential designs: the mean of a recipe's seeds, and its paired difference with
its reference (scipy).

The protocol: both recipes run with the same seeds; the difference is taken seed by seed (paired), so what the
seeds share (data order, initial weights) cancels out; the 95% interval is a t interval (a comparison's rows take
their standard error from toolkit/judgment/, over seeds and validation images; no bootstrap, which at a handful
of pairs does not hold its level). A verdict needs
MIN_PAIRS pairs; "better" / "worse" when that interval excludes zero; "equivalent (±M)" when the difference is
shown to lie within a margin M (two one-sided t tests, TOST: the 90% t interval inside ±M); "inconclusive"
otherwise, with the pairs that would likely settle it (80% power). Under `--seeds auto` the verdicts of every
look use t intervals at a per-look level that keeps the error rate over all looks (`Design`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .defaults import FAMILIES, LOOKS, MARGIN, MAX_SEEDS  # noqa: F401  (stats.MARGIN, ... as the report reads them)
from .errors import ToolkitError

ALPHA = 0.05           # the error rate a verdict allows: a false better / worse, or a false equivalent
CONFIDENCE = 1 - ALPHA  # the intervals the table shows
MIN_PAIRS = 3          # fewer pairs: "need more seeds", whatever the interval says
POWER = 0.8            # the chance of settling a row that the pairs needed (~N) plan for
MAX_NEEDED = 50        # beyond this many pairs, ~N says only ">50"
MAX_SEEDS_LIMIT = 100  # --max-seeds above this is refused (the design's simulation grows with it)
EQUAL = 1e-6           # spreads below this are rounding: float32 accuracies differ by ~1e-7 where the counts agree
                       # (an accuracy is a multiple of 1 / validation images, far above this below a million)

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, MORE_SEEDS = "better", "worse", "equivalent", "inconclusive", "need more seeds"
DECIDED = (BETTER, WORSE, EQUIVALENT)  # verdicts that start with these settle a row


@dataclass(frozen=True)
class Estimate:
    """A mean over n values with its sample std and 95% interval (nan where n cannot support one)."""
    n: int
    mean: float
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan
    method: str = ""      # "t", "all equal" (zero spread: the interval is the value itself)


def mean_interval(values, bounds=(0.0, 1.0)) -> Estimate:
    """Mean, sample std and Student-t 95% interval of `values` (one value: the mean alone).

    The interval is clipped to `bounds` (an accuracy lies in [0, 1]; a t interval on 2 seeds can say 140%)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, mean)
    std = float(x.std(ddof=1))
    if np.ptp(x) <= EQUAL:
        return Estimate(n, mean, 0.0, mean, mean, "all equal")
    low, high = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=stats.sem(x))
    return Estimate(n, mean, std, max(float(low), bounds[0]), min(float(high), bounds[1]), "t")


def paired_difference(treatment, reference) -> Estimate:
    """The mean of treatment - reference over pairs, with a 95% interval on the paired differences."""
    d = np.asarray(treatment, dtype=float) - np.asarray(reference, dtype=float)
    n = len(d)
    if n < 2:
        return mean_interval(d, bounds=(-1.0, 1.0))
    mean, std = float(d.mean()), float(d.std(ddof=1))
    if np.ptp(d) <= EQUAL:  # every pair moved by the same amount: no spread to build an interval from
        mean = 0.0 if abs(mean) <= EQUAL else mean
        return Estimate(n, mean, 0.0, mean, mean, "all equal")
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)  # a difference of accuracies lies in [-1, 1]
    return Estimate(n, mean, std, max(float(ci.low), -1.0), min(float(ci.high), 1.0), "t")


def points(margin: float) -> str:
    """A margin in accuracy points as a verdict shows it: 1.0 -> '±1', 0.5 -> '±0.5'."""
    return f"±{margin:g}"


_CODES = [MORE_SEEDS, BETTER, WORSE, "{b}, within {m}", "{w}, within {m}", "{e} ({m})", INCONCLUSIVE]


def codes(mean, se, df, margin: float, alpha: float, alpha_equivalence: float, image: float = 0.0,
          se_equivalence=None, df_equivalence=None):
    """The verdict rule on arrays of (mean, standard error, degrees of freedom) of paired differences, as indices
    into _CODES (at least MIN_PAIRS pairs assumed): better / worse when the (1 - alpha) t interval excludes zero,
    within the margin when the (1 - 2 alpha_equivalence) one lies inside it. No spread (se 0, or rounding), or a
    (1 - alpha) interval narrower than `image` (one validation image), decides nothing: inconclusive.
    `se_equivalence`, `df_equivalence`: what the tests of equivalence take, where it differs (toolkit/judgment/).

    Written once on arrays so that one row (toolkit/judgment/) and thousands of simulated sweeps follow the very
    same rule."""
    mean, se = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    df = np.asarray(df, dtype=float)
    half = sps_t(1 - alpha / 2, df) * se
    low, high = mean - half, mean + half
    m = margin / 100
    eq = sps_t(1 - alpha_equivalence, df if df_equivalence is None else np.asarray(df_equivalence, dtype=float)) \
        * (se if se_equivalence is None else np.asarray(se_equivalence, dtype=float))
    inside = (mean - eq > -m) & (mean + eq < m)
    better, worse = low > 0, high < 0
    out = np.select([better & inside, worse & inside, better, worse, inside], [3, 4, 1, 2, 5], 6)
    spread = (se > EQUAL) & np.isfinite(se) & (2 * half >= image)
    return np.where(spread, out, 6)


def sps_t(q, df):
    """Student t's quantile, with an infinite df as the normal's."""
    return stats.t.ppf(q, np.where(np.isfinite(df), df, 1e12))


def _verdict_codes(mean, sd, n, margin: float, alpha: float, alpha_equivalence: float, image: float = 0.0):
    """`codes` of n paired differences with mean `mean` and spread `sd` (Student t on n - 1 df)."""
    if n < MIN_PAIRS:
        return np.zeros(np.shape(mean), dtype=int)
    return codes(mean, np.asarray(sd, dtype=float) / math.sqrt(n), n - 1, margin, alpha, alpha_equivalence, image)


def _word(code: int, margin: float) -> str:
    return _CODES[code].format(b=BETTER, w=WORSE, e=EQUIVALENT, m=points(margin))


def directed(verdicts) -> np.ndarray:
    """Which of simulated verdicts (words of `_word`) say better or worse, within the margin or not."""
    return np.array([_CODES.index(_kind(v)) in (1, 2, 3, 4) for v in verdicts], dtype=bool)


def found_better(verdicts) -> np.ndarray:
    """Which of simulated verdicts say better (within the margin or not)."""
    return np.array([_CODES.index(_kind(v)) in (1, 3) for v in verdicts], dtype=bool)


def _kind(word) -> str:
    """A verdict's word back to its pattern in _CODES (the margin's number taken out)."""
    w = str(word)
    for code in _CODES:
        head = code.split("{m}")[0].format(b=BETTER, w=WORSE, e=EQUIVALENT)
        if (w == head) if "{m}" not in code else w.startswith(head):
            return code
    return INCONCLUSIVE


def _tail(x, df, nc):
    """P(T > x) for a noncentral t; scipy gives nan far in its tails, where the answer is 0 or 1."""
    p = stats.nct.sf(x, df, nc)
    return np.where(np.isnan(p), (np.asarray(nc) > x).astype(float), p)


def power_difference(n, delta, sd, alpha: float = ALPHA):
    """The chance that a paired t test on n pairs excludes zero (two-sided, level alpha) when the true mean
    difference is `delta` and its spread `sd` (noncentral t; broadcasts over arrays)."""
    n = np.asarray(n, dtype=float)
    return power_t(delta, sd / np.sqrt(n), n - 1, alpha)


def power_t(delta, se, df, alpha: float = ALPHA):
    """The chance that a t test with standard error `se` and `df` degrees of freedom excludes zero (two-sided, level
    alpha) when the true difference is `delta` (noncentral t; broadcasts over arrays)."""
    nc = np.abs(delta) / se
    crit = stats.t.ppf(1 - alpha / 2, df)
    return _tail(crit, df, nc) + _tail(crit, df, -nc)   # the lower tail, by symmetry


def pairs_to_detect(delta: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest pairs (at least MIN_PAIRS) that find a true difference `delta` with `power`, given the spread `sd`
    of paired differences; None beyond MAX_NEEDED."""
    n = np.arange(MIN_PAIRS, MAX_NEEDED + 1)
    enough = power_difference(n, delta, sd, alpha) >= power
    return int(n[enough][0]) if enough.any() else None


def power_equivalence(n, delta, sd, margin: float, alpha: float = ALPHA):
    """The chance that two one-sided t tests at level alpha on n pairs show the difference inside ±margin (same
    units as delta) when its true mean is `delta` and its spread `sd`: the usual lower bound P1 + P2 - 1."""
    n = np.asarray(n, dtype=float)
    return power_tost(delta, sd / np.sqrt(n), n - 1, margin, alpha)


def power_tost(delta, se, df, margin: float, alpha: float = ALPHA):
    """`power_equivalence` for a standard error `se` on `df` degrees of freedom."""
    crit = stats.t.ppf(1 - alpha, df)
    p = _tail(crit, df, (margin + delta) / se) + _tail(crit, df, (margin - delta) / se) - 1
    return np.where(np.abs(delta) < margin, np.clip(p, 0.0, 1.0), 0.0)


def _needed(mean, sd, margin: float, alpha: float, alpha_equivalence: float, power: float, cap: int):
    """Pairs in all that would likely settle rows of (mean, spread) of paired differences, taking them as the truth
(to exclude zero, or to fit inside ±margin, whichever needs fewer): float array, cap + 1 beyond cap, nan where there
is no spread to plan from. The simulations' rule; a comparison's rows plan with toolkit/judgment/."""
    mean, sd = np.atleast_1d(np.asarray(mean, dtype=float)), np.atleast_1d(np.asarray(sd, dtype=float))
    out = np.full(mean.shape, np.nan)
    ok = sd > EQUAL
    if not ok.any():
        return out
    n = np.arange(MIN_PAIRS, cap + 1)[None, :]
    mu, s = mean[ok][:, None], sd[ok][:, None]
    enough = (power_difference(n, mu, s, alpha) >= power) | \
        (power_equivalence(n, mu, s, margin / 100, alpha_equivalence) >= power)
    out[ok] = np.where(enough.any(axis=1), n[0][enough.argmax(axis=1)], cap + 1)
    return out


def shown_needed(needed) -> str:
    """`~N`, or `>50` beyond the cap; '' when there is nothing to plan from."""
    if needed is None or (isinstance(needed, float) and math.isnan(needed)):
        return ""
    return f">{MAX_NEEDED}" if int(needed) > MAX_NEEDED else f"~{int(needed)}"


def detectable(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference that a paired t test on n pairs with spread `sd` detects with `power`."""
    return float(optimize.brentq(lambda delta: float(power_difference(n, delta, sd, alpha)) - power,
                                 1e-9 * sd, 20 * sd))


POCOCK_SWEEPS = 200_000  # null sweeps simulated to find a design's per-look level (seed 0)


@functools.lru_cache(maxsize=None)
def pocock(looks: tuple[int, ...], alpha: float = ALPHA) -> tuple[float, float]:
    """Per-look levels of a Pocock-type boundary for paired t tests at `looks`: (two-sided level for better /
    worse, one-sided level for each of the two tests of equivalence), each such that the chance of any false
    verdict over all looks is `alpha`. Found by simulation (POCOCK_SWEEPS null sweeps, seed 0): the alpha-quantile
    of the smallest p-value over the looks. t statistics do not depend on the spread, so one simulation holds for
    every row; stopping a row early (decided, or needing more than the design's pairs) only removes chances of a
    false verdict."""
    if len(looks) == 1:
        return alpha, alpha
    z = np.random.default_rng(0).standard_normal((POCOCK_SWEEPS, looks[-1]))
    total, squares = np.cumsum(z, axis=1), np.cumsum(z ** 2, axis=1)
    two, one = np.ones(POCOCK_SWEEPS), np.ones(POCOCK_SWEEPS)
    for n in looks:
        mean = total[:, n - 1] / n
        sd = np.sqrt((squares[:, n - 1] - n * mean ** 2) / (n - 1))
        t = mean / (sd / math.sqrt(n))
        two = np.minimum(two, 2 * stats.t.sf(np.abs(t), n - 1))
        one = np.minimum(one, stats.t.sf(t, n - 1))
    return float(np.quantile(two, alpha)), float(np.quantile(one, alpha))


@dataclass(frozen=True)
class Design:
    """A group-sequential design for --seeds auto: planned looks (pairs so far) and the level of every look, a
    Pocock-type boundary (the same level at each look, `pocock`) that keeps the chance of any false better /
    worse over all looks at `alpha`, and the same for a false equivalent. Bonferroni (alpha / looks) would be
    valid too, and is looser: for 3, 5, 7, 10 it tests at 1.25% per look where this tests at 1.6% (two-sided)."""
    looks: tuple[int, ...]
    alpha: float = ALPHA

    @property
    def levels(self) -> tuple[float, float]:
        return pocock(self.looks, self.alpha)

    @property
    def max_pairs(self) -> int:
        return self.looks[-1]

    def describe(self) -> str:
        a2, a1 = self.levels
        return (f"--seeds auto: looks at {', '.join(map(str, self.looks))} pairs, every look at the same level "
                f"(a Pocock-type boundary found by simulation) so that any false better / worse over all looks, "
                f"and any false equivalent, has a chance of at most {100 * self.alpha:g}%: a {100 * (1 - a2):.1f}% "
                f"t interval for better / worse, a {100 * (1 - 2 * a1):.1f}% one for within the margin / equivalent")


def design(max_seeds: int = MAX_SEEDS) -> Design:
    """The looks for at most `max_seeds` pairs: those of LOOKS below it, then `max_seeds` itself
    (10: 3, 5, 7, 10; 6: 3, 5, 6; 20: 3, 5, 7, 10, 15, 20; 3: a single look, the fixed verdict)."""
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or not MIN_PAIRS <= max_seeds <= MAX_SEEDS_LIMIT:
        raise ToolkitError(f"--max-seeds must be a whole number of at least {MIN_PAIRS} and at most "
                           f"{MAX_SEEDS_LIMIT} (got {max_seeds}).")
    return Design(tuple(n for n in LOOKS if n < max_seeds) + (max_seeds,))


def _look(mean, sd, n: int, plan: Design, margin: float, cap: int | None = None):
    """One planned look on arrays: (verdict codes, pairs needed up to `cap`, stops), the rule `look` states."""
    cap = max(MAX_NEEDED, plan.max_pairs) if cap is None else cap
    a2, a1 = plan.levels
    codes = _verdict_codes(mean, sd, n, margin, a2, a1)
    needed = _needed(mean, sd, margin, a2, a1, POWER, cap)
    settled = (codes >= 1) & (codes <= 5)
    stops = settled | (n >= plan.max_pairs) | ((needed > plan.max_pairs) & (n > plan.looks[0]))
    return codes, np.where(settled, np.nan, needed), stops


# --- many rows, one question -------------------------------------------------------------------------------------
# A grid asks "which value?" of all its rows at once: its error is held for the question (the family), not per row.


def holm(p_values, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down over a family's p-values (statsmodels): (rejected, adjusted p-values). The chance of any
    false rejection in the family is at most `alpha`, whatever the dependence between the rows."""
    from statsmodels.stats.multitest import multipletests
    p = np.asarray(p_values, dtype=float)
    if not len(p):
        return np.zeros(0, bool), np.zeros(0)
    reject, adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
    return reject, adjusted


def holm_rows(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """`holm` on every row of a sweeps x rows array at once (thousands of simulated families; a test holds it to
    statsmodels' own): the p-values in order, each against alpha / (rows left), rejected up to the first that fails."""
    order = np.argsort(p, axis=1)
    sorted_p = np.take_along_axis(p, order, axis=1)
    passes = sorted_p <= alpha / (p.shape[1] - np.arange(p.shape[1]))[None, :]
    upto = np.cumprod(passes, axis=1).astype(bool)
    out = np.zeros_like(upto)
    np.put_along_axis(out, order, upto, axis=1)
    return out


def simulate_family(rows: int, n: int | None = None, plan: Design | None = None, true_diffs=None, sd: float = 1.0,
                    family: str = "holm", sweeps: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Simulated comparisons of `rows` rows at once, each row's paired differences drawn from a normal with mean
    `true_diffs[i]` (points; default none) and spread `sd`: with n fixed pairs under `family` (the rule the table
    applies), or under --seeds auto's `plan` (for a family: the plan at alpha / rows per row, as a grid runs it).
    Returns (the chance of any false better / worse among the rows with no true difference, how often each row
    was found better or worse)."""
    true = np.zeros(rows) if true_diffs is None else np.asarray(true_diffs, float)
    found = np.zeros((sweeps, rows), bool)
    wrong = np.zeros((sweeps, rows), bool)
    if plan is not None:
        rowplan = Design(plan.looks, plan.alpha / rows) if family == "holm" else plan
        for i in range(rows):
            verdicts, _ = simulate(true[i], sd, rowplan, sweeps=sweeps, seed=seed + i)
            decided_ = np.array([str(v).startswith((BETTER, WORSE)) for v in verdicts])
            found[:, i] = decided_
            wrong[:, i] = decided_ & (true[i] == 0)
    else:
        d = np.random.default_rng(seed).normal(true / 100, sd / 100, size=(sweeps, n, rows))
        mean, sdev = d.mean(axis=1), d.std(axis=1, ddof=1)
        codes = _verdict_codes(mean, sdev, n, MARGIN, ALPHA, ALPHA)
        decided_ = np.isin(codes, [1, 2, 3, 4])
        if family == "holm":
            decided_ &= holm_rows(2 * stats.t.sf(np.abs(mean / (sdev / math.sqrt(n))), n - 1))
        found = decided_
        wrong = decided_ & (true == 0)[None, :]
    return float(wrong.any(axis=1).mean()), found.mean(axis=0)


def simulate_fixed(true_diff: float, sd: float, n: int, margin: float = MARGIN, sweeps: int = 2000,
                   seed: int = 0) -> np.ndarray:
    """Simulated comparisons on a fixed number n of pairs (t intervals at 95%), differences drawn from a normal
    with mean `true_diff` and spread `sd` (points): each one's verdict."""
    d = np.random.default_rng(seed).normal(true_diff / 100, sd / 100, size=(sweeps, n))
    codes = _verdict_codes(d.mean(axis=1), d.std(axis=1, ddof=1), n, margin, ALPHA, ALPHA)
    return np.array([_word(int(c), margin) for c in codes], dtype=object)


def simulate(true_diff: float, sd: float, plan: Design, margin: float = MARGIN, sweeps: int = 2000,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Simulated sweeps of one row under `plan`: paired differences drawn from a normal with mean `true_diff`
    and spread `sd` (points). Returns each sweep's final verdict and the pairs at which it stopped."""
    draws = np.random.default_rng(seed).normal(true_diff / 100, sd / 100, size=(sweeps, plan.max_pairs))
    verdicts, stopped = np.full(sweeps, INCONCLUSIVE, dtype=object), np.zeros(sweeps, dtype=int)
    active = np.arange(sweeps)
    for n in plan.looks:
        d = draws[active, :n]
        codes, _, stops = _look(d.mean(axis=1), d.std(axis=1, ddof=1), n, plan, margin, cap=plan.max_pairs)
        verdicts[active[stops]] = [_word(int(c), margin) for c in codes[stops]]
        stopped[active[stops]] = n
        active = active[~stops]
    return verdicts, stopped


def binomial_se(accuracy: float, n_images: int) -> float:
    """Standard error of an accuracy measured on `n_images` validation images (the evaluation noise floor)."""
    return float(stats.binom.std(n_images, accuracy)) / n_images
