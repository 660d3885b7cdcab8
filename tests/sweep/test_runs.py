"""The results table: one header, the whole recipe per row, config ids, and older tables upgraded in place."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from toolkit.recipes import registry
from toolkit.records import schema
from toolkit.records.table import append_row, load_table
from tests.conftest import resolved as resolve
from toolkit.recipes.recipe import LEGACY
from toolkit.recipes.identity import config_id
from toolkit.train import precision

OLD_COLUMNS = ["run_id", "experiment", "dataset", "size", "epochs", "arch", "bs", "lr", "seed", "accuracy",
               "valid_loss", "accuracy_tta", "tta_seconds", "wall_seconds", "images_per_second", "finished_at",
               "run_dir"]   # the table before config ids (and before the loader column)


def _recipe(name="baseline", **changes):
    return resolve(replace(registry.get(name), dataset="digits", arch="xresnet18", **changes))


def test_rows_carry_config_id_context_and_the_whole_recipe(results):
    r = _recipe("progressive", epochs=4)
    append_row(results, schema.result_row(r, {"epochs": "4"}, Path("/nowhere/a"), {"accuracy": 0.9}))
    append_row(results, schema.result_row(replace(r, seed=43), {"epochs": "4"}, Path("/nowhere/b"),
                                             {"accuracy": 0.8}))
    assert (results / "runs.csv").read_text().count("run_id") == 1
    table = load_table(results)
    assert list(table.columns) == schema.COLUMNS and table["run_id"].tolist() == ["a", "b"]
    assert (table["config_id"] == config_id(r)).all() and table["seed"].tolist() == [42, 43]
    assert schema.row_recipe(table.iloc[0]) == r and schema.row_recipe(table.iloc[1]) == replace(r, seed=43)
    assert json.loads(table["context"].iloc[0]) == {"epochs": "4"} and table["accuracy"].tolist() == [0.9, 0.8]


def test_run_folders_recorded_relative_to_another_folder_are_found_from_here(results, monkeypatch):
    (results / "runs" / "r1").mkdir(parents=True)
    append_row(results, schema.result_row(_recipe(), {}, Path("elsewhere/runs/r1"), {"accuracy": 0.9}))
    append_row(results, schema.result_row(_recipe(), {}, Path("elsewhere/runs/gone"), {"accuracy": 0.8}))
    monkeypatch.chdir(results.parent)
    assert load_table(results)["run_dir"].tolist() == [str(results / "runs" / "r1"), "elsewhere/runs/gone"]
    assert "elsewhere/runs/r1" in (results / "runs.csv").read_text()   # the file itself is left as it was


def test_a_table_from_before_config_ids_is_upgraded_in_place(results, tmp_path):
    results.mkdir(parents=True)
    old = [dict(run_id="x", experiment="mixup", dataset="digits", size=16, epochs=4, arch="xresnet18", bs=64,
                lr=3e-3, seed=42, accuracy=0.95, run_dir=str(tmp_path / "gone")),
           dict(run_id="y", experiment="baseline", dataset="digits", size=16, epochs=4, arch="xresnet18", bs=64,
                lr=1e-2, seed=42, accuracy=0.97, run_dir=str(tmp_path / "gone"))]
    pd.DataFrame(old, columns=OLD_COLUMNS).to_csv(results / "runs.csv", index=False)
    before = load_table(results)                     # read: upgraded in memory, the file untouched
    assert list(before.columns) == schema.COLUMNS and "experiment" in (results / "runs.csv").read_text()
    new = _recipe("normalize", epochs=4)
    append_row(results, schema.result_row(new, {}, Path("/nowhere/z"), {"accuracy": 0.96}))
    header = (results / "runs.csv").read_text().splitlines()[0]
    assert header == ",".join(schema.COLUMNS)               # rewritten with today's columns
    t = load_table(results)
    assert t["run_id"].tolist() == ["x", "y", "z"] and t["accuracy"].tolist() == pytest.approx([0.95, 0.97, 0.96])
    mixup = schema.row_recipe(t.iloc[0])
    assert mixup.parent == "normalize" and mixup.mixup == 0.4 and mixup.loader == "folder"  # old runs read folders
    assert json.loads(t["context"].iloc[1]) == {"arch": "xresnet18", "dataset": "digits", "epochs": "4",
                                                "loader": "folder", "lr": "0.01", "size": "16"}
    old_run = _recipe("baseline", epochs=4, lr=1e-2, loader="folder", **LEGACY)   # they trained in fp32, too
    assert t["config_id"].iloc[1] == config_id(old_run) and schema.row_recipe(t.iloc[1]).precision == "fp32"
    assert not list(results.glob(".*.tmp"))


def test_a_table_missing_a_newer_field_gets_its_default(results):
    r = _recipe()
    append_row(results, schema.result_row(r, {}, Path("/nowhere/a"), {"accuracy": 0.9}))
    t = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False).drop(columns=["autoaug_add"])
    t.to_csv(results / "runs.csv", index=False)
    append_row(results, schema.result_row(replace(r, seed=43), {}, Path("/nowhere/b"), {"accuracy": 0.8}))
    t = load_table(results)
    assert list(t.columns) == schema.COLUMNS and (t["config_id"] == config_id(r)).all()
    assert schema.row_recipe(t.iloc[0]) == r


def test_a_table_from_before_rows_said_what_they_mean_gets_it_once(results, monkeypatch):
    """The previous schema (no label, role, reference or dataset identity): the cells are derived as a run planned
    today would record them, written back with the next append, and never derived again."""
    mixup, normalize = _recipe("mixup"), _recipe("normalize")
    context, auto = {"arch": "xresnet18", "dataset": "digits"}, precision.choice()
    for i, r in enumerate([normalize, mixup]):
        append_row(results, schema.result_row(r, context, Path(f"/nowhere/{i}"), {"accuracy": 0.9}, auto))
    old = pd.read_csv(results / "runs.csv", dtype=str, keep_default_na=False)
    old.drop(columns=[*schema.MEANING, "dataset_id"]).to_csv(results / "runs.csv", index=False)
    planned = schema.meaning(mixup, context, "recipe", auto)
    table = load_table(results)
    assert table.iloc[1][schema.MEANING].to_dict() == planned
    assert planned["label"] == "mixup" and planned["reference_config_id"] == config_id(normalize)
    assert table["config_id"].tolist() == [config_id(normalize), config_id(mixup)]      # ids unchanged
    append_row(results, schema.result_row(replace(mixup, seed=43), context, Path("/nowhere/2"), {"accuracy": 0.8},
                                          auto, planned))
    assert list(pd.read_csv(results / "runs.csv").columns) == schema.COLUMNS           # written back
    monkeypatch.delitem(registry._experiments, "mixup_ls")   # the registry no longer knows mixup: nothing changes
    monkeypatch.delitem(registry._experiments, "mixup")
    assert load_table(results).iloc[1][schema.MEANING].to_dict() == planned


def test_an_older_table_is_read_with_every_named_experiment_known():
    """What an older row means is derived from the named experiments: all of them, even in a process that imported
    only the records (a fresh interpreter, since this session registered them already)."""
    script = ("from toolkit.records import migrate; from toolkit.recipes import registry; import pandas as pd; "
              "known = 'mixup' in registry._experiments; migrate.upgrade(pd.DataFrame({'config_id': []})); "
              "print(known, 'mixup' in registry._experiments)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "True"], out.stderr
