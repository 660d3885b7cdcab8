"""toolkit fidelity: the agreement rules and the rank correlation on synthetic verdicts and rows with known
rankings (no training), then one tiny end-to-end run: a proxy of digits against digits."""
import math
from pathlib import Path

import numpy as np
import pytest

from toolkit import judgment
from toolkit.studies.fidelity import AGREE, CONFLICT, FULL_ONLY, PROXY_ONLY, UNDECIDED, agreement, rank_correlation


def _row(direction=0, decided=False):
    """A comparison row's verdict columns, as toolkit/judgment/'s Verdict flattens them."""
    return {"delta_direction": direction, "delta_decided": decided}


@pytest.mark.parametrize("proxy, full, expected", [
    (_row(1, True), _row(1, True), AGREE),                # better (within the margin or not) is better
    (_row(-1, True), _row(-1, True), AGREE),
    (_row(0, True), _row(0, True), AGREE),                # equivalent on both
    (_row(1, True), _row(-1, True), CONFLICT),
    (_row(0, True), _row(1, True), CONFLICT),             # one equivalent, the other better or worse
    (_row(-1, True), _row(0, True), CONFLICT),
    (_row(1, True), _row(), PROXY_ONLY),
    (_row(), _row(-1, True), FULL_ONLY),
    (_row(), _row(), UNDECIDED),
])
def test_agreement_rules(proxy, full, expected):
    assert agreement(judgment.call(proxy), judgment.call(full)) == expected


def test_rank_correlation_of_known_rankings():
    rng = np.random.default_rng(0)
    effects = {"a": -3.0, "b": -1.0, "c": 1.0, "d": 3.0, "e": 5.0, "f": 7.0, "g": 9.0, "h": 11.0}
    proxy = {k: v + rng.normal(0, 0.1, 5) for k, v in effects.items()}
    same = {k: 2 * v + rng.normal(0, 0.1, 5) for k, v in effects.items()}        # another scale, the same order
    reversed_ = {k: -v + rng.normal(0, 0.1, 5) for k, v in effects.items()}
    tau, low, high = rank_correlation(proxy, same)
    assert tau == pytest.approx(1.0) and high == pytest.approx(1.0) and 0.5 < low < 1   # recipes resampled: ties
    assert rank_correlation(proxy, reversed_)[0] == pytest.approx(-1.0)
    noisy = {k: v + rng.normal(0, 5.0, 5) for k, v in effects.items()}           # seeds that swamp the effects
    tau, low, high = rank_correlation(proxy, noisy)
    assert low < tau < high or low <= tau <= high and high - low > 0.5            # an interval that says so
    assert math.isnan(rank_correlation({"a": [1.0]}, {"a": [2.0]})[0])            # fewer than 3 recipes: none
    four = {k: proxy[k] for k in "abcd"}
    tau, low, high = rank_correlation(four, {k: same[k] for k in "abcd"})
    assert tau == pytest.approx(1.0) and math.isnan(low) and math.isnan(high)     # too few recipes to resample


def test_proxy_descriptions_parse_and_refuse():
    from toolkit.studies.proxies import is_description, parse
    from toolkit.errors import ToolkitError
    assert parse("per_class=100,size=80,select=easy") == {"per_class": 100, "size": 80, "select": "easy",
                                                         "classes": None, "seed": 0}
    assert parse("per_class=5,classes=a+b")["classes"] == "a,b"
    assert is_description("per_class=5") and not is_description("digits")
    for bad, why in (("size=80", "per_class"), ("per_class=ten", "whole number"), ("per_class=5,pick=easy", "pick")):
        with pytest.raises(ToolkitError, match=why):
            parse(bad)


def test_fidelity_end_to_end_on_proxies_of_digits(tiny, tmp_path):
    """Two proxies of digits against digits, one seed, one epoch: a proxy folder, and an easy one that fidelity
    builds itself from a ranking run; the table, the figure, the choice, and what the easy proxy kept."""
    import json
    import pandas as pd
    from PIL import Image
    from toolkit import api
    from toolkit.data.datasets import load, toolkit_home
    said = []
    report = api.fidelity(["normalize"], [str(tiny), "per_class=10,select=easy"], "digits", seeds=1, size=16,
                          epochs=1, arch="xresnet18", bs=16, results=tmp_path / "r", quiet=True, log=said.append)
    assert list(report.table["proxy"]) == ["digits-4", "per_class=10,select=easy"]
    for _, row in report.table.iterrows():
        assert (row["recipe"], row["vs"]) == ("normalize", "baseline")
        assert row["proxy verdict"] == row["full verdict"] == "need more seeds" and row["agreement"] == UNDECIDED
    md, csv, png = report.written
    text = md.read_text()
    assert "Which proxy should I use?" in text and len(pd.read_csv(csv)) == 2
    assert Image.open(png).size[0] > 1000                                       # one panel per proxy
    assert list(report.choice["data"]) == ["digits-4", "per_class=10,select=easy", "full"]
    assert report.choice["train images"].iloc[-1] == f"{load('digits').n_train:,}"
    assert any("Cost: the proxy side" in line for line in report.lines)
    assert not any("not recorded as made from" in n for n in report.notes)     # both name digits as their source

    # the easy proxy: made once from a ranking run, which is recorded; the 10 lowest-loss images of each class
    (folder,) = [p for p in (toolkit_home() / "proxies").iterdir() if p.name.endswith("selecteasy")]
    info = json.loads((folder / "proxy.json").read_text())
    assert info["select"] == "easy" and info["ranking"]["images"] == load("digits").n_train
    (ranking,) = (toolkit_home() / "rankings").glob("*.json")
    losses = json.loads(ranking.read_text())["losses"]
    full, easy = load("digits"), load(str(folder))
    for cls in full.classes:
        kept = sorted(losses[full.relative(f)] for f, c in full.items("train") if c == cls)[:10]
        mine = sorted(losses[f"train/{cls}/{Path(f).name}"] for f, c in easy.items("train") if c == cls)
        assert mine == kept
    said.clear()
    api.fidelity(["normalize"], "per_class=10,select=easy", "digits", seeds=1, size=16, epochs=1, arch="xresnet18",
                 bs=16, results=tmp_path / "r", quiet=True, log=said.append)
    assert not any("making the proxy" in m or "ranking run" in m for m in said)   # built once, reused
    with pytest.raises(Exception, match="needs --size"):
        api.fidelity(["normalize"], str(tiny), "digits", results=tmp_path / "r", quiet=True, log=lambda *a: None)
