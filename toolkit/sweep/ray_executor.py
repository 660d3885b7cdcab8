"""Sweeps over a Ray cluster: every (recipe, seed) job a Ray task; the driver plans, names folders and records.

Ray is an optional extra (`pip install -e '.[ray]'`): the rest of the toolkit imports without it.

- The driver assigns every job its run folder before submitting it, so a retried task finds its own checkpoint.
- Shared disk: the driver writes a marker file into the results folder; a task that can read it there works in
  the run folder in place (status, epoch log, checkpoints), so a task retried after its worker died resumes
  from its checkpoint. Otherwise a task works in a local folder and returns the run's small files (never its
  checkpoint) for the driver to write; a task retried on another node then starts afresh (`restarted`).
- Only the driver appends to the results table (one writer, under its lock), when a task's result arrives.
- Workers show no progress; the driver prints one line per finished job with the sweep's progress and time left.
- Ctrl-C on the driver cancels the sweep: running tasks are interrupted (their runs marked `interrupted`,
  with a checkpoint), finished runs are kept, and the same command again finishes only what is missing. The
  tasks are asked to stop through a small actor rather than with `ray.cancel`, whose cancel races with a task
  finishing at that moment and can abort the driver inside Ray (seen with Ray 2.60).
- Trackers: a worker logs its run as it trains to a tracker with a server (MLflow over HTTP, W&B online); the
  driver logs the rest (local stores: TensorBoard, a SQLite MLflow, W&B offline) from each finished run's folder,
  so that one process writes each local store.
- A Ray that the driver started is stopped at the end; one it joined (`--address`) is left running.
"""
from __future__ import annotations

import _thread
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

from ..recipes import components
from ..records import artifacts, folders
from ..records.table import append_row
from . import track
from ..defaults import CONNECT_TIMEOUT
from ..errors import RunInterrupted, ToolkitError

MARKER = ".shared-disk-marker"
MAX_RETRIES = 3  # a task whose worker dies is run again this many times at most
POLL = 0.5       # seconds between a task's looks at whether the sweep was cancelled


def require_ray():
    """Ray, or a clear error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ToolkitError("--executor ray needs Ray, an optional extra of the toolkit. Install it with "
                           "`pip install -e '.[ray]'` (from the toolkit's folder), or `pip install 'ray>=2.9'`; "
                           "without it, leave out --executor to run the sweep in this process.") from None
    return ray


def check_address(address: str | None) -> None:
    """A cluster address (or $RAY_ADDRESS) that answers within seconds, or a clear error: `ray.init` on an address
    where nothing listens waits for minutes, printing only Ray's own time-out warnings."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ToolkitError(f"--address {address!r} is not of the form HOST:PORT (e.g. 10.0.0.5:6379, the head node's "
                           f"address and port that `ray start --head` printed).")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise ToolkitError(f"The Ray cluster at {address} cannot be reached ({e.strerror or e}); nothing was run. "
                           f"Check the address and port (`ray status` on the head node), start the cluster with "
                           f"`ray start --head`, or leave out --address to run on a local Ray.") from None


def defaults(ray, cpus_per_run, gpus_per_run) -> tuple[int, float]:
    """Per-job resources that fit the cluster: a GPU each where there are GPUs (and its share of the CPUs),
    else one CPU each, so that as many jobs run at once as there are cores."""
    total = ray.cluster_resources()
    gpus = total.get("GPU", 0)
    if gpus_per_run is None:
        gpus_per_run = 1 if gpus else 0
    if cpus_per_run is None:
        cpus_per_run = max(1, int(total.get("CPU", 1) // gpus)) if gpus_per_run and gpus else 1
    return int(cpus_per_run), float(gpus_per_run)


def connect(address: str | None = None) -> bool:
    """Start or join Ray unless this process already has; True when this call started it (and so shuts it down)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    except ConnectionError as e:
        raise ToolkitError(f"Could not join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')} ({e}). "
                           f"Start it with `ray start --head` or leave out --address to use a local Ray.") from None
    return True


def run_on_ray(todo, options, tracking=None, log=print):
    """Run [(job, run_dir or None)] as Ray tasks with the sweep's `options` (toolkit/sweep/options.py); yields each
    finished job's row once the driver recorded it."""
    tracking = tracking or track.Tracking()
    on_workers, by_driver = tracking.only(track.on_server), tracking.only(lambda n: not track.on_server(n))
    ray = require_ray()
    started_here = connect(options.address)
    results = Path(options.results).resolve()
    try:
        cpus, gpus = defaults(ray, options.cpus_per_run, options.gpus_per_run)
        token = _write_marker(results)
        coordinator = _coordinator(ray)
        task = ray.remote(_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES,
                                         retry_exceptions=False)
        # the user's components go with the jobs, by value: a worker can import neither a file given with
        # --experiments nor a notebook's cell
        shipped = components.snapshot([job.recipe for job, _ in todo])
        components.by_value(shipped)
        shipped = ray.put(shipped)
        pending = {}
        for job, run_dir in todo:
            run_dir = run_dir or folders.new_run_name(results, job.recipe)
            ref = task.remote(job, str(run_dir), str(results / MARKER), token, cpus, options, coordinator, on_workers,
                              shipped)
            pending[ref] = (job, Path(run_dir))
        log(f"{len(pending)} job(s) submitted to Ray ({cpus} CPU(s){f', {gpus:g} GPU(s)' if gpus else ''} each)")
        yield from _gather(ray, pending, results, log, coordinator, by_driver)
    finally:
        (results / MARKER).unlink(missing_ok=True)
        if started_here:
            ray.shutdown()


def _gather(ray, pending: dict, results: Path, log, coordinator, tracking):
    """Record each job as it finishes; report failures once each; on Ctrl-C, cancel and wait for the rest."""
    total, t0, done, recorded, failed, stopped = len(pending), time.monotonic(), 0, 0, [], 0
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job, run_dir = pending.pop(ready[0])
            done += 1
            what = f"{job.recipe.name} (seed {job.recipe.seed}) in {run_dir}"
            try:
                out = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                failed.append((job, run_dir, e))
                log(f"[{done}/{total}] FAILED {what}: {_cause(e)}")
                continue
            if "row" not in out:  # a worker stopped by a signal of its own: resumable, not failed
                stopped += 1
                log(f"[{done}/{total}] INTERRUPTED {what}: {out['interrupted']}")
                continue
            row = _record(results, run_dir, out, tracking, log)
            recorded += 1
            elapsed = time.monotonic() - t0
            left = elapsed / done * (total - done)
            log(f"[{done}/{total}, {elapsed / 60:.1f} min, about {left / 60:.1f} min left] {job.recipe.name} "
                f"(seed {job.recipe.seed}): {_outcome(row)}")
            yield row
    except KeyboardInterrupt:
        recorded += _cancel(ray, pending, results, log, coordinator, tracking)
        raise RunInterrupted(f"Interrupted: {recorded} of {total} job(s) finished and recorded; the others were "
                             f"cancelled (their runs are marked interrupted, with their checkpoints). "
                             f"Run the same command again to finish only what is missing.") from None
    if failed:
        raise ToolkitError(f"{len(failed)} of {total} job(s) failed (each reported above); the other "
                           f"{recorded} finished and are recorded. The first: {failed[0][0].recipe.name} "
                           f"in {failed[0][1]}: {_cause(failed[0][2])}")
    if stopped:
        raise RunInterrupted(f"{stopped} of {total} job(s) were interrupted on their workers (each reported above); "
                             f"the other {recorded} finished and are recorded. Run the same command again to "
                             f"resume them.")


def _cancel(ray, pending: dict, results: Path, log, coordinator, tracking) -> int:
    """Ask every task to stop (a running one is interrupted at its next batch: its run is marked interrupted,
    checkpointed; a queued one returns at once), record those that finished meanwhile, and leave no run folder
    marked running. Returns how many finished."""
    log(f"Interrupted: cancelling {len(pending)} job(s)...")
    ray.get(coordinator.stop.remote())
    ray.wait(list(pending), num_returns=len(pending), timeout=60)
    finished = 0
    for ref, (_, run_dir) in pending.items():
        try:
            out = ray.get(ref, timeout=0)
            if "row" not in out:
                continue  # stopped before it finished
            _record(results, run_dir, out, tracking, log)
            finished += 1
        except Exception:  # failed, or still running after the wait: not a finished run
            if (run_dir / "status.json").exists() and folders.read_status(run_dir)["status"] in ("running", "killed"):
                folders.mark(run_dir, "interrupted", attempt=folders.attempts(run_dir),
                             epochs_done=folders.epochs_done(run_dir))
    return finished


def _cause(e) -> str:
    cause = getattr(e, "cause", None) or e
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"


def _outcome(row: dict) -> str:
    from .jobs import outcome
    return outcome(row) + (f" (attempt {row['attempts']}{', restarted' if row.get('restarted') else ''})"
                           if row.get("attempts", 1) > 1 else "")


def _record(results: Path, run_dir: Path, out: dict, tracking=None, log=print) -> dict:
    """Write what a task returned: its run's small files (when it worked in a local folder), then its row; then
    log the run to the trackers the driver writes."""
    row = out["row"]
    if out.get("files"):
        run_dir.mkdir(parents=True, exist_ok=True)
        for name, data in out["files"].items():
            _write_bytes(run_dir / name, data)
        row = {**row, "run_id": run_dir.name, "run_dir": str(run_dir)}
    append_row(results, row)
    if tracking is not None:
        track.log_finished(tracking, run_dir, row, log=log)
    return row


def _write_bytes(path: Path, data: bytes) -> None:
    from ..atomic import write_atomic
    write_atomic(path, lambda p: Path(p).write_bytes(data))


def _write_marker(results: Path) -> str:
    token = secrets.token_hex(8)
    results.mkdir(parents=True, exist_ok=True)
    (results / MARKER).write_text(token)
    return token


def _coordinator(ray):
    """A small actor the tasks share: how many times each job was started (wherever its tasks ran), and whether
    the driver asked the sweep to stop."""
    @ray.remote(num_cpus=0)
    class Coordinator:
        def __init__(self):
            self.counts, self.stopping = {}, False

        def start(self, key: str) -> int:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

        def stop(self) -> None:
            self.stopping = True

        def stopped(self) -> bool:
            return self.stopping
    return Coordinator.remote()


def _watch(ray, coordinator, done: threading.Event) -> None:
    """In a task's thread: once the driver asks the sweep to stop, interrupt the task's training as Ctrl-C would
    (it stops at its next batch, with a checkpoint). Only while training's own handler is in place, so that the
    interrupt never lands in Ray's code; a task asked to stop outside training stops at its first batch, or
    finishes its evaluation and is recorded."""
    from ..train.callbacks import DeferInterrupt
    while not done.wait(POLL):
        try:
            stopping = ray.get(coordinator.stopped.remote())
        except Exception:  # the driver and its actor are gone: the task is cancelled anyway
            return
        if stopping and isinstance(getattr(signal.getsignal(signal.SIGINT), "__self__", None), DeferInterrupt):
            _thread.interrupt_main(signal.SIGINT)
            return


def _task(job, run_dir: str, marker: str, token: str, threads: int, options, coordinator, tracking=None,
          shipped=()) -> dict:
    """One job on a Ray worker: quiet, `threads` torch threads, in place on a shared disk, else locally (with the
    sweep's `options`, the trackers that a worker logs to itself, and the user's components `shipped` by value)."""
    from dataclasses import replace

    import ray
    import torch

    from .jobs import run_job
    components.install(shipped)
    torch.set_num_threads(threads)
    if ray.get(coordinator.stopped.remote()):
        return {"interrupted": "the sweep was cancelled before this job started"}
    attempt = ray.get(coordinator.start.remote(run_dir))
    run_dir = Path(run_dir)
    shared = Path(marker).exists() and Path(marker).read_text() == token
    done = threading.Event()
    threading.Thread(target=_watch, args=(ray, coordinator, done), daemon=True).start()
    try:
        if shared:  # also counts the attempts of earlier sweeps, recorded in the folder
            attempt = max(attempt, folders.attempts(run_dir) + 1)
            row = run_job(job, replace(options, results=str(run_dir.parent.parent), progress="none"), tracking,
                          run_dir=run_dir, record=False, attempt=attempt)
            return {"row": row}
        local = Path(tempfile.mkdtemp(prefix="toolkit-job-")) / "runs" / run_dir.name
        try:
            quiet = replace(options, results=str(local.parent.parent), progress="none", keep_checkpoints=False)
            row = run_job(job, quiet, tracking, run_dir=local, record=False, attempt=attempt)
            files = {f.name: f.read_bytes() for f in local.iterdir() if f.is_file() and f.name != artifacts.CHECKPOINT}
            return {"row": row, "files": files}
        finally:
            shutil.rmtree(local.parent.parent, ignore_errors=True)
    except (RunInterrupted, KeyboardInterrupt) as e:  # stopped by the driver, or by a signal to this worker
        return {"interrupted": str(e)}
    finally:
        done.set()
