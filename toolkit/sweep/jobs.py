"""Running jobs in this process: one job (its folder, status, checkpoints and row), what to do with each job given
the results so far (skip, resume, start afresh), and resuming one run folder."""
from __future__ import annotations

import functools
import gc
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..recipes.evaluations import SPECS
from ..errors import Pruned, RunInterrupted, Terminated, ToolkitError
from ..records import artifacts, folders
from ..records.migrate import saved_meaning
from ..records.schema import row_auto
from ..records.table import TABLE, finish, recover
from . import track
from .options import Options
from .plan import Job, replay


def _collected(fn):
    """`fn`, followed by a full garbage collection. A Learner and its callbacks point at each other (fastai's
    `cb.learn`), so a finished run's model, optimizer state and DataLoaders are freed only by a full collection,
    which Python seldom runs on its own: without one after each job, a sweep keeps every finished run in memory."""
    @functools.wraps(fn)
    def collected(*args, **kwargs):
        outer = gc.get_freeze_count() > 0   # a caller froze already (a job inside a job): its freeze is its own
        if not outer:   # what is alive before the job (modules, caches, the caller's objects) is none of its garbage:
            gc.freeze()  # the collection after it then looks only at what the job made (0.3 s less per job)
        try:
            return fn(*args, **kwargs)
        finally:
            try:
                gc.collect()
            finally:
                if not outer:
                    gc.unfreeze()
    return collected


@_collected
def run_job(job: Job, options: Options = Options(), tracking: track.Tracking | None = None,
            datasets: dict | None = None, run_dir: Path | None = None, record: bool = True, attempt: int | None = None,
            cbs=(), on_epoch=None) -> dict:
    """Run one job in this process with the sweep's `options`; returns its row for the results table (appended
    there unless not `record`: a driver records it).

    `tracking`: the sweep's trackers; they get each epoch as it ends, and the final metrics once the row is
    recorded. `datasets`: {pipeline.data_key(recipe): loaded dataset}, already checked. `run_dir`: the job's
    folder: an unfinished run's, to resume it from its checkpoint (or from its start if it has none), or a new one
    assigned by a driver.
    `attempt`: how many times the job has been started, when a driver counts them (a retry on another node starts
    afresh in a folder of its own). With `options.save_model` the final weights go to run_dir/model.pth before the
    run is marked finished. `on_epoch(row)`: called with each epoch's row (a search's pruner; raising `Pruned`
    there stops the run, marked pruned: never resumed, never recorded as finished).
    """
    from ..data import pipeline
    from ..train import learner
    recipe = job.recipe
    data = pipeline.prepare(recipe, (datasets or {}).get(pipeline.data_key(recipe)), progress=options.progress)
    if run_dir is None:
        run_dir = folders.new_run_dir(options.results, recipe)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = artifacts.load_checkpoint(run_dir)
    attempt = attempt or folders.attempts(run_dir) + 1
    started_at = folders.now()
    folders.start(run_dir, recipe, job.context, data, attempt=attempt, auto=job.auto, meaning=job.meaning)
    tracked = track.RunTracking(tracking, run_dir, state["log"]["epochs_done"] if state else 0) \
        if tracking and tracking.names else None
    try:
        metrics = learner.fit_and_evaluate(recipe, data, log=run_dir / "epochs.csv", progress=options.progress,
                                           num_workers=options.workers, cbs=cbs,
                                           save=functools.partial(artifacts.save_checkpoint, run_dir),
                                           checkpoint_every=options.checkpoint_every, resume=state,
                                           keep_checkpoints=options.keep_checkpoints,
                                           keep_model=functools.partial(artifacts.save_model, run_dir)
                                           if options.save_model else None,
                                           on_epoch=_each(tracked.epoch if tracked else None, on_epoch))
    except KeyboardInterrupt as e:
        if tracked:
            tracked.close("KILLED")
        done = folders.epochs_done(run_dir)
        folders.mark(run_dir, "interrupted", attempt=attempt, epochs_done=done)
        raise RunInterrupted(
            f"{'Terminated' if isinstance(e, Terminated) else 'Interrupted'} during {recipe.name!r} after {done} "
            f"finished epoch(s), kept in {run_dir} with a checkpoint; the results table keeps every finished run. "
            f"Run the same command again to resume, or `toolkit resume {run_dir}`.",
            terminated=isinstance(e, Terminated)) from None
    except Pruned as e:   # never resumed: its checkpoint goes
        folders.mark(run_dir, "pruned", attempt=attempt, epochs_done=e.epochs, accuracy=e.accuracy)
        (run_dir / artifacts.CHECKPOINT).unlink(missing_ok=True)
        if tracked:
            tracked.close("KILLED")
        raise
    except Exception as e:
        folders.mark(run_dir, "failed", attempt=attempt, error=f"{type(e).__name__}: {e}")
        if tracked:
            tracked.close("FAILED")
        raise
    metrics.update(attempts=attempt, restarted="yes" if attempt > 1 and state is None else "",
                   started_at=started_at)
    row = finish(options.results, run_dir, recipe, job.context, metrics, keep_checkpoints=options.keep_checkpoints,
                 append=record)
    if tracked:
        tracked.finish(row, metrics["epochs_done"])
    return row


def _each(*hooks):
    """One epoch hook that calls each of `hooks` given (None when none is)."""
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None

    def each(row):
        for hook in hooks:
            hook(row)
    return each


def triage(jobs: list[Job], results: str | Path, table: pd.DataFrame, rerun: bool = False, log=print,
           keep_pruned: bool = False):
    """What to do with each job, given what the results hold: [(job, run_dir to resume or None)].

    A job already in the table is skipped; an unfinished run folder of the same job is resumed (killed or
    interrupted) or left alone (running now, or on another host); a failed one is started afresh. `rerun`:
    every job runs again, in a new folder. `keep_pruned`: a folder a search's pruner stopped is left as it is (a
    search's own trials); otherwise its job starts afresh.
    """
    if rerun:
        return [(j, None) for j in jobs]
    finished = set(zip(table["name"], table["config_id"], table["seed"].astype(int))) if len(table) else set()
    configs = {(c, s) for _, c, s in finished}  # a reference is any finished run of its settings and seed
    found = folders.find_runs(results)
    todo, skipped = [], 0
    for job in jobs:
        if job.key in finished or (job.role == "reference" and job.key[1:] in configs):
            skipped += 1
            continue
        last = found.get(job.key, [None])[-1]
        st = folders.read_status(last) if last else {"status": "none"}
        what = f"{job.recipe.name} (seed {job.recipe.seed}) in {last}"
        if st["status"] == "finished":   # its row never reached the table: record it now
            recover(results, last)
            skipped += 1
        elif st["status"] == "pruned" and keep_pruned:   # a search stopped it: for that search, for good
            skipped += 1
        elif st["status"] == "pruned":
            log(f"note: {what} was stopped by a search's pruner; it runs afresh in a new folder.")
            todo.append((job, None))
        elif st["status"] in ("killed", "interrupted"):
            todo.append((job, last))
        elif st["status"] == "failed":
            log(f"note: {what} failed ({st.get('error', 'no error recorded')}); it starts afresh in a new folder. "
                f"Its cause is yours to fix: the same input fails the same way.")
            todo.append((job, None))
        elif st["status"] in ("running", "unknown"):
            log(f"note: {what} is {st['status']} ({st.get('why') or 'pid ' + str(st.get('pid'))}); left alone. "
                f"`toolkit resume RUN_DIR` takes it over once you know it has stopped.")
        else:
            todo.append((job, None))
    if skipped:
        log(f"skipped {skipped} finished run(s) already in {Path(results) / TABLE} (--rerun runs them again)")
    return todo


def outcome(row: dict) -> str:
    """One line for a finished job: its accuracy (and each other evaluation's), time and folder."""
    more = "".join(f", {e.short} {100 * row[f'accuracy_{e.key}']:.1f}%" for e in SPECS
                   if row.get(f"accuracy_{e.key}") not in ("", None))
    return f"accuracy {100 * row['accuracy']:.1f}%{more} in {row['wall_seconds']:.0f}s -> {row['run_dir']}"


def resume(run_dir: str | Path, options: Options = Options(), log=print) -> dict:
    """Resume one unfinished run in its own folder (RESULTS/runs/<run>) and record it; returns its row.
    `options.track`: the trackers to log it to (a run tracked before goes on in the same tracker runs); its results
    folder is the run folder's."""
    run_dir = Path(run_dir)
    st = folders.read_status(run_dir)
    if st["status"] == "finished":
        raise ToolkitError(f"{run_dir} is finished; nothing to resume (`toolkit run ... --rerun` runs it again).")
    if st["status"] == "running":
        raise ToolkitError(f"{run_dir} is running now (pid {st.get('pid')}); stop that process first.")
    if st["status"] == "pruned":
        raise ToolkitError(f"{run_dir} was stopped by a search's pruner after {st.get('epochs_done')} epoch(s); a "
                           f"pruned run is never resumed. `toolkit run` of its settings runs them afresh.")
    recipe, context = replay(run_dir / "recipe.json")
    saved = folders.saved(run_dir)   # what the run was planned as: an older folder's is derived once, now
    means = saved_meaning(saved, recipe)
    job = Job(recipe, context, means.get("role") or "recipe", row_auto(saved), means)
    options = replace(options, results=str(run_dir.parent.parent)).check()
    tracking = track.open_sweep(options.track, options.results, f"resume-{run_dir.name}") if options.track else None
    log(f"resuming {recipe.name} (seed {recipe.seed}) in {run_dir}, {st['status']} after "
        f"{folders.epochs_done(run_dir)} epoch(s)")
    try:
        return run_job(job, options, tracking, run_dir=run_dir)
    finally:
        track.close_sweep(tracking)
