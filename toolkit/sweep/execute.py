"""A sweep: plan -> check -> run the jobs (in this process, or as Ray tasks) -> record; see toolkit/sweep/plan.py
for its vocabulary. What it ran is then compared by toolkit/report (the launcher and `toolkit.run` do both)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import ToolkitError
from ..recipes.recipe import config_id
from ..records.table import load_table
from . import track
from .jobs import Keep, outcome, run_job, triage
from .plan import Job, check, plan

EXECUTORS = ("serial", "ray")


@dataclass
class Sweep:
    """What `run` did: the jobs, the rows it recorded, and the rows of every setting involved (its references' too),
    from the results table `table` as it stands after the sweep."""
    jobs: list[Job]
    rows: pd.DataFrame
    involved: pd.DataFrame
    table: pd.DataFrame


def run(names, context: dict | None = None, vary=None, against: str | None = None, seeds: int = 1,
        reference: bool = True, results: str | Path = "results", progress: str | None = None,
        num_workers: int | None = None, rerun: bool = False,
        every: float | None = None, keep_checkpoints: bool = False, executor: str = "serial",
        address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None,
        save_model: bool = False, track_with=(), log=print) -> Sweep:
    """Plan, check, run and record a sweep; see toolkit/sweep/plan.py for `context`, `vary` and `against`.

    Run again, it skips what is finished and resumes what was killed or interrupted (see `triage`).
    `executor`: "serial" runs the jobs one after another in this process; "ray" runs each as a Ray task, on
    this machine or on the cluster at `address` (toolkit/sweep/ray_executor.py). `save_model`: keep each run's
    final weights; `track_with`: the trackers to log each run to (toolkit/sweep/track.py).
    """
    check_options(executor, address, cpus_per_run, gpus_per_run, every, num_workers)
    track.check(track_with)
    table = load_table(results)
    jobs = plan(names, context, vary, against, seeds, reference)
    todo = triage(jobs, results, table, rerun, log)
    datasets = check([job for job, _ in todo])
    tracking = track.open_sweep(track_with, results, "-".join(map(_name, names))) if track_with and todo else None
    keep = Keep(save_model, tracking)
    try:
        if executor == "ray":
            from .ray_executor import run_jobs
            rows = run_jobs(todo, results, address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                            every=every, keep_checkpoints=keep_checkpoints, keep=keep, log=log)
        else:
            rows = _serial(todo, results, datasets, progress, num_workers, every, keep_checkpoints, keep, log)
        run_ids = [row["run_id"] for row in rows]
    finally:
        track.close_sweep(tracking)
    table = load_table(results)
    involved = {(j.recipe.name, config_id(j.recipe)) for j in jobs}
    rows = table[[(n, c) in involved for n, c in zip(table["name"], table["config_id"])]]
    return Sweep(jobs, table[table["run_id"].isin(run_ids)], rows, table)


def check_options(executor: str, address: str | None, cpus_per_run, gpus_per_run, every, num_workers) -> None:
    """The options of a sweep that no recipe holds, checked before any data work (a bad one would otherwise fail
    only once its job starts, or hang): numbers in range, Ray installed and its cluster reachable."""
    if executor not in EXECUTORS:
        raise ToolkitError(f"Unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}.")
    for option, value, low in [("--cpus-per-run", cpus_per_run, 1), ("--gpus-per-run", gpus_per_run, 0),
                               ("--checkpoint-every", every, 0), ("--workers", num_workers, 0)]:
        if value is not None and not (math.isfinite(value) and value >= low):
            raise ToolkitError(f"{option} must be a number of at least {low} (got {value}).")
    if executor == "ray":
        from .ray_executor import check_address, require_ray
        require_ray()
        check_address(address)


def _name(name) -> str:
    return name if isinstance(name, str) else name.name  # a name, a pattern, a suite, or a Recipe


def _serial(todo, results, datasets, progress, num_workers, every, keep_checkpoints, keep, log):
    """Run the jobs one after another in this process; yields each one's row as it is recorded."""
    for i, (job, run_dir) in enumerate(todo, 1):
        r = job.recipe
        log(f"[{i}/{len(todo)}] {r.name}{' (reference)' if job.role == 'reference' else ''} on "
            f"{Path(r.dataset).name} (seed {r.seed})" + (f", resuming {run_dir}" if run_dir else ""))
        row = run_job(job, results, datasets, progress=progress, num_workers=num_workers, run_dir=run_dir, every=every,
                      keep_checkpoint=keep_checkpoints, keep=keep)
        log(f"    {outcome(row)}")
        yield row


