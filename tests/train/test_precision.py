"""Precision and memory format as recipe fields: resolved like the size, hashed, recorded, never pooled across."""
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import CONTEXT
from toolkit.data.datasets import with_dataset
from toolkit.errors import RecipeError
from toolkit.recipes import registry
from toolkit.recipes.recipe import LEGACY, Recipe
from toolkit.recipes.identity import config_id
from toolkit.recipes.overrides import apply_overrides
from toolkit.judgment.summary import pair_against
from toolkit.judgment.summary import summarize
from toolkit.records import schema
from toolkit.records.table import append_row, load_table
from toolkit.train import checkpoint, precision

BF16 = {"precision": "bf16", "channels_last": True}   # what auto means on a CPU with bf16 instructions


def _baseline(**changes):
    return with_dataset(replace(registry.get("baseline"), dataset="digits", arch="xresnet18", **changes))


def test_auto_resolves_to_a_value_and_pools_with_that_value_set_by_hand():
    auto = precision.decide(_baseline(), BF16)
    assert (auto.precision, auto.channels_last) == ("bf16", True)
    assert config_id(auto) == config_id(precision.decide(_baseline(precision="bf16", channels_last=True), BF16))
    fp32 = precision.decide(_baseline(), LEGACY)
    assert config_id(fp32) != config_id(auto)                       # two rows, never pooled as seeds
    assert config_id(replace(fp32, channels_last=True)) not in (config_id(fp32), config_id(auto))
    with pytest.raises(ValueError, match="resolved"):
        config_id(_baseline())                                      # auto is no value to hash
    assert precision.choice("cpu")["precision"] == ("bf16" if precision.cpu_has_bf16() else "fp32")


def test_fp32_contiguous_hashes_as_every_run_before_these_fields():
    """The id of a run recorded before precision existed is the id of an fp32, contiguous run today."""
    assert config_id(replace(registry.get("baseline"), dataset="digits", size=16, **LEGACY)) == "49d538131212"


def test_fp16_off_cuda_is_a_clear_error_before_anything_trains():
    with pytest.raises(RecipeError, match="fp16.*CUDA"):
        precision.decide(_baseline(precision="fp16"), device="cpu")
    with pytest.raises(RecipeError, match="precision must be one of"):
        apply_overrides(Recipe(), {"precision": "fp8"})
    assert apply_overrides(Recipe(), {"channels_last": "auto"}).channels_last is None


def test_old_rows_keep_pooling_with_new_fp32_runs_and_find_their_fp32_reference(results):
    """A table from before these columns: its rows upgrade to fp32 and pair with fp32 references, while bf16 runs
    of the same settings are rows of their own (upgrade, row_recipe and the references migration derives)."""
    fp32, bf16 = (precision.decide(_baseline(), auto) for auto in (LEGACY, BF16))
    normal = precision.decide(with_dataset(replace(registry.get("normalize"), dataset="digits", arch="xresnet18")), LEGACY)
    for i, r in enumerate([fp32, normal]):
        append_row(results, schema.result_row(r, CONTEXT, Path(f"/nowhere/old{i}"), {"accuracy": 0.9}, LEGACY))
    old = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False)
    old.drop(columns=["precision", "channels_last", "auto", *schema.MEANING, "dataset_id"]).to_csv(results / "runs.csv",
                                                                                       index=False)
    append_row(results, schema.result_row(replace(fp32, seed=43), CONTEXT, Path("/nowhere/new"),
                                             {"accuracy": 0.92}, BF16 | {"precision": "fp32", "channels_last": False}))
    append_row(results, schema.result_row(bf16, CONTEXT, Path("/nowhere/bf16"), {"accuracy": 0.91}, BF16))
    table = load_table(results)                                # upgraded in place by the appends
    assert table["precision"].tolist() == ["fp32", "fp32", "fp32", "bf16"]
    assert [schema.row_recipe(row) for _, row in table.iloc[:2].iterrows()] == [fp32, normal]
    assert table["config_id"].tolist()[:3] == [config_id(fp32), config_id(normal), config_id(fp32)]
    notes = pair_against(table)
    assert notes["reference_config_id"].iloc[1] == config_id(fp32)   # the old normalize row: its fp32 baseline
    summary = summarize(notes, notes).set_index("config_id")
    assert summary.loc[config_id(fp32), "n"] == 2 and summary.loc[config_id(bf16), "n"] == 1
    assert summary.loc[config_id(normal), "delta_pairs"] == 1           # paired with the old fp32 seed 42


def test_the_gradient_scaler_goes_into_the_checkpoint_and_comes_back(tiny):
    from toolkit import api
    learn = api.learner("baseline", dataset=str(tiny), size=16, bs=16, arch="xresnet18", progress="none")
    learn.create_opt()
    learn.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    learn.scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    learn.scaler.update(512.0)
    state = checkpoint.capture(learn, {"stage": 0, "epoch": 1, "epochs_done": 1}, {})
    assert state["scaler"]["scale"] == 512.0
    learn.scaler = torch.amp.GradScaler("cpu", init_scale=65536.0)     # what MixedPrecision makes for a new fit
    checkpoint.restore_scaler(learn, state)
    assert learn.scaler.get_scale() == 512.0


def test_a_bf16_run_and_an_fp32_run_of_the_same_settings_are_two_rows(tiny, results, capsys):
    from tests.test_cli import launch
    for p in ("bf16", "fp32"):
        code, out, err = launch(["run", "baseline", "--dataset", tiny, "--size", 16, "--epochs", 1, "--set", "bs=16",
                                 "--set", "arch=xresnet18", "--set", f"precision={p}", "--results", results,
                                 "--quiet"], capsys)
        assert code == 0, err
    table = load_table(results)
    assert table["precision"].tolist() == ["bf16", "fp32"] and table["config_id"].nunique() == 2
    assert table["accuracy"].between(0, 1).all() and (table["epochs_done"] == 1).all()
    code, out, err = launch(["compare", "--results", results], capsys)
    header = next(line for line in out.splitlines() if line.startswith("| experiment"))
    assert code == 0 and "precision" in header and "| bf16 " in out and "| fp32 " in out
