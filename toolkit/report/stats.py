"""Intervals and verdicts: the mean of a recipe's seeds, and its paired difference with its reference (scipy).

The protocol: both recipes run with the same seeds; the difference is taken seed by seed (paired), so what the
seeds share (data order, initial weights) cancels out; the 95% interval is Student's t on those differences,
or from n >= BOOTSTRAP_FROM pairs a BCa bootstrap (at n = 3 a bootstrap is overconfident); a claim ("better",
"worse") is made only when the interval excludes zero, and only from MIN_PAIRS pairs.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
MIN_PAIRS = 3          # fewer pairs: "need more seeds", whatever the interval says
BOOTSTRAP_FROM = 10    # pairs from which the interval is a bootstrap rather than Student's t
BOOTSTRAP_RESAMPLES = 9999
EQUAL = 1e-9           # spreads below this are rounding (accuracies are multiples of 1 / validation images)

BETTER, WORSE, UNCLEAR, MORE_SEEDS = "better", "worse", "no clear difference", "need more seeds"


@dataclass(frozen=True)
class Estimate:
    """A mean over n values with its sample std and 95% interval (nan where n cannot support one)."""
    n: int
    mean: float
    std: float = math.nan
    low: float = math.nan
    high: float = math.nan
    method: str = ""      # "t", "bootstrap", "all equal" (zero spread: the interval is the value itself)


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
    if n >= BOOTSTRAP_FROM:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, method="BCa",
                                 n_resamples=BOOTSTRAP_RESAMPLES, random_state=np.random.default_rng(0)
                                 ).confidence_interval
        if math.isfinite(ci.low) and math.isfinite(ci.high):
            return Estimate(n, mean, std, float(ci.low), float(ci.high), "bootstrap")
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)  # a difference of accuracies lies in [-1, 1]
    return Estimate(n, mean, std, max(float(ci.low), -1.0), min(float(ci.high), 1.0), "t")


def verdict(diff: Estimate) -> str:
    """better / worse when the interval excludes zero, no clear difference when it does not; too few pairs:
    need more seeds. An interval of zero width (all pairs equal) decides by the sign of the difference."""
    if diff.n < MIN_PAIRS:
        return MORE_SEEDS
    if diff.low > 0:
        return BETTER
    if diff.high < 0:
        return WORSE
    return UNCLEAR


def binomial_se(accuracy: float, n_images: int) -> float:
    """Standard error of an accuracy measured on `n_images` validation images (the evaluation noise floor)."""
    return float(stats.binom.std(n_images, accuracy)) / n_images
