"""Comparison tables from fixed numbers: pooling, paired differences, intervals, verdicts, files and plots."""
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import numpy as np
import pytest
from scipy import stats as sps

from tests.conftest import resolved as resolve
from toolkit.errors import ToolkitError
from toolkit.recipes import registry
from toolkit import api as toolkit_api
from toolkit.report import compare
from toolkit.judgment import summary as judged
from toolkit.report import tables as report
from toolkit.records import schema
from toolkit.train import precision
from toolkit.records.table import append_row, load_table
from toolkit.sweep.plan import variant

from conftest import CONTEXT, add_rows as add

def summary_of(results, against=None):
    table = judged.pair_against(load_table(results), against)
    return judged.summarize(table, table).set_index("label")


def test_paired_analysis_is_used_where_it_disagrees_with_the_unpaired_one(results):
    ref, treat = [0.70, 0.80, 0.90], [0.711, 0.812, 0.910]  # seeds differ a lot; every pair moves up by ~1 point
    add(results, "normalize", ref)
    add(results, "mixup", treat)
    s = summary_of(results).loc["mixup"]
    unpaired = sps.ttest_ind(treat, ref).confidence_interval(0.95)
    assert unpaired.low < 0 < unpaired.high                     # unpaired: no clear difference
    # rows without predictions: the paired t interval, its spread floored at one of the 359 validation images
    half = sps.t.ppf(0.975, 2) * max(np.std(np.subtract(treat, ref), ddof=1), 1 / 359) / np.sqrt(3)
    assert s["delta_low"] == pytest.approx(0.011 - half) and s["delta_high"] == pytest.approx(0.011 + half)
    assert s["delta_basis"] == "accuracies"
    assert s["delta_mean"] == pytest.approx(0.011) and s["delta_pairs"] == 3
    assert s["reference"] == "normalize" and s["delta_verdict"] == "better"


def test_seeds_pool_only_within_a_config_and_settings_show_in_the_label(results):
    add(results, "baseline", [0.70, 0.72, 0.74])
    add(results, "baseline", [0.80], lr=1e-2)                  # another setting: its own row, not a fourth seed
    s = summary_of(results)
    assert list(s.index) == ["baseline", "baseline [lr=0.01]"]
    assert s.loc["baseline", "n"] == 3 and s.loc["baseline [lr=0.01]", "n"] == 1
    assert s.loc["baseline", "accuracy_mean"] == pytest.approx(0.72)
    assert math.isnan(s.loc["baseline [lr=0.01]", "accuracy_std"])   # one seed: no spread is claimed
    assert s.loc["baseline", "delta_verdict"] == judged.SELF        # the root is its own reference
    low, high = sps.t.interval(0.95, 2, loc=0.72, scale=sps.sem([0.70, 0.72, 0.74]))
    assert (s.loc["baseline", "accuracy_low"], s.loc["baseline", "accuracy_high"]) == (pytest.approx(low),
                                                                                       pytest.approx(high))
    md = report.to_markdown(s.reset_index())
    assert "| baseline [lr=0.01] " in md and "80.0 ± 0.0" not in md


def test_the_reference_is_the_parent_and_against_overrides_it(results):
    add(results, "baseline", [0.60, 0.62, 0.64])
    add(results, "normalize", [0.70, 0.70, 0.70])
    add(results, "mixup", [0.71, 0.72, 0.73])
    s = summary_of(results)
    assert s.loc["mixup", "reference"] == "normalize" and s.loc["mixup", "delta_mean"] == pytest.approx(0.02)
    assert s.loc["normalize", "reference"] == "baseline"
    s = summary_of(results, against="baseline")
    assert s.loc["mixup", "reference"] == "baseline" and s.loc["mixup", "delta_mean"] == pytest.approx(0.10)
    assert s.loc["mixup", "delta_verdict"] == "better"


def test_too_few_pairs_and_equal_differences_have_defined_answers(results):
    add(results, "normalize", [0.70, 0.80, 0.90, 0.60])
    add(results, "label_smoothing", [0.72, 0.82])              # two pairs: a difference, but no verdict
    add(results, "tta", [0.70, 0.80, 0.90], tta=[0.72, 0.82, 0.92])  # the same model, evaluated twice
    s = summary_of(results)
    assert s.loc["label_smoothing", "delta_pairs"] == 2 and s.loc["label_smoothing", "delta_verdict"] == "need more seeds"
    t = s.loc["tta"]
    assert t["delta_mean"] == 0 and t["delta_verdict"] == "same models" and math.isnan(t["delta_p"])   # not tested
    assert t["tta_vs"] == "plain" and t["delta_tta_mean"] == pytest.approx(0.02)    # what TTA buys
    half = sps.t.ppf(0.975, 2) * (1 / 359) / np.sqrt(3)   # no spread but the floor of one image
    assert t["delta_tta_low"] == pytest.approx(0.02 - half) and t["delta_tta_verdict"] == "better"
    md = report.to_markdown(s.reset_index())
    assert "trains the very models of its reference" in md and "what it buys" in md
    assert "nan" not in md.lower()


def test_tta_is_compared_with_the_references_tta_when_it_has_one(results):
    add(results, "tta", [0.70, 0.80, 0.90], tta=[0.72, 0.82, 0.92])
    more = variant(resolve(replace(registry.get("tta"), arch="xresnet18", dataset="digits")), {"tta_n": "8"})
    auto = precision.choice()
    for i, (acc, tta) in enumerate(zip([0.70, 0.80, 0.90], [0.73, 0.84, 0.93])):
        r = replace(more, seed=42 + i)
        append_row(results, schema.result_row(r, CONTEXT, Path(f"/nowhere/v{i}"), {"accuracy": acc, "accuracy_tta": tta,
                                              "n_valid": 359}, auto, schema.meaning(r, CONTEXT, "recipe", auto)))
    s = summary_of(results).loc["tta [tta_n=8]"]
    assert s["reference"] == "tta" and s["tta_vs"] == "TTA (fastai)"
    assert s["delta_tta_mean"] == pytest.approx((0.01 + 0.02 + 0.01) / 3)


def test_markdown_files_and_plot(results, tmp_path):
    add(results, "normalize", [0.70, 0.80, 0.90])
    add(results, "mixup", [0.69, 0.81, 0.88])
    table = judged.pair_against(load_table(results))
    assert "compared at once" not in report.to_markdown(judged.summarize(table, table))  # one difference only
    add(results, "label_smoothing", [0.71, 0.80, 0.91])
    table = judged.pair_against(load_table(results))
    summary = judged.summarize(table, table)
    md = report.to_markdown(summary)
    assert md.startswith("digits, 16 px, 5 epochs, xresnet18, packed loader")
    assert "| mixup " in md and "| inconclusive (~44)" in md and "[-" in md
    assert "359 validation images has a binomial standard error of 2.1 points" in md
    assert "The margin ±1 is smaller than that: unless both models err on much the same images, equivalence at ±1 is hard to reach here" in md
    assert "not corrected for the 2 rows compared at once" in md
    outs = compare.write_comparison(table, summary, tmp_path / "cmp")
    assert [p.suffix for p in outs] == [".md", ".csv", ".png"] and all(p.stat().st_size > 0 for p in outs)
    assert outs[2].read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(outs[1])["label"].tolist() == ["normalize", "mixup", "label_smoothing"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_compare_keeps_the_two_budgets_apart_and_can_show_one(results):
    add(results, "progressive", [0.70, 0.80, 0.90])
    add(results, "progressive", [0.75, 0.85, 0.95], budget="pixels", budget_pixels=1280)
    summary = toolkit_api.compare(["progressive"], results, out=results / "both").summary
    assert sorted(summary["budget"]) == ["epochs", "pixels"] and summary["n"].tolist() == [3, 3]
    summary = toolkit_api.compare(["progressive"], results, budget="pixels", out=results / "pixels").summary
    assert summary["budget"].tolist() == ["pixels"] and summary["accuracy_mean"].iloc[0] == pytest.approx(0.85)
    with pytest.raises(ToolkitError, match="budget"):
        toolkit_api.compare(["normalize"], results, budget="pixels")


def test_each_evaluation_is_compared_with_the_same_models_and_with_the_reference(results, tmp_path):
    add(results, "normalize", [0.70, 0.80, 0.90])
    add(results, "tta_all", [0.70, 0.80, 0.90], evals={"flip": [0.72, 0.82, 0.92], "hires": [0.69, 0.80, 0.88]})
    table = judged.pair_against(load_table(results))
    summary = judged.summarize(table, table)
    s = summary.set_index("label").loc["tta_all"]
    assert s["accuracy_flip_mean"] == pytest.approx(0.82) and s["flip_seconds"] == 2.0
    assert s["gain_flip_mean"] == pytest.approx(0.02) and s["gain_flip_verdict"] == "better"   # what it buys
    assert s["flip_vs"] == "plain" and s["delta_flip_mean"] == pytest.approx(0.02)  # the reference has no flip
    assert s["gain_hires_mean"] == pytest.approx(-0.01) and s["gain_hires_pairs"] == 3
    assert pd.isna(s["accuracy_ema_mean"]) and pd.isna(s["accuracy_crops_mean"])
    md = report.to_markdown(summary)
    assert "Evaluations of the same models (no extra training)" in md and "| TTA flip " in md
    assert "+2.0 [+1.3, +2.7]" in md and "what it buys" in md and "TTA crops" not in md   # floored at one image
    outs = compare.write_comparison(table, summary, tmp_path / "cmp")
    assert outs[2].read_bytes()[:4] == b"\x89PNG"


def test_the_frontier_joins_the_points_no_other_beats_on_both():
    from toolkit.report.frontier import on_frontier
    p = pd.DataFrame({"pixels": [1, 1, 2, 3, 3], "mean": [0.5, 0.6, 0.6, 0.7, 0.65]})
    # (1, .5) is beaten by (1, .6) at the same pixels; (2, .6) by (1, .6) at fewer; (3, .65) by (3, .7)
    assert on_frontier(p, "pixels").tolist() == [False, True, False, True, False]


COMPARED = ["label", "reference", "n", "accuracy_mean", "delta_pairs", "delta_mean", "delta_low", "delta_high",
            "delta_verdict"]


def test_a_table_compares_as_recorded_after_a_parent_is_edited_and_an_experiment_deleted(results, monkeypatch):
    """Rows pair by what they recorded when planned: today's registry is never asked again."""
    add(results, "normalize", [0.70, 0.80, 0.90], role="reference")
    add(results, "mixup", [0.72, 0.825, 0.921])
    before = summary_of(results).reset_index()[COMPARED]
    assert before.set_index("label").loc["mixup", "delta_verdict"] == "better"
    with monkeypatch.context() as m:   # normalize's definition edited: its config id today would differ
        m.setitem(registry._experiments, "normalize", replace(registry.get("normalize"), lr=1e-2, normalize="none"))
        pd.testing.assert_frame_equal(summary_of(results).reset_index()[COMPARED], before)
    with monkeypatch.context() as m:   # both experiments deleted
        m.delitem(registry._experiments, "mixup")
        m.delitem(registry._experiments, "normalize")
        pd.testing.assert_frame_equal(summary_of(results).reset_index()[COMPARED], before)


def test_a_row_that_is_only_another_rows_reference_says_so(results):
    """normalize ran only as mixup's reference, and its own reference (the baseline) never ran: `(reference)`, not a
    failure; asked for by name without its reference, it says what is missing."""
    add(results, "normalize", [0.70, 0.80, 0.90], role="reference")
    add(results, "mixup", [0.72, 0.825, 0.921])
    s = summary_of(results)
    assert s.loc["normalize", "delta_verdict"] == "(reference)" and s.loc["normalize", "reference"] == ""
    add(results, "normalize", [0.75], seed0=50)    # asked for by name, once
    s = summary_of(results)
    assert s.loc["normalize", "delta_verdict"] == "no runs of the reference"
    assert s.loc["normalize", "reference"] == "baseline"


def test_against_pairs_with_the_named_rows_of_the_same_context(results):
    add(results, "baseline", [0.60, 0.62, 0.64])
    add(results, "mixup", [0.71, 0.72, 0.73])
    add(results, "mixup", [0.70, 0.71], lr=1e-2)     # another context: no baseline rows of its own
    s = summary_of(results, against="baseline")
    assert s.loc["mixup", "delta_mean"] == pytest.approx(0.10) and s.loc["mixup", "reference"] == "baseline"
    assert s.loc["mixup [lr=0.01]", "delta_verdict"] == "no runs of the reference"
    with pytest.raises(ToolkitError, match="No finished runs of 'label_smoothing' in the results table"):
        summary_of(results, against="label_smoothing")
