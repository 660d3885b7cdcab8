"""What survives a kill: real SIGKILL and SIGTERM, checkpoints, exact resume, reruns, damaged tables."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from toolkit.records import artifacts, folders, schema
from toolkit.records.table import append_row, load_table
from toolkit.sweep import jobs, plan
from toolkit.sweep.options import Options
from toolkit.errors import CheckpointError, TableError

from conftest import epochs_logged, signal_when, launch
from trackers import check_mlflow, check_tensorboard

# Runs the launcher and SIGKILLs it right after its k-th checkpoint is on disk, or right after a tracker got its
# n-th epoch (the epoch after a checkpoint: logged, then lost).
KILLER = """
import os, signal, sys
from toolkit.records import artifacts, folders, schema
from toolkit.records.table import append_row, load_table
from toolkit.sweep import track
from toolkit.cli import main
k, saved, save = int(os.environ.get("KILL_AFTER_CHECKPOINT", 0)), [], artifacts.save_checkpoint
n, tracked, epoch = int(os.environ.get("KILL_AFTER_TRACKED_EPOCH", 0)), [], track.RunTracking.epoch
def save_then_die(run_dir, state):
    out = save(run_dir, state)
    saved.append(state["position"])
    if len(saved) == k:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
def track_then_die(self, row):
    epoch(self, row)
    tracked.append(row)
    if len(tracked) == n:
        os.kill(os.getpid(), signal.SIGKILL)
artifacts.save_checkpoint, track.RunTracking.epoch = save_then_die, track_then_die
sys.exit(main(sys.argv[1:]))
"""
METRIC_COLUMNS = ["epoch", "stage", "size", "train_loss", "valid_loss", "accuracy", "images", "pixels"]


def toolkit(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def context(tiny, epochs):
    return ["--dataset", tiny, "--size", 32, "--epochs", epochs, "--set", "arch=xresnet18", "--set", "bs=16"]


def uninterrupted(name, tiny, epochs, results, sets=()):
    """The same run in this process, never stopped: what the resumed one must equal."""
    ctx = plan.context_of({"dataset": str(tiny), "size": 32, "epochs": epochs, "arch": "xresnet18", "bs": 16,
                           **dict(s.split("=", 1) for s in sets)})
    job = plan.plan([name], ctx, reference=False)[0]
    return jobs.run_job(job, Options(results=str(results), progress="none", checkpoint_every=0, keep_checkpoints=True))


@pytest.mark.parametrize("name, epochs, k, where, sets", [
    ("baseline", 4, 2, (0, 2), ("track",)),  # mid-stage, tracked by TensorBoard and MLflow, killed after the epoch
                                             # after checkpoint k: the trackers had it, the resume trains it again
    ("progressive", 4, 3, (1, 1), ("ema=0.9",)),  # inside the second stage (fine_tune, after its frozen epoch),
                                                  # with a weight average going on across the stages
    pytest.param("progressive", 4, 2, (1, 0), (), marks=pytest.mark.slow),   # at the stage boundary (test-all)
    ("mixup", 3, 1, (0, 1), ()),           # with MixUp's draws
    ("baseline", 2, 2, (1, 0), ("ema=0.9",)),  # after the last epoch, before the evaluation: nothing left to
                                               # train, the average evaluated from the checkpoint
])
def test_a_run_killed_after_checkpoint_k_resumes_equal_to_an_uninterrupted_one(name, epochs, k, where, sets, tiny,
                                                                                 tmp_path, capsys):
    tracked = "track" in sets
    if tracked:
        pytest.importorskip("tensorboard"), pytest.importorskip("mlflow")
    sets = tuple(s for s in sets if s != "track")
    args = ["run", name, *context(tiny, epochs), *[a for s in sets for a in ("--set", s)], "--results",
            tmp_path / "r", "--no-reference", "--quiet", "--checkpoint-every", 0, "--keep-checkpoints",
            *(["--track", "tensorboard", "--track", "mlflow"] if tracked else [])]
    kill = {"KILL_AFTER_TRACKED_EPOCH": str(k + 1)} if tracked else {"KILL_AFTER_CHECKPOINT": str(k)}
    killed = subprocess.run([sys.executable, "-c", KILLER, *map(str, args)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, **kill})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = next((tmp_path / "r" / "runs").iterdir())
    assert folders.read_status(run_dir)["status"] == "killed"
    state = artifacts.load_checkpoint(run_dir)
    assert (state["position"]["stage"], state["position"]["epoch"]) == where and state["log"]["epochs_done"] == k
    before = (run_dir / "epochs.csv").read_text().splitlines(keepends=True)
    assert len(before) == 1 + k + tracked

    code, out, err = launch(args, capsys)                    # the same command, run again (in this process)
    assert code == 0, err
    assert f"resuming {run_dir}" in out
    after = (run_dir / "epochs.csv").read_text().splitlines(keepends=True)
    assert after[:1 + k] == before[:1 + k]                   # the epochs before the checkpoint, byte for byte
    assert len(after) == 1 + epochs and len(list((tmp_path / "r" / "runs").iterdir())) == 1

    full = uninterrupted(name, tiny, epochs, tmp_path / "full", sets)
    mine, theirs = pd.read_csv(run_dir / "epochs.csv"), pd.read_csv(Path(full["run_dir"]) / "epochs.csv")
    assert mine[METRIC_COLUMNS].equals(theirs[METRIC_COLUMNS])  # every later epoch, bit for bit on the CPU
    c1, c2 = artifacts.load_checkpoint(run_dir), artifacts.load_checkpoint(Path(full["run_dir"]))
    w1, w2 = c1["model"], c2["model"]
    assert all(torch.equal(w1[key], w2[key]) for key in w2)  # the final weights too
    p1, p2 = artifacts.load_predictions(run_dir), artifacts.load_predictions(Path(full["run_dir"]))
    assert p1.keys() == p2.keys() and all(np.array_equal(p1[k], p2[k]) for k in p1 if k != "valid_hash")
    assert bool(c2["ema"]) == bool(sets) and c1["ema"].keys() == c2["ema"].keys()
    if sets:                                                 # and the weight average, at the same step
        assert c1["ema"]["step"] == c2["ema"]["step"] > 0
        assert all(torch.equal(c1["ema"]["model"][key], v) for key, v in c2["ema"]["model"].items())
    row = load_table(tmp_path / "r").iloc[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert row["attempts"] == 2 and metrics["resumed_at_epoch"] == k  # the second attempt trained epochs - k
    assert row["accuracy"] == full["accuracy"] and row["pixels_seen"] == full["pixels_seen"]
    if sets:
        assert row["accuracy_ema"] == full["accuracy_ema"]
    if tracked:   # the trackers' view after the kill and the resume is epochs.csv's (see toolkit/sweep/track.py)
        check_tensorboard(run_dir, tmp_path / "r")
        client, run = check_mlflow(run_dir, tmp_path / "r")
        assert run.info.status == "FINISHED" and json.loads((run_dir / "track.json").read_text()).keys() == {
            "tensorboard", "mlflow"}


def test_sigterm_exits_143_marks_the_run_interrupted_and_resume_finishes_it(tiny, tmp_path, capsys):
    res = tmp_path / "r"
    code, err = signal_when([sys.executable, "-m", "toolkit", "run", "baseline", *context(tiny, 12), "--results", res,
                             "--quiet"], lambda: epochs_logged(res, 1), signal.SIGTERM)
    assert code == 143, err
    assert "Terminated during 'baseline'" in err and "Traceback" not in err
    run_dir = next((res / "runs").iterdir())
    st = folders.read_status(run_dir)
    done = st["epochs_done"]
    assert st["status"] == "interrupted" and done >= 1
    assert artifacts.load_checkpoint(run_dir)["log"]["epochs_done"] == done  # nothing finished was lost
    assert not (res / "runs.csv").exists()
    code, _, err = launch(["resume", run_dir, "--quiet"], capsys)   # in this process
    assert code == 0, err
    assert folders.read_status(run_dir)["status"] == "finished" and len(pd.read_csv(run_dir / "epochs.csv")) == 12
    assert load_table(res)["attempts"].tolist() == [2] and not (run_dir / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory) -> Path:
    """A results folder from one real sweep: `label_smoothing` and its reference `normalize`, 1 epoch each."""
    res = tmp_path_factory.mktemp("swept") / "r"
    assert launch(["run", "label_smoothing", *context(tiny, 1), "--results", res, "--quiet"])[0] == 0
    return res


@pytest.fixture
def swept_copy(swept, tmp_path) -> Path:
    """A copy of that results folder for a test to change."""
    shutil.copytree(swept, tmp_path / "r")
    return tmp_path / "r"


def test_the_same_sweep_twice_trains_nothing_the_second_time(tiny, swept_copy, capsys):
    res = swept_copy
    args = ["run", "label_smoothing", *context(tiny, 1), "--results", res, "--quiet"]
    table, folders = (res / "runs.csv").read_bytes(), sorted((res / "runs").iterdir())
    code, out, err = launch(args, capsys)
    assert code == 0, err
    assert "skipped 2 finished run(s)" in out and "[1/" not in out
    assert (res / "runs.csv").read_bytes() == table and sorted((res / "runs").iterdir()) == folders
    assert "| label_smoothing | normalize " in out           # and still prints the comparison


def test_a_failed_run_starts_afresh_and_says_why(tiny, tmp_path):
    ctx = plan.context_of({"dataset": str(tiny), "size": 32, "epochs": 1, "arch": "xresnet18", "bs": 16})
    job = plan.plan(["baseline"], ctx, reference=False)[0]
    failed = folders.new_run_dir(tmp_path, job.recipe)
    folders.start(failed, job.recipe, ctx)
    folders.mark(failed, "failed", error="RuntimeError: out of memory")
    said = []
    todo = jobs.triage([job], tmp_path, load_table(tmp_path), log=said.append)
    assert todo == [(job, None)] and "out of memory" in said[0] and "yours to fix" in said[0]


def test_checkpoints_load_weights_only_and_a_pickled_object_is_refused(tiny, tmp_path):
    row = uninterrupted("baseline", tiny, 1, tmp_path)
    path = Path(row["run_dir"]) / "checkpoint.pt"
    state = torch.load(path, weights_only=True)               # a real checkpoint: tensors and plain values only
    assert set(state) >= {"model", "opt", "rng", "position", "log"} and state["position"]["stage"] == 1
    torch.save({"model": {}, "evil": Path("/etc/passwd")}, path)  # something that needs unpickling code
    with pytest.raises(CheckpointError, match="only weights_only loading is allowed"):
        artifacts.load_checkpoint(Path(row["run_dir"]))


def _set_cell(text: str, row: int, column: str, value: str) -> str:
    import io
    t = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    t.loc[row, column] = value
    return t.to_csv(index=False)


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[:-9], r"line 3\) is cut short"),                                   # truncated last line
    (lambda text: text + "garbled,line\n", r"line 4 has 2 fields where the header has"),  # garbled line
    (lambda text: _set_cell(text, 0, "accuracy", "oops"),                                 # not a number
     r"line 2, column 'accuracy' holds 'oops', not a number"),
])
def test_a_damaged_table_is_a_clear_error_never_written_and_rebuilt(damage, message, tiny, swept_copy):
    res = swept_copy
    path = res / "runs.csv"
    path.write_text(damage(path.read_text()))
    damaged = path.read_bytes()
    for args in (["compare"], ["run", "normalize", *context(tiny, 1)]):
        p = toolkit(*args, "--results", res)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert str(path) in p.stderr and re.search(message, p.stderr)
    assert path.read_bytes() == damaged and len(list((res / "runs").iterdir())) == 2   # untouched, nothing ran
    p = toolkit("runs", "--rebuild-table", "--results", res)
    assert p.returncode == 0 and "Wrote 2 row(s)" in p.stdout
    rebuilt = next(res.glob("runs.rebuilt-*.csv"))
    rebuilt.replace(path)
    assert sorted(load_table(res)["name"]) == ["label_smoothing", "normalize"]


def test_a_failed_append_leaves_the_table_byte_identical(tmp_path, monkeypatch):
    from dataclasses import replace

    from toolkit.recipes import registry
    from tests.conftest import resolved as resolve
    recipe = resolve(replace(registry.get("baseline"), dataset="digits"))
    append_row(tmp_path, schema.result_row(recipe, {}, Path("/nowhere/a"), {"accuracy": 0.5}))
    before = (tmp_path / "runs.csv").read_bytes()

    def disk_full(path, data):
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("toolkit.records.table._write_synced", disk_full)
    with pytest.raises(OSError):
        append_row(tmp_path, schema.result_row(replace(recipe, seed=43), {}, Path("/nowhere/b"), {"accuracy": 0.6}))
    assert (tmp_path / "runs.csv").read_bytes() == before and not list(tmp_path.glob(".runs.csv.*"))


def test_a_table_that_does_not_end_in_a_newline_is_refused_before_reading(tmp_path):
    (tmp_path / "runs.csv").write_text(",".join(schema.COLUMNS))
    with pytest.raises(TableError, match="cut short"):
        load_table(tmp_path)
