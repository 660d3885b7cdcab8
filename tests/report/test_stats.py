"""Intervals and verdicts on fixed numbers, against scipy computed directly."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from toolkit.report import stats
def test_mean_interval_is_student_t_and_one_value_claims_no_spread():
    x = [0.70, 0.74, 0.75, 0.71]
    e = stats.mean_interval(x)
    low, high = sps.t.interval(0.95, 3, loc=np.mean(x), scale=sps.sem(x))
    assert (e.n, e.mean, e.std) == (4, pytest.approx(0.725), pytest.approx(np.std(x, ddof=1)))
    assert (e.low, e.high, e.method) == (pytest.approx(low), pytest.approx(high), "t")
    one = stats.mean_interval([0.98])
    assert one.mean == 0.98 and math.isnan(one.std) and math.isnan(one.low) and math.isnan(one.high)


def test_an_accuracy_interval_stays_within_0_and_100_percent():
    e = stats.mean_interval([0.99, 0.70])
    assert (e.low, e.high) == (0.0, 1.0)  # Student t with 2 values: far wider than [0, 1] before clipping


def test_paired_difference_below_ten_pairs_is_the_paired_t_interval():
    a, b = [0.81, 0.77, 0.85, 0.80], [0.79, 0.76, 0.82, 0.80]
    e = stats.paired_difference(a, b)
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert e.method == "t" and e.n == 4 and e.mean == pytest.approx(0.015)
    assert (e.low, e.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_from_ten_pairs_the_interval_is_a_reproducible_bootstrap():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.7, 0.8, 12)
    a = b + rng.normal(0.01, 0.005, 12)
    e, again = stats.paired_difference(a, b), stats.paired_difference(a, b)
    assert e.method == "bootstrap" and e.n == 12 and e == again
    assert e.low < e.mean < e.high and e.low > 0 and stats.verdict(e) == "better"


def test_equal_differences_give_a_zero_width_interval_not_nan():
    e = stats.paired_difference([0.72, 0.82, 0.92], [0.70, 0.80, 0.90])
    assert e.method == "all equal" and e.low == e.high == pytest.approx(0.02) and e.std == 0
    assert stats.verdict(e) == "better"
    same = stats.paired_difference([0.7, 0.8, 0.9], [0.7, 0.8, 0.9])
    assert (same.mean, same.low, same.high) == (0, 0, 0) and stats.verdict(same) == "no clear difference"


@pytest.mark.parametrize("a, b, expected", [
    ([0.80, 0.81, 0.82], [0.70, 0.71, 0.73], "better"),
    ([0.60, 0.61, 0.63], [0.70, 0.71, 0.72], "worse"),
    ([0.71, 0.70, 0.74], [0.70, 0.72, 0.72], "no clear difference"),
    ([0.90, 0.91], [0.70, 0.71], "need more seeds"),        # however large: two pairs claim nothing
    ([0.90], [0.70], "need more seeds"),
])
def test_verdicts(a, b, expected):
    assert stats.verdict(stats.paired_difference(a, b)) == expected


def test_noise_floor_is_the_binomial_standard_error():
    assert stats.binomial_se(0.9, 400) == pytest.approx(math.sqrt(0.9 * 0.1 / 400))
