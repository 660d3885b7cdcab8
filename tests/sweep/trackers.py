"""Read a run back from its trackers (TensorBoard event files, MLflow's store) and check it against its folder."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.records.table import load_table
from toolkit.sweep import track

STEP_COLUMNS = ["stage", "size", "train_loss", "valid_loss", "accuracy", "train_seconds", "images", "pixels"]


def scalars(logdir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def check_tensorboard(run_dir: Path, results: Path):
    """The run's TensorBoard folder holds, for each column of epochs.csv, its values at the epochs' indices."""
    state = json.loads((run_dir / track.STATE).read_text())["tensorboard"]
    logdir = Path(state["logdir"])
    assert logdir.parent.parent == results / "tensorboard" and logdir.name == run_dir.name  # a folder per sweep
    got, epochs = scalars(logdir), pd.read_csv(run_dir / "epochs.csv")
    for col in STEP_COLUMNS:
        assert got[col] == [(i, pytest.approx(np.float32(v))) for i, v in zip(epochs["epoch"], epochs[col])], col
    row = load_table(results).set_index("run_id").loc[run_dir.name]
    assert got["final/accuracy"] == [(len(epochs), pytest.approx(np.float32(row["accuracy"])))]
    return got


def mlflow_run(run_dir: Path):
    from mlflow.tracking import MlflowClient
    state = json.loads((run_dir / track.STATE).read_text())["mlflow"]
    client = MlflowClient(state["tracking_uri"])
    return client, client.get_run(state["run_id"])


def check_mlflow(run_dir: Path, results: Path, with_seconds: bool = False):
    """One value per epoch and column, equal to epochs.csv, and the final metrics. After a resume an epoch trained
    twice keeps its first attempt's values in MLflow: the same but for its seconds (`with_seconds`: check them)."""
    client, run = mlflow_run(run_dir)
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for col in STEP_COLUMNS if with_seconds else [c for c in STEP_COLUMNS if c != "train_seconds"]:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, col))
        assert history == [(i, pytest.approx(v)) for i, v in zip(epochs["epoch"], epochs[col])], col
    row = load_table(results).set_index("run_id").loc[run_dir.name]
    assert run.data.metrics["final/accuracy"] == pytest.approx(row["accuracy"])
    return client, run
