"""Copies of runs in the trackers their users already watch: TensorBoard, Weights & Biases, MLflow (`--track`).

The run folder and runs.csv stay the record. A tracker gets the resolved recipe as hyper-parameters, each epoch's
row as the epoch log writes it (plus the run's pixels and training seconds so far), and the final metrics
(`final/<metric>`), through the tracker's own client, with the epoch index across stages as the step. fastai's
TensorBoardCallback and WandbCallback are not used: their before_fit draws a batch (from the global RNG), and
their step restarts with every fit. Every tracker call runs with the RNG states put back after it, so a tracked
run is bit-equal to an untracked one.

    tensorboard  RESULTS/tensorboard/<sweep>/<run>                 (`tensorboard --logdir RESULTS/tensorboard`)
    wandb        project $WANDB_PROJECT or "toolkit", group <sweep>, run files under RESULTS/wandb;
                 WANDB_MODE=offline logs without a network (`wandb sync` uploads later)
    mlflow       $MLFLOW_TRACKING_URI, else sqlite:///RESULTS/mlflow.db; experiment $MLFLOW_EXPERIMENT_NAME or
                 "toolkit"; a parent run per sweep, a child run per run

Resume: a run's tracker ids are kept in its folder (track.json), and a resumed run continues the same tracker
runs. TensorBoard reopens the run's folder with purge_step at the checkpoint's epoch, so the epochs trained after
the checkpoint and lost are dropped there, then logged again. W&B (same id, resume="allow") and MLflow (same run
id) keep what they have and get the epochs from the first one they lack: resuming is exact, so the values of an
epoch trained twice are the same, except its seconds (theirs are the first attempt's).

A tracker that fails stops logging that run, with one message that says what it did not get; the run goes on.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import re
import socket
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from ..atomic import write_json
from ..defaults import CONNECT_TIMEOUT
from ..errors import ToolkitError

TRACKERS = ("tensorboard", "wandb", "mlflow")
STATE = "track.json"     # in a run folder: each tracker's ids for that run, so that a resume continues it
PROJECT = "toolkit"      # the W&B project and the MLflow experiment, unless $WANDB_PROJECT / $MLFLOW_EXPERIMENT_NAME
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
         "mlflow": ("mlflow", "mlflow-skinny, sqlalchemy and alembic")}   # module to import, what to install


@dataclass(frozen=True)
class Tracking:
    """The trackers of a sweep and where they write: made by `open_sweep`, handed to every job (Ray pickles it)."""
    names: tuple = ()
    results: str = ""
    group: str = ""          # the sweep: a TensorBoard folder, a W&B group, the MLflow parent run's name
    mlflow_parent: str = ""  # the MLflow parent run's id
    mlflow_uri: str = ""     # where MLflow writes and in which experiment, decided once by the driver (a Ray
    mlflow_experiment: str = ""  # worker may lack its environment)

    def only(self, keep) -> "Tracking":
        return replace(self, names=tuple(n for n in self.names if keep(n)))


def check(names) -> tuple:
    """The trackers asked for, checked before anything trains: known, installed, and their servers answering."""
    names = tuple(dict.fromkeys(names or ()))
    for name in names:
        if name not in TRACKERS:
            raise ToolkitError(f"Unknown tracker {name!r} for --track; use {', '.join(TRACKERS)} (repeat --track "
                               f"for several).")
        module, what = NEEDS[name]
        try:
            __import__(module)
            if name == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
        except ImportError as e:
            raise ToolkitError(f"--track {name} needs {what}, not installed here ({e}). Install the toolkit's extra "
                               f"with `pip install -e '.[{name}]'` (from the toolkit's folder), or leave out "
                               f"--track {name}; nothing was run.") from None
    if "mlflow" in names:
        _check_mlflow()
    if "wandb" in names:
        _check_wandb()
    return names


def open_sweep(names, results, what: str) -> Tracking:
    """A sweep's tracking: its group name (time and what it runs) and, with MLflow, its parent run."""
    names = check(names)
    from ..records.folders import slug   # here: the launcher imports this module for its names, light
    tracking = Tracking(names, str(Path(results).resolve()), f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(what)[:60]}")
    if "mlflow" in names:
        client = _mlflow_client(_mlflow_uri(tracking.results))
        experiment = _mlflow_experiment(client)
        parent = client.create_run(experiment, run_name=tracking.group, tags={"toolkit.sweep": tracking.group})
        tracking = replace(tracking, mlflow_parent=parent.info.run_id, mlflow_uri=client.tracking_uri,
                           mlflow_experiment=experiment)
    return tracking


def close_sweep(tracking: Tracking | None) -> None:
    if tracking and tracking.mlflow_parent:
        with contextlib.suppress(Exception):  # the sweep's runs are recorded; a parent left RUNNING is cosmetic
            _mlflow_client(tracking.mlflow_uri).set_terminated(tracking.mlflow_parent)


def on_server(name: str) -> bool:
    """Whether a tracker writes to a server (MLflow over HTTP, W&B online) rather than to files on this disk."""
    if name == "mlflow":
        return urllib.parse.urlparse(_mlflow_uri("")).scheme in ("http", "https", "databricks")
    return name == "wandb" and _wandb_mode() == "online"


class RunTracking:
    """The trackers of one run: each gets the rows and the final metrics; one that fails is dropped, with a message
    that says what it did not get (the run folder and the table have everything regardless)."""

    def __init__(self, tracking: Tracking, run_dir: Path, resumed_at: int = 0, log=None):
        self.run_dir, self.log = Path(run_dir), log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.live, self.epoch_at = [], resumed_at
        params = _params(json.loads((self.run_dir / "recipe.json").read_text()), self.run_dir)
        state = json.loads((self.run_dir / STATE).read_text()) if (self.run_dir / STATE).exists() else {}
        for name in tracking.names:
            tracker = CLIENTS[name]()
            got = self._call(tracker, lambda: tracker.start(tracking, self.run_dir, params, state.get(name), resumed_at))
            if got is not None:
                state[name] = got
                self.live.append(tracker)
        write_json(self.run_dir / STATE, state)

    def epoch(self, row: dict) -> None:
        self.epoch_at = row["epoch"]
        for tracker in list(self.live):
            self._call(tracker, lambda: tracker.epoch(row))

    def finish(self, row: dict, step: int) -> None:
        """The final metrics (the numeric ones of the run's row), then each tracker's run closed as finished."""
        from ..records.schema import METRICS
        self.epoch_at = None
        final = {k: float(row[k]) for k in METRICS if _number(row.get(k))}
        for tracker in list(self.live):
            self._call(tracker, lambda: tracker.finish(final, step))
        self.close("FINISHED")

    def close(self, status: str = "KILLED") -> None:
        for tracker in list(self.live):
            self._call(tracker, lambda: tracker.close(status))
        self.live = []

    def _call(self, tracker, fn):
        try:
            with _rng_kept():
                return fn()
        except Exception as e:
            self.live.remove(tracker) if tracker in self.live else None
            what = ("the final metrics" if self.epoch_at is None else
                    f"epoch {self.epoch_at} and after, nor the final metrics")
            self.log(f"warning: {tracker.name} stopped logging {self.run_dir.name} ({type(e).__name__}: "
                     f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); it did not get {what}. The run "
                     f"goes on: its folder and runs.csv keep every value.")
            return None


def log_finished(tracking: Tracking, run_dir: Path, row: dict, log=None) -> None:
    """Log a finished run from its folder (epochs.csv) and its row: what a Ray driver does for a job that ran
    where no tracking server was given."""
    if not tracking.names:
        return
    with open(Path(run_dir) / "epochs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    tracked, pixels, seconds = RunTracking(tracking, run_dir, log=log), 0, 0.0
    for r in rows:
        r = {k: int(v) if k in ("epoch", "stage", "size", "images", "pixels") else float(v) for k, v in r.items()}
        pixels, seconds = pixels + r["pixels"], seconds + r["train_seconds"]
        tracked.epoch({**r, "pixels_seen": pixels, "train_seconds_seen": round(seconds, 3)})
    tracked.finish(row, len(rows))


class _TensorBoard:
    name = "tensorboard"

    def start(self, tracking, run_dir, params, state, resumed_at):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
        logdir = (state or {}).get("logdir") or str(Path(tracking.results) / "tensorboard" / tracking.group / run_dir.name)
        # purge_step: a reader drops what this folder holds from that step on (the epochs a kill lost)
        self.writer = SummaryWriter(logdir, purge_step=resumed_at if state else None)
        if not state or resumed_at == 0:
            for summary in hparams(params, {"final/accuracy": 0.0, "final/valid_loss": 0.0}):
                self.writer.file_writer.add_summary(summary)
        return {"logdir": logdir}

    def epoch(self, row):
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def finish(self, final, step):
        for key, value in final.items():
            self.writer.add_scalar(f"final/{key}", value, step)

    def close(self, status):
        self.writer.close()


class _Wandb:
    name = "wandb"

    def start(self, tracking, run_dir, params, state, resumed_at):
        import wandb
        state = state or {"id": _wandb_id(run_dir.name), "group": tracking.group}
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, group=state["group"],
                              name=run_dir.name, id=state["id"], resume="allow", config=params,
                              dir=str(run_dir.parent.parent), reinit="create_new",   # the results folder
                              settings=wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                                      x_disable_machine_info=True, disable_git=True,
                                                      save_code=False))
        self.first = self.run.step   # resumed online: the steps W&B has; it refuses to log a step twice
        return state

    def epoch(self, row):
        if row["epoch"] >= self.first:
            self.run.log({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    def finish(self, final, step):
        self.run.summary.update({f"final/{k}": v for k, v in final.items()})

    def close(self, status):
        self.run.finish(exit_code=0 if status == "FINISHED" else 1)


class _Mlflow:
    name = "mlflow"

    def start(self, tracking, run_dir, params, state, resumed_at):
        from mlflow.entities import Param
        self.client = _mlflow_client((state or {}).get("tracking_uri") or tracking.mlflow_uri)
        if state:
            self.id = state["run_id"]
            self.client.update_run(self.id, status="RUNNING")
            steps = [m.step for m in self.client.get_metric_history(self.id, "valid_loss")]
            self.first = max(steps) + 1 if steps else 0
            return state
        tags = {"toolkit.sweep": tracking.group, "toolkit.run_dir": str(run_dir)}
        if tracking.mlflow_parent:
            tags["mlflow.parentRunId"] = tracking.mlflow_parent
        self.id = self.client.create_run(tracking.mlflow_experiment, run_name=run_dir.name, tags=tags).info.run_id
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):   # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.id, params=items[i:i + 100])
        self.first = 0
        return {"run_id": self.id, "tracking_uri": self.client.tracking_uri}

    def epoch(self, row):
        if row["epoch"] >= self.first:
            self._log({k: v for k, v in row.items() if k != "epoch"}, row["epoch"])

    def finish(self, final, step):
        self._log({f"final/{k}": v for k, v in final.items()}, step)

    def close(self, status):
        self.client.set_terminated(self.id, status)

    def _log(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric
        stamp = int(time.time() * 1000)
        self.client.log_batch(self.id, metrics=[Metric(k, float(v), stamp, step) for k, v in values.items()])


CLIENTS = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _Mlflow}


def _params(recipe_json: dict, run_dir: Path) -> dict:
    """The hyper-parameters a tracker gets: the resolved recipe (seed, parent), its config id and context, and the
    run's folder; flat, each a number, a bool or text."""
    out = {"run_id": run_dir.name}
    for key, value in recipe_json.items():
        items = value.items() if key == "context" else [(key, value)]
        for k, v in items:
            k = f"context.{k}" if key == "context" else k
            out[k] = v if isinstance(v, (bool, int, float, str)) else ("" if v is None else json.dumps(v))
    return out


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@contextlib.contextmanager
def _rng_kept():
    """Put Python's, NumPy's and torch's random states back after a tracker call: a client that draws from them
    (an id, a retry's jitter) would change the next augmentation."""
    import numpy as np
    import torch
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _wandb_id(run_name: str) -> str:
    """A W&B run id from the run folder's name: its letters, digits, - and _ (W&B refuses / \\ # ? % :), 64 at most."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", run_name)[-64:]


def _wandb_mode() -> str:
    mode = os.environ.get("WANDB_MODE", "online").lower()
    return "offline" if mode == "dryrun" else mode


def _check_wandb() -> None:
    """Online W&B needs its server and a login: say so now, not after the first run trained (`wandb.init` waits
    for a login prompt, or for a server that never answers)."""
    if _wandb_mode() in ("offline", "disabled"):
        return
    url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    _reachable("W&B", url, "set WANDB_MODE=offline to log to local files and `wandb sync` them later")
    import netrc
    host = urllib.parse.urlparse(url).hostname
    with contextlib.suppress(OSError, netrc.NetrcParseError):
        if netrc.netrc().authenticators(host):
            return
    if not os.environ.get("WANDB_API_KEY"):
        raise ToolkitError(f"--track wandb needs a W&B login for {url}: run `wandb login` or set WANDB_API_KEY, or "
                           f"set WANDB_MODE=offline to log to local files; nothing was run.")


def _mlflow_uri(results: str) -> str:
    """Where a sweep's MLflow runs go: $MLFLOW_TRACKING_URI, else a SQLite file in the results folder (MLflow's
    plain-folder store is deprecated). A run already tracked keeps its own store (track.json)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(results).resolve() / 'mlflow.db'}"


def _mlflow_client(uri: str):
    import logging
    from mlflow.tracking import MlflowClient
    for name in ("mlflow", "alembic"):   # a new store logs each step of making its tables
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient(uri)


def _mlflow_experiment(client) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def _check_mlflow() -> None:
    uri = _mlflow_uri("")
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("http", "https"):
        _reachable("The MLflow server", uri, "start it (`mlflow server`), or unset MLFLOW_TRACKING_URI to log to "
                                             "RESULTS/mlflow.db")
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=CONNECT_TIMEOUT).close()
        except OSError as e:
            raise ToolkitError(f"The MLflow server at {uri} does not answer /health ({e}); nothing was run. Check "
                               f"MLFLOW_TRACKING_URI.") from None
    elif scheme in ("", "sqlite") or uri.startswith("sqlite"):
        try:
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
        except ImportError as e:
            raise ToolkitError(f"--track mlflow logs to a SQLite file here, which needs sqlalchemy and alembic ({e}). "
                               f"Install them with `pip install -e '.[mlflow]'`, or point MLFLOW_TRACKING_URI at a "
                               f"server; nothing was run.") from None


def _reachable(what: str, url: str, fix: str) -> None:
    parts = urllib.parse.urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ToolkitError(f"{what} at {url} cannot be reached ({e.strerror or e}); nothing was run. Check the "
                           f"address, or {fix}.") from None
