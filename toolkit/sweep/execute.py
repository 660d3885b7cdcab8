"""A sweep's jobs (from its plan, toolkit/sweep/plan.py): triage -> check -> run (in this process, or as Ray tasks)
-> record. What it ran is then judged (toolkit/judgment) and shown (toolkit/report)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..data import audit
from ..recipes.identity import config_id
from ..records.table import load_table
from . import track
from .jobs import outcome, run_job, triage
from .options import Options
from .plan import Job, check


@dataclass
class Sweep:
    """What `run` did: the jobs, the rows it recorded, and the rows of every setting involved (its references' too),
    from the results table `table` as it stands after the sweep."""
    jobs: list[Job]
    rows: pd.DataFrame
    involved: pd.DataFrame
    table: pd.DataFrame


def run_jobs(jobs: list[Job], options: Options = Options(), log=print, label: str = "sweep", on_epoch=None,
             keep_pruned: bool = False) -> Sweep:
    """Check, run and record `jobs` (a plan's, toolkit/sweep/plan.py) with the sweep's `options`
    (toolkit/sweep/options.py); `label` names the sweep for the trackers; `on_epoch(row)`: each epoch's row of
    each job run in this process (a search's pruner); `keep_pruned`: a search's own pruned runs stay pruned.

    Run again, it skips what is finished and resumes what was killed or interrupted (see `triage`). The serial
    executor runs the jobs one after another in this process; Ray runs each as a Ray task, on this machine or on a
    cluster (toolkit/sweep/ray_executor.py).
    """
    options.check()
    if options.executor == "ray":   # installed, and its cluster reachable, before any data work
        from .ray_executor import check_address, require_ray
        require_ray()
        check_address(options.address)
    table = load_table(options.results)
    todo = triage(jobs, options.results, table, options.rerun, log, keep_pruned)
    datasets = check([job for job, _ in todo])
    for ds in datasets.values():   # what `toolkit data check` would warn of, said once; nothing is refused
        for line in audit.before_run(ds):
            log(line)
    tracking = track.open_sweep(options.track, options.results, label) if options.track and todo else None
    try:
        if options.executor == "ray":
            from .ray_executor import run_on_ray
            rows = run_on_ray(todo, options, tracking, log)
        else:
            rows = _serial(todo, datasets, options, tracking, log, on_epoch)
        run_ids = [row["run_id"] for row in rows]
    finally:
        track.close_sweep(tracking)
    table = load_table(options.results)
    involved = {(j.recipe.name, config_id(j.recipe)) for j in jobs}
    rows = table[[(n, c) in involved for n, c in zip(table["name"], table["config_id"])]]
    return Sweep(jobs, table[table["run_id"].isin(run_ids)], rows, table)


def _serial(todo, datasets, options: Options, tracking, log, on_epoch=None):
    """Run the jobs one after another in this process; yields each one's row as it is recorded."""
    for i, (job, run_dir) in enumerate(todo, 1):
        r = job.recipe
        log(f"[{i}/{len(todo)}] {r.name}{' (reference)' if job.role == 'reference' else ''} on "
            f"{Path(r.dataset).name} (seed {r.seed})" + (f", resuming {run_dir}" if run_dir else ""))
        row = run_job(job, options, tracking, datasets, run_dir=run_dir, on_epoch=on_epoch)
        log(f"    {outcome(row)}")
        yield row
