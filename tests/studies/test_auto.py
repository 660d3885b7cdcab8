"""--seeds auto on a results table that already holds every seed: the rounds, who stops where, and what each round
runs, without training (every job is found finished in the table)."""
import pytest
import numpy as np

from toolkit import api
from toolkit.records.table import TABLE, load_table

from conftest import CONTEXT, add_rows


def test_rounds_stop_decided_rows_and_run_only_what_undecided_rows_need(results):
    rng = np.random.default_rng(0)
    ref = 0.80 + rng.normal(0, 0.03, 10)
    add_rows(results, "baseline", ref - 0.05 + np.random.default_rng(1).normal(0, 0.003, 10))
    add_rows(results, "normalize", ref)                                         # a row, and the others' reference
    add_rows(results, "mixup", ref + 0.06 + rng.normal(0, 0.003, 10))        # clearly better from 3 pairs
    add_rows(results, "label_smoothing", ref + rng.normal(0, 0.004, 10))     # within ±1 once enough pairs say so
    before = len(load_table(results))
    said = []
    done = api.sweep_and_compare(["normalize", "mixup", "label_smoothing"], dict(CONTEXT), seeds="auto", results=results,
                                 quiet=True, log=said.append)
    assert len(load_table(results)) == before                            # nothing ran: all were in the table
    s = done.summary.set_index("name")
    assert s.loc["mixup", "delta_verdict"] == "better" and s.loc["mixup", "stopped"] == "look 1/4 (3 pairs), decided"
    assert s.loc["mixup", "seeds"] == "42,43,44" and s.loc["mixup", "n"] == 3
    ls = s.loc["label_smoothing"]
    assert ls["delta_verdict"] == "equivalent (±1)" and ls["delta_pairs"] in (5, 7, 10)
    assert ls["stopped"].endswith("decided")
    assert s.loc["normalize", "n"] == 3 and s.loc["normalize", "stopped"] == "look 1/4 (3 pairs), decided"
    rounds = [m for m in said if m.startswith("--seeds auto, look")]
    assert rounds[0] == "--seeds auto, look 1/4: 3 seeds for 3 row(s)"
    assert rounds[1] == "--seeds auto, look 2/4: 5 seeds for 1 row(s) (label_smoothing)"
    seeds_planned = {(j.recipe.name, j.recipe.seed) for j in done.sweep.jobs}
    assert ("mixup", 45) not in seeds_planned and ("label_smoothing", 45) in seeds_planned
    assert ("normalize", 45) in seeds_planned                                 # the reference, for the open row only
    md = done.markdown
    assert "stopped at" in md and "Pocock-type boundary" in md and "margin of equivalence of ±1 points" in md


def test_bad_auto_settings_are_clear_errors_before_anything_runs(results):
    import pytest
    from toolkit.errors import ToolkitError
    with pytest.raises(ToolkitError, match="--max-seeds must be a whole number of at least 3"):
        api.sweep_and_compare(["mixup"], dict(CONTEXT), seeds="auto", max_seeds=2, results=results, quiet=True)
    with pytest.raises(ToolkitError, match="--max-seeds applies to --seeds auto only"):
        api.sweep_and_compare(["mixup"], dict(CONTEXT), seeds=3, max_seeds=5, results=results, quiet=True)
    with pytest.raises(ToolkitError, match="--rerun and --seeds auto do not go together"):
        api.sweep_and_compare(["mixup"], dict(CONTEXT), seeds="auto", rerun=True, results=results, quiet=True)
    with pytest.raises(ToolkitError, match="--margin is a number of accuracy points"):
        api.sweep_and_compare(["mixup"], dict(CONTEXT), seeds=3, margin=-1, results=results, quiet=True)
    assert not (results / TABLE).exists()


def test_each_look_runs_the_planned_variant_with_its_treatment_over_the_context(monkeypatch, results):
    """`--set precision=fp32 --vary precision=bf16 --seeds auto`: every look runs the bf16 variant against the
    fp32 reference (the context must not be applied over the variant again): the jobs of the plan, never re-planned."""
    from toolkit.sweep import auto
    from toolkit.sweep import plan
    from toolkit.sweep.options import Options
    asked = []

    def fake_run(jobs, options, log, label):
        asked.append(jobs)
        raise KeyboardInterrupt
    monkeypatch.setattr(auto.execute, "run_jobs", fake_run)
    ctx = plan.context_of({"precision": "fp32", **CONTEXT})
    planned = plan.Plan.of(["baseline"], ctx, {"precision": "bf16"})
    monkeypatch.setattr(plan.Plan, "of", lambda *a, **k: pytest.fail("planned again"))
    with pytest.raises(KeyboardInterrupt):
        auto.run_auto(planned, options=Options(results=str(results)), log=lambda *a: None)
    jobs = {(j.role, j.recipe.name): j.recipe.precision for j in asked[0]}
    assert jobs == {("reference", "baseline"): "fp32", ("recipe", "baseline [precision=bf16]"): "bf16"}
