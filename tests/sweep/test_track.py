"""--track: TensorBoard, W&B (offline) and MLflow (the test run's one SQLite store) get what the run folder has,
and tracking changes nothing in training. One tiny run, tracked by all three, next to the same run untracked."""
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from toolkit.cli import main
from toolkit.records import artifacts
from toolkit.records.table import load_table
from toolkit.sweep import track

from trackers import check_mlflow, check_tensorboard, scalars

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

def args(tiny, results, *more):
    return ["run", "baseline", "--dataset", str(tiny), "--size", "32", "--epochs", "2", "--set", "arch=xresnet18",
            "--set", "bs=16", "--no-reference", "--quiet", "--save-model", "--results", str(results), *more]


@pytest.fixture(scope="module")
def pair(tiny, tmp_path_factory):
    """(untracked run folder, tracked run folder, tracked results): the same 2-epoch run, bit for bit."""
    root = tmp_path_factory.mktemp("track")
    assert main(args(tiny, root / "plain")) == 0
    assert main(args(tiny, root / "tracked", "--track", "tensorboard", "--track", "mlflow", "--track", "wandb")) == 0
    (plain,), (tracked,) = [list((root / r / "runs").iterdir()) for r in ("plain", "tracked")]
    return plain, tracked, root / "tracked"


def test_a_tracked_run_is_bit_equal_to_an_untracked_one(pair):
    plain, tracked, _ = pair
    a, b = (torch.load(p / artifacts.MODEL, weights_only=True)["model"] for p in (plain, tracked))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cols = ["train_loss", "valid_loss", "accuracy", "pixels"]
    assert pd.read_csv(plain / "epochs.csv")[cols].equals(pd.read_csv(tracked / "epochs.csv")[cols])
    one, two = (json.loads((p / "metrics.json").read_text()) for p in (plain, tracked))
    assert one["accuracy"] == two["accuracy"] and one["valid_loss"] == two["valid_loss"]


def test_tensorboard_event_files_hold_the_epoch_rows(pair):
    _, tracked, results = pair
    got = check_tensorboard(tracked, results)
    assert [s for s, _ in got["pixels_seen"]] == [0, 1]


def test_mlflow_holds_the_recipe_and_every_epoch_under_the_sweeps_parent_run(pair):
    _, tracked, results = pair
    client, run = check_mlflow(tracked, results, with_seconds=True)
    recipe = json.loads((tracked / "recipe.json").read_text())
    p = run.data.params
    assert p["config_id"] == recipe["config_id"] and p["seed"] == str(recipe["seed"]) and p["run_id"] == tracked.name
    assert p["context.epochs"] == "2" and run.info.run_name == tracked.name and run.info.status == "FINISHED"
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == run.data.tags["toolkit.sweep"] and parent.info.status == "FINISHED"


def records(path: Path):
    """The records of a W&B run file: a LevelDB-style log of 32 KiB blocks, after a 7-byte file header (W&B has no
    reader of its own for offline files; this follows wandb/sdk/internal/datastore.py's writer)."""
    from wandb.proto import wandb_internal_pb2
    data, pos, block, parts = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:           # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        parts, pos = parts + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):                    # FULL, or the LAST of a split record
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(parts)
            yield rec
            parts = b""
        elif kind == 0:
            break


def test_wandb_offline_run_files_hold_the_config_and_the_rows(pair):
    _, tracked, results = pair
    state = json.loads((tracked / track.STATE).read_text())["wandb"]
    (path,) = (results / "wandb").glob(f"offline-run-*-{state['id']}/run-{state['id']}.wandb")
    config, history = {}, []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "run":
            assert rec.run.run_group == state["group"] and rec.run.display_name == tracked.name
            config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif rec.WhichOneof("record_type") == "history":
            history.append({"step": rec.history.step.num,
                            **{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}})
    recipe = json.loads((tracked / "recipe.json").read_text())
    assert config["config_id"] == recipe["config_id"] and config["seed"] == recipe["seed"]
    epochs = pd.read_csv(tracked / "epochs.csv")
    assert [h["step"] for h in history] == epochs["epoch"].tolist()
    assert [h["valid_loss"] for h in history] == pytest.approx(epochs["valid_loss"].tolist())


def test_an_absent_tracker_or_an_unreachable_server_is_a_clear_error_before_anything_trains(tiny, tmp_path,
                                                                                             monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)        # as if not installed
    assert main(args(tiny, tmp_path / "r", "--track", "wandb")) == 2
    err = capsys.readouterr().err
    assert "--track wandb needs wandb, not installed here" in err and "pip install -e '.[wandb]'" in err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    assert main(args(tiny, tmp_path / "r", "--track", "mlflow")) == 2
    err = capsys.readouterr().err
    assert "The MLflow server at http://127.0.0.1:9 cannot be reached" in err and "nothing was run" in err
    assert not (tmp_path / "r" / "runs").exists()


def test_a_tracker_failing_mid_run_loses_nothing_and_says_what_it_did_not_log(tiny, tmp_path, monkeypatch, capsys):
    real = track._TensorBoard.epoch

    def fails_at_epoch_1(self, row):
        if row["epoch"] == 1:
            raise OSError("disk full")
        real(self, row)
    monkeypatch.setattr(track._TensorBoard, "epoch", fails_at_epoch_1)
    res = tmp_path / "r"
    assert main(args(tiny, res, "--track", "tensorboard")) == 0
    err = capsys.readouterr().err
    (run_dir,) = (res / "runs").iterdir()
    assert (f"warning: tensorboard stopped logging {run_dir.name} (OSError: disk full); it did not get epoch 1 and "
            f"after, nor the final metrics") in err
    assert load_table(res)["run_id"].tolist() == [run_dir.name] and len(pd.read_csv(run_dir / "epochs.csv")) == 2
    logdir = json.loads((run_dir / track.STATE).read_text())["tensorboard"]["logdir"]
    assert [s for s, _ in scalars(Path(logdir))["valid_loss"]] == [0]     # what it logged before it failed
