"""The results table: one header, the whole recipe per row, config ids, and older tables upgraded in place."""
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from toolkit.recipes import registry
from toolkit.sweep import runs
from tests.conftest import resolved as resolve
from toolkit.recipes.recipe import LEGACY, config_id

OLD_COLUMNS = ["run_id", "experiment", "dataset", "size", "epochs", "arch", "bs", "lr", "seed", "accuracy",
               "valid_loss", "accuracy_tta", "tta_seconds", "wall_seconds", "images_per_second", "finished_at",
               "run_dir"]   # the table before config ids (and before the loader column)


def _recipe(name="baseline", **changes):
    return resolve(replace(registry.get(name), dataset="digits", arch="xresnet18", **changes))


def test_rows_carry_config_id_context_and_the_whole_recipe(results):
    r = _recipe("progressive", epochs=4)
    runs.append_row(results, runs.result_row(r, {"epochs": "4"}, Path("/nowhere/a"), {"accuracy": 0.9}))
    runs.append_row(results, runs.result_row(replace(r, seed=43), {"epochs": "4"}, Path("/nowhere/b"),
                                             {"accuracy": 0.8}))
    assert (results / "runs.csv").read_text().count("run_id") == 1
    table = runs.load_table(results)
    assert list(table.columns) == runs.COLUMNS and table["run_id"].tolist() == ["a", "b"]
    assert (table["config_id"] == config_id(r)).all() and table["seed"].tolist() == [42, 43]
    assert runs.row_recipe(table.iloc[0]) == r and runs.row_recipe(table.iloc[1]) == replace(r, seed=43)
    assert json.loads(table["context"].iloc[0]) == {"epochs": "4"} and table["accuracy"].tolist() == [0.9, 0.8]


def test_run_folders_recorded_relative_to_another_folder_are_found_from_here(results, monkeypatch):
    (results / "runs" / "r1").mkdir(parents=True)
    runs.append_row(results, runs.result_row(_recipe(), {}, Path("elsewhere/runs/r1"), {"accuracy": 0.9}))
    runs.append_row(results, runs.result_row(_recipe(), {}, Path("elsewhere/runs/gone"), {"accuracy": 0.8}))
    monkeypatch.chdir(results.parent)
    assert runs.load_table(results)["run_dir"].tolist() == [str(results / "runs" / "r1"), "elsewhere/runs/gone"]
    assert "elsewhere/runs/r1" in (results / "runs.csv").read_text()   # the file itself is left as it was


def test_a_table_from_before_config_ids_is_upgraded_in_place(results, tmp_path):
    results.mkdir(parents=True)
    old = [dict(run_id="x", experiment="mixup", dataset="digits", size=16, epochs=4, arch="xresnet18", bs=64,
                lr=3e-3, seed=42, accuracy=0.95, run_dir=str(tmp_path / "gone")),
           dict(run_id="y", experiment="baseline", dataset="digits", size=16, epochs=4, arch="xresnet18", bs=64,
                lr=1e-2, seed=42, accuracy=0.97, run_dir=str(tmp_path / "gone"))]
    pd.DataFrame(old, columns=OLD_COLUMNS).to_csv(results / "runs.csv", index=False)
    before = runs.load_table(results)                     # read: upgraded in memory, the file untouched
    assert list(before.columns) == runs.COLUMNS and "experiment" in (results / "runs.csv").read_text()
    new = _recipe("normalize", epochs=4)
    runs.append_row(results, runs.result_row(new, {}, Path("/nowhere/z"), {"accuracy": 0.96}))
    header = (results / "runs.csv").read_text().splitlines()[0]
    assert header == ",".join(runs.COLUMNS)               # rewritten with today's columns
    t = runs.load_table(results)
    assert t["run_id"].tolist() == ["x", "y", "z"] and t["accuracy"].tolist() == pytest.approx([0.95, 0.97, 0.96])
    mixup = runs.row_recipe(t.iloc[0])
    assert mixup.parent == "normalize" and mixup.mixup == 0.4 and mixup.loader == "folder"  # old runs read folders
    assert json.loads(t["context"].iloc[1]) == {"arch": "xresnet18", "dataset": "digits", "epochs": "4",
                                                "loader": "folder", "lr": "0.01", "size": "16"}
    old_run = _recipe("baseline", epochs=4, lr=1e-2, loader="folder", **LEGACY)   # they trained in fp32, too
    assert t["config_id"].iloc[1] == config_id(old_run) and runs.row_recipe(t.iloc[1]).precision == "fp32"
    assert not list(results.glob(".*.tmp"))


def test_a_table_missing_a_newer_field_gets_its_default(results):
    r = _recipe()
    runs.append_row(results, runs.result_row(r, {}, Path("/nowhere/a"), {"accuracy": 0.9}))
    t = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False).drop(columns=["autoaug_add"])
    t.to_csv(results / "runs.csv", index=False)
    runs.append_row(results, runs.result_row(replace(r, seed=43), {}, Path("/nowhere/b"), {"accuracy": 0.8}))
    t = runs.load_table(results)
    assert list(t.columns) == runs.COLUMNS and (t["config_id"] == config_id(r)).all()
    assert runs.row_recipe(t.iloc[0]) == r
