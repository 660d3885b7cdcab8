"""Intervals and verdicts on fixed numbers, against scipy computed directly."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from toolkit.errors import ToolkitError
from toolkit import judgment, stats
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


def verdict_of(a, b, margin=stats.MARGIN):
    """The verdict of the seeds alone on the paired differences (no validation-image count: no floor)."""
    return judgment.judge(judgment.seeds_only(np.subtract(a, b)), margin).text


def test_from_ten_pairs_the_interval_is_still_student_t():
    """No bootstrap at any number of pairs: BCa at 10-12 pairs declared a false difference 9-11% of the time."""
    rng = np.random.default_rng(1)
    b = rng.uniform(0.7, 0.8, 12)
    a = b + rng.normal(0.01, 0.005, 12)
    e = stats.paired_difference(a, b)
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert e.method == "t" and e.n == 12 and (e.low, e.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert verdict_of(a, b).startswith("better")


def test_equal_differences_decide_nothing():
    """Every pair moved by the same amount: no spread, so no interval to decide from (not better, not equivalent)."""
    e = stats.paired_difference([0.72, 0.82, 0.92], [0.70, 0.80, 0.90])
    assert e.method == "all equal" and e.low == e.high == pytest.approx(0.02) and e.std == 0
    assert verdict_of([0.72, 0.82, 0.92], [0.70, 0.80, 0.90]) == "inconclusive"
    assert verdict_of([0.7, 0.8, 0.9], [0.7, 0.8, 0.9]) == "inconclusive"
    assert math.isnan(judgment.p_value(judgment.seeds_only([0.02, 0.02, 0.02])))   # no test: never found by a family
    rounded = np.float32([0.8105849, 0.8105849, 0.8105849]) - np.float32([0.8133705, 0.8133705, 0.8133705 + 1e-7])
    assert verdict_of(rounded, [0, 0, 0]) == "inconclusive"   # float32 rounding is no spread either


@pytest.mark.parametrize("a, b, expected", [
    ([0.80, 0.81, 0.82], [0.70, 0.71, 0.73], "better"),
    ([0.60, 0.61, 0.63], [0.70, 0.71, 0.72], "worse"),
    ([0.705, 0.706, 0.707, 0.705], [0.700, 0.700, 0.700, 0.701], "better, within ±1"),   # real, but below 1 point
    ([0.700, 0.801, 0.899, 0.751], [0.701, 0.800, 0.900, 0.750], "equivalent (±1)"),
    ([0.71, 0.70, 0.74], [0.70, 0.72, 0.72], "inconclusive"),
    ([0.90, 0.91], [0.70, 0.71], "need more seeds"),        # however large: two pairs claim nothing
    ([0.90], [0.70], "need more seeds"),
])
def test_verdicts(a, b, expected):
    assert verdict_of(a, b) == expected


@pytest.mark.parametrize("seed", range(6))
def test_equivalence_is_two_one_sided_t_tests_at_5_percent(seed):
    """`equivalent (±M)` exactly when both one-sided tests of scipy reject at 5%: the 90% t interval inside ±M."""
    d = np.random.default_rng(seed).normal(0.002 * seed - 0.005, 0.004, 5)
    m = 0.01
    tost = max(sps.ttest_1samp(d, -m, alternative="greater").pvalue, sps.ttest_1samp(d, m, alternative="less").pvalue)
    excludes = sps.ttest_1samp(d, 0).pvalue < 0.05
    v = judgment.judge(judgment.seeds_only(d), margin=1.0).text
    assert v.endswith("±1)") == (tost < 0.05 and not excludes) and ("within" in v) == (tost < 0.05 and excludes)


def test_pairs_needed_plans_for_80_percent_power_and_simulation_agrees():
    """N pairs settle a difference of 1 point with a spread of 1.5 in >= 80% of simulated t tests; N - 1 do not."""
    def needed(d, margin=stats.MARGIN):
        return judgment.pairs_needed(judgment.seeds_only(d), margin)[0]
    d = np.array([0.0, 0.01, 0.02])                     # mean 1 point, spread 1 point: far outside ±0.2
    n = needed(d, margin=0.2)
    assert n == needed(d * 1.0, margin=0.2) and 5 <= n <= 15
    rng = np.random.default_rng(0)

    def power(k):
        draws = rng.normal(0.01, 0.01, (20000, k))
        return np.mean(sps.ttest_1samp(draws, 0, axis=1).pvalue < 0.05)
    assert power(n) >= 0.79 and power(n - 1) < 0.8
    assert needed([0.0, 0.0005, -0.0005], margin=1.0) == 3          # tiny spread: equivalence soon
    assert needed([0.0, 0.03, -0.03], margin=1.0) == stats.MAX_NEEDED + 1
    assert stats.shown_needed(51) == ">50" and stats.shown_needed(7) == "~7" and needed([0.01] * 3) is None


def test_detectable_difference_has_80_percent_power():
    delta = stats.detectable(5, 1.0)
    assert float(stats.power_difference(5, delta, 1.0)) == pytest.approx(0.8)
    assert stats.detectable(20, 1.0) < stats.detectable(10, 1.0) < delta


def test_the_looks_of_a_design_and_its_levels():
    assert stats.design(10).looks == (3, 5, 7, 10) and stats.design(6).looks == (3, 5, 6)
    assert stats.design(3).looks == (3,) and stats.design(3).levels == (0.05, 0.05)
    assert stats.design(20).looks == (3, 5, 7, 10, 15, 20)
    two, one = stats.design(10).levels
    assert 0.05 / 4 < two < 0.05 and 0.05 / 4 < one < 0.05       # tighter than Bonferroni, stricter than one look
    with pytest.raises(ToolkitError, match="at least 3"):
        stats.design(2)


def _rates(true_diff, sd, margin, sweeps=2000):
    verdicts, stopped = stats.simulate(true_diff, sd, stats.design(10), margin, sweeps=sweeps, seed=1)
    word = np.array([v.split(",")[0].split(" (")[0] for v in verdicts])
    return word, stopped


def test_sequential_design_keeps_false_verdicts_at_5_percent():
    """No true difference: false better / worse over all looks at most 5% (within 3 Monte Carlo errors); a true
    difference of exactly the margin: false `equivalent` at most 5% too."""
    sweeps = 3000
    mc = 3 * np.sqrt(0.05 * 0.95 / sweeps)
    for sd in (0.5, 1.0, 3.0):
        word, _ = _rates(0.0, sd, 1.0, sweeps)
        assert np.isin(word, ["better", "worse"]).mean() <= 0.05 + mc
    word, _ = _rates(1.0, 1.0, 1.0, sweeps)
    assert (word == "equivalent").mean() <= 0.05 + mc


def test_sequential_design_decides_clear_rows_early():
    """A true difference of 2 points with a spread of 1: most sweeps stop by the second look (5 pairs) as better;
    no difference, a spread of 1 and a margin of 3: most stop by the second look as equivalent."""
    word, stopped = _rates(2.0, 1.0, 1.0)
    assert ((word == "better") & (stopped <= 5)).mean() > 0.6 and (word == "worse").mean() < 0.01
    word, stopped = _rates(0.0, 1.0, 3.0)
    assert ((word == "equivalent") & (stopped <= 5)).mean() > 0.9


def test_noise_floor_is_the_binomial_standard_error():
    assert stats.binomial_se(0.9, 400) == pytest.approx(math.sqrt(0.9 * 0.1 / 400))


# --- many rows, one question --------------------------------------------------------------------------------------

def test_holm_on_many_families_at_once_is_statsmodels_holm():
    p = np.random.default_rng(1).uniform(0, 0.1, (6, 8))       # statsmodels collects garbage on every call: few
    assert (stats.holm_rows(p) == np.array([stats.holm(row)[0] for row in p])).all()


def test_a_family_holds_false_verdicts_at_5_percent_over_all_rows_fixed_and_auto():
    """No true difference in any row: per-row verdicts give some false better / worse in about 1 - 0.95^m of the
    comparisons; Holm (fixed seeds) and auto at alpha / m per row (--seeds auto) keep it at 5% (within 3 Monte Carlo
    errors)."""
    sweeps = 4000
    mc = 3 * np.sqrt(0.05 * 0.95 / sweeps)
    for rows in (4, 7, 10):
        per_row, _ = stats.simulate_family(rows, n=5, family="none", sweeps=sweeps, seed=rows)
        held, _ = stats.simulate_family(rows, n=5, family="holm", sweeps=sweeps, seed=rows)
        assert per_row > 1 - 0.95 ** rows - mc and held <= 0.05 + mc
    sweeps = 1500
    mc = 3 * np.sqrt(0.05 * 0.95 / sweeps)
    per_row, _ = stats.simulate_family(4, plan=stats.design(10), family="none", sweeps=sweeps, seed=2)
    held, _ = stats.simulate_family(4, plan=stats.design(10), family="holm", sweeps=sweeps, seed=2)
    assert per_row > 0.10 and held <= 0.05 + mc


def test_what_a_family_costs_in_power():
    """One row of four with a true difference of 2 sd: found better less often under the family than alone, but
    still most of the time with 5 pairs; and with more pairs the cost shrinks."""
    true = [2.0, 0, 0, 0]
    alone = stats.simulate_family(4, n=5, true_diffs=true, family="none", seed=3)[1][0]
    family = stats.simulate_family(4, n=5, true_diffs=true, family="holm", seed=3)[1][0]
    assert 0.5 < family < alone
    alone10 = stats.simulate_family(4, n=10, true_diffs=true, family="none", seed=3)[1][0]
    family10 = stats.simulate_family(4, n=10, true_diffs=true, family="holm", seed=3)[1][0]
    assert alone10 - family10 < alone - family


def test_a_difference_the_family_does_not_confirm_keeps_what_equivalence_alone_says():
    ev = judgment.seeds_only([0.01, 0.012, 0.011])
    assert judgment.unconfirmed(judgment.Verdict(1, False, True), ev, 0.01).text == stats.INCONCLUSIVE
    assert judgment.unconfirmed(judgment.Verdict(-1, True, True), ev, 0.01).text == "equivalent (±1)"


def test_wins_by_seed_are_a_count():
    """At a handful of pairs no interval on a share can mean much (3 of 3 gives Wilson [0.44, 1.00]): a count."""
    from toolkit import judgment
    assert judgment.seed_wins([0.01, 0.02, 0.0, -0.01]) == "2 of 4, 1 tie"
    assert judgment.seed_wins([0.01] * 3) == "3 of 3"


def test_best_set_keeps_what_no_value_beats():
    import pandas as pd
    from toolkit import judgment
    rng = np.random.default_rng(0)
    seeds = rng.normal(0, 0.01, 8)                       # what a seed does to every value alike (paired)
    acc = pd.DataFrame({"a": 0.70 + seeds + rng.normal(0, 0.002, 8), "b": 0.80 + seeds + rng.normal(0, 0.002, 8),
                        "c": 0.801 + seeds + rng.normal(0, 0.002, 8)})
    no_runs = {c: pd.Series(dtype=object) for c in acc}   # no predictions: judged by the accuracies
    assert judgment.best_set(acc, no_runs) == ["b", "c"]   # a is beaten; b and c cannot be told apart