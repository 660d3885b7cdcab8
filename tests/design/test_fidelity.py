"""toolkit fidelity: the agreement rules and the rank correlation on synthetic verdicts and rows with known
rankings (no training), then one tiny end-to-end run: a proxy of digits against digits."""
import math

import numpy as np
import pytest

from toolkit.design.fidelity import AGREE, CONFLICT, FULL_ONLY, PROXY_ONLY, UNDECIDED, agreement, rank_correlation


@pytest.mark.parametrize("proxy, full, expected", [
    ("better", "better", AGREE),
    ("better, within ±1", "better", AGREE),              # within the margin counts as better
    ("worse", "worse, within ±1", AGREE),
    ("equivalent (±1)", "equivalent (±1)", AGREE),
    ("better", "worse", CONFLICT),
    ("equivalent (±1)", "better", CONFLICT),             # one equivalent, the other better or worse
    ("worse", "equivalent (±1)", CONFLICT),
    ("better", "inconclusive", PROXY_ONLY),
    ("need more seeds", "worse", FULL_ONLY),
    ("inconclusive", "need more seeds", UNDECIDED),
])
def test_agreement_rules(proxy, full, expected):
    assert agreement(proxy, full) == expected


def test_rank_correlation_of_known_rankings():
    rng = np.random.default_rng(0)
    effects = {"a": -3.0, "b": -1.0, "c": 1.0, "d": 3.0}
    proxy = {k: v + rng.normal(0, 0.1, 5) for k, v in effects.items()}
    same = {k: 2 * v + rng.normal(0, 0.1, 5) for k, v in effects.items()}        # another scale, the same order
    reversed_ = {k: -v + rng.normal(0, 0.1, 5) for k, v in effects.items()}
    tau, low, high = rank_correlation(proxy, same)
    assert tau == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    assert rank_correlation(proxy, reversed_)[0] == pytest.approx(-1.0)
    noisy = {k: v + rng.normal(0, 5.0, 5) for k, v in effects.items()}           # seeds that swamp the effects
    tau, low, high = rank_correlation(proxy, noisy)
    assert low < tau < high or low <= tau <= high and high - low > 0.5            # an interval that says so
    assert math.isnan(rank_correlation({"a": [1.0]}, {"a": [2.0]})[0])            # fewer than 3 recipes: none


def test_fidelity_end_to_end_on_a_proxy_of_digits(tiny, tmp_path):
    import pandas as pd
    from PIL import Image
    from toolkit import api
    report = api.fidelity(["normalize"], str(tiny), "digits", seeds=1, size=16, epochs=1, arch="xresnet18", bs=16,
                          results=tmp_path / "r", quiet=True, log=lambda *a: None)
    row = report.table.iloc[0]
    assert (row["recipe"], row["vs"]) == ("normalize", "baseline")
    assert row["proxy verdict"] == row["full verdict"] == "need more seeds" and row["agreement"] == UNDECIDED
    md, csv, png = report.written
    assert md.read_text().count("normalize") >= 1 and len(pd.read_csv(csv)) == 1
    assert Image.open(png).size[0] > 400
    assert any("Cost: the proxy side" in line for line in report.lines)
    assert not any("not recorded as made from" in n for n in report.notes)     # tiny's proxy.json names digits
    with pytest.raises(Exception, match="needs --size"):
        api.fidelity(["normalize"], str(tiny), "digits", results=tmp_path / "r", quiet=True, log=lambda *a: None)
