"""A sweep: names -> checked jobs (recipe x seed, paired with their references) -> runs -> records -> summary.

The launcher (`toolkit run`, `toolkit compare`) and notebooks call `run` and `compare` here, so they plan,
check, record and compare the same way.

Vocabulary:
  context    overrides that apply to a recipe and to its reference alike (--dataset, --size, --epochs, --set)
  vary       overrides that make a variant `NAME [k=v]` of a recipe, compared with NAME itself (--vary)
  reference  what a recipe is compared with: `against` if given, else its parent, else the baseline,
             always under the same context; run for the seeds it lacks unless `reference=False`
"""
from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from . import data, registry, runs
from .data import canonical_name, load
from .errors import RecipeError, RunInterrupted, Terminated, ToolkitError
from .recipe import (METADATA, Recipe, apply_overrides, changes, config_id, epoch_plan, format_value, label, pairs,
                     plan_pixels, stage_plan)

# Settings a table shows as columns (or once above it), not in the labels; budget_pixels follows from the budget.
SHOWN = ("dataset", "size", "epochs", "arch", "loader", "budget", "budget_pixels")


@dataclass(frozen=True)
class Job:
    """One run to do: a resolved recipe (with its seed) and the context it was asked for under."""
    recipe: Recipe
    context: dict
    role: str = "recipe"   # "recipe", or "reference" (run so that a recipe has something to be compared with)

    @property
    def key(self) -> tuple:
        return self.recipe.name, config_id(self.recipe), self.recipe.seed


@dataclass
class Sweep:
    """What `run` did: the jobs, their rows in the results table, and the comparison of everything involved."""
    jobs: list[Job]
    rows: pd.DataFrame
    summary: pd.DataFrame
    written: list[Path]


# --- planning ----------------------------------------------------------------------------------------

def context_of(overrides: dict | list | None = None, **settings) -> dict:
    """The context as recorded: {key: value as text}, checked against the recipe's fields, dataset canonical."""
    given = pairs(overrides)
    given.update({k: v for k, v in settings.items() if v is not None})
    apply_overrides(Recipe(), given)  # unknown keys and bad values fail here, before anything runs
    out = {k: str(v) for k, v in sorted(given.items())}
    if "dataset" in out:
        out["dataset"] = canonical_name(out["dataset"])
    return out


def variant(recipe: Recipe, vary: dict | list | None) -> Recipe:
    """`recipe` with the treatment `vary` applied, named `NAME [k=v, ...]` and compared with `recipe`."""
    treatment = pairs(vary)
    if not treatment:
        return recipe
    varied = apply_overrides(recipe, treatment)
    items = {k: format_value(getattr(varied, k)) for k in treatment}
    return replace(varied, name=label(recipe.name, items), parent=recipe.name)


def resolve(recipe: Recipe, context: dict, against: str | None = None) -> Recipe:
    """A recipe as it will run: its dataset and size (`data.resolve`), then, under budget=pixels, the pixels per
    image its reference spends at its own epochs (`budget_pixels`), which the stage plan then spends."""
    r = data.resolve(recipe)
    if r.budget == "pixels" and not r.budget_pixels:
        ref = _nominal(registry.reference_name(r, against), json.dumps(context, sort_keys=True))
        r = replace(r, budget_pixels=plan_pixels(epoch_plan(ref, ref.size)))
    return r


def reference_recipe(recipe: Recipe, context: dict, against: str | None = None) -> Recipe:
    """The resolved recipe that `recipe` is compared with: its reference under the same context."""
    name = registry.reference_name(recipe, against)
    return _reference(name, json.dumps(context, sort_keys=True), against)


@functools.lru_cache(maxsize=None)
def _reference(name: str, context_json: str, against: str | None) -> Recipe:
    return resolve(apply_overrides(registry.get(name), json.loads(context_json)), json.loads(context_json), against)


@functools.lru_cache(maxsize=None)
def _nominal(name: str, context_json: str) -> Recipe:
    """The registered recipe `name` under a context, at its own epochs: what a pixel budget is taken from."""
    return data.resolve(apply_overrides(registry.get(name), json.loads(context_json)))


def plan(names, context: dict | None = None, vary=None, against: str | None = None, seeds: int = 1,
         reference: bool = True) -> list[Job]:
    """The jobs of a sweep: every recipe x seed, each preceded by its reference's run with that seed.

    `names`: experiment names, wildcard patterns, suites, or Recipe objects (a notebook's own variants).
    What the results already hold is skipped later (`triage`).
    """
    if seeds < 1:
        raise RecipeError(f"--seeds must be at least 1 (got {seeds}).")
    context = context or {}
    if against is not None:
        registry.get(against)  # an unknown name fails here, with close matches
    recipes = []
    for item in [names] if isinstance(names, (str, Recipe)) else names:
        for r in [item] if isinstance(item, Recipe) else registry.resolve(item):
            recipes.append(variant(apply_overrides(r, context), vary))
    jobs: dict[tuple, Job] = {}
    for r in recipes:
        r = resolve(r, context, against)
        ref = reference_recipe(r, context, against) if reference else None
        for seed in range(r.seed, r.seed + seeds):
            if ref is not None and config_id(ref) != config_id(r):
                job = Job(replace(ref, seed=seed), context, "reference")
                jobs.setdefault(job.key, job)
            job = Job(replace(r, seed=seed), context)
            if job.key not in jobs or jobs[job.key].role == "reference":  # asked for by name: a recipe after all
                jobs[job.key] = job
    return list(jobs.values())


def replay(path: str | Path) -> tuple[Recipe, dict]:
    """The recipe and context of a run, from its recipe.json (other keys ignored), to run it again."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.json"
    try:
        saved = json.loads(path.read_text())
        return Recipe.from_dict(saved), dict(saved.get("context", {}))
    except (OSError, ValueError, TypeError) as e:
        raise ToolkitError(f"Cannot replay {path}: {type(e).__name__}: {e}. Pass the recipe.json of a run folder "
                           f"(RESULTS/runs/<run>/recipe.json).") from None


def check(jobs: list[Job]) -> dict:
    """Everything that can be checked before the first epoch: architectures, weights, stage plans, datasets."""
    from .models import check_arch, check_weights  # torch loads only once names and overrides are known good
    for job in jobs:
        check_arch(job.recipe.arch)
        check_weights(job.recipe.arch, job.recipe.weights)
        stage_plan(job.recipe, job.recipe.size)
    return {name: load(name) for name in dict.fromkeys(j.recipe.dataset for j in jobs)}


# --- running -----------------------------------------------------------------------------------------

def run_job(job: Job, results: str | Path, datasets: dict | None = None, quiet: bool = False,
            num_workers: int | None = None, cbs=(), run_dir: Path | None = None, every: float | None = None,
            keep_checkpoint: bool = False, record: bool = True, attempt: int | None = None) -> dict:
    """Run one job in this process; returns its row for the results table (appended there unless not `record`).

    `run_dir`: the job's folder: an unfinished run's, to resume it from its checkpoint (or from its start if it
    has none), or a new one assigned by a driver. `attempt`: how many times the job has been started, when a
    driver counts them (a retry on another node starts afresh in a folder of its own).
    """
    from . import pipeline, train
    recipe = job.recipe
    data = pipeline.prepare(recipe, (datasets or {}).get(recipe.dataset), quiet=quiet)
    if run_dir is None:
        run_dir = runs.new_run_dir(results, recipe)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = runs.load_checkpoint(run_dir)
    attempt = attempt or runs.attempts(run_dir) + 1
    started_at = runs.now()
    runs.start(run_dir, recipe, job.context, data, attempt=attempt)
    try:
        metrics = train.run(recipe, data, log=run_dir / "epochs.csv", quiet=quiet, num_workers=num_workers, cbs=cbs,
                            save=lambda st: runs.save_checkpoint(run_dir, st), every=every, resume=state,
                            keep_last=keep_checkpoint)
    except KeyboardInterrupt as e:
        done = runs.epochs_done(run_dir)
        runs.mark(run_dir, "interrupted", attempt=attempt, epochs_done=done)
        raise RunInterrupted(
            f"{'Terminated' if isinstance(e, Terminated) else 'Interrupted'} during {recipe.name!r} after {done} "
            f"finished epoch(s), kept in {run_dir} with a checkpoint; the results table keeps every finished run. "
            f"Run the same command again to resume, or `toolkit resume {run_dir}`.",
            terminated=isinstance(e, Terminated)) from None
    except Exception as e:
        runs.mark(run_dir, "failed", attempt=attempt, error=f"{type(e).__name__}: {e}")
        raise
    metrics.update(attempts=attempt, restarted="yes" if attempt > 1 and state is None else "",
                   started_at=started_at)
    return runs.finish(results, run_dir, recipe, job.context, metrics, keep_checkpoint=keep_checkpoint,
                       append=record)


def triage(jobs: list[Job], results: str | Path, table: pd.DataFrame, rerun: bool = False, log=print):
    """What to do with each job, given what the results hold: [(job, run_dir to resume or None)].

    A job already in the table is skipped; an unfinished run folder of the same job is resumed (killed or
    interrupted) or left alone (running now, or on another host); a failed one is started afresh. `rerun`:
    every job runs again, in a new folder.
    """
    if rerun:
        return [(j, None) for j in jobs]
    finished = set(zip(table["name"], table["config_id"], table["seed"].astype(int))) if len(table) else set()
    configs = {(c, s) for _, c, s in finished}  # a reference is any finished run of its settings and seed
    folders = runs.find_runs(results)
    todo, skipped = [], 0
    for job in jobs:
        if job.key in finished or (job.role == "reference" and job.key[1:] in configs):
            skipped += 1
            continue
        last = folders.get(job.key, [None])[-1]
        st = runs.read_status(last) if last else {"status": "none"}
        what = f"{job.recipe.name} (seed {job.recipe.seed}) in {last}"
        if st["status"] == "finished":   # its row never reached the table: record it now
            runs.recover(results, last)
            skipped += 1
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
        log(f"skipped {skipped} finished run(s) already in {Path(results) / runs.TABLE} (--rerun runs them again)")
    return todo


def run(names, context: dict | None = None, vary=None, against: str | None = None, seeds: int = 1,
        reference: bool = True, results: str | Path = "results", quiet: bool = False,
        num_workers: int | None = None, out: str | Path | None = None, rerun: bool = False,
        every: float | None = None, keep_checkpoints: bool = False, executor: str = "serial",
        address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None,
        log=print) -> Sweep:
    """Plan, check, run and record a sweep, then compare everything it involved; see the module docstring.

    Run again, it skips what is finished and resumes what was killed or interrupted (see `triage`).
    `executor`: "serial" runs the jobs one after another in this process; "ray" runs each as a Ray task, on
    this machine or on the cluster at `address` (toolkit/distributed.py).
    """
    if executor not in EXECUTORS:
        raise ToolkitError(f"Unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}.")
    if executor == "ray":
        from .distributed import require_ray
        require_ray()   # before any check or data work
    table = runs.load_table(results)
    jobs = plan(names, context, vary, against, seeds, reference)
    todo = triage(jobs, results, table, rerun, log)
    datasets = check([job for job, _ in todo])
    if executor == "ray":
        from .distributed import run_jobs
        rows = run_jobs(todo, results, address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                        every=every, keep_checkpoints=keep_checkpoints, log=log)
    else:
        rows = _serial(todo, results, datasets, quiet, num_workers, every, keep_checkpoints, log)
    run_ids = [row["run_id"] for row in rows]
    table = runs.load_table(results)
    involved = {(j.recipe.name, config_id(j.recipe)) for j in jobs}
    rows = table[[(n, c) in involved for n, c in zip(table["name"], table["config_id"])]]
    summary, written = _summarize_and_write(rows, table, against, Path(out or Path(results) / "last_run"))
    return Sweep(jobs, table[table["run_id"].isin(run_ids)], summary, written)


EXECUTORS = ("serial", "ray")


def _serial(todo, results, datasets, quiet, num_workers, every, keep_checkpoints, log):
    """Run the jobs one after another in this process; yields each one's row as it is recorded."""
    for i, (job, run_dir) in enumerate(todo, 1):
        r = job.recipe
        log(f"[{i}/{len(todo)}] {r.name}{' (reference)' if job.role == 'reference' else ''} on "
            f"{Path(r.dataset).name} (seed {r.seed})" + (f", resuming {run_dir}" if run_dir else ""))
        row = run_job(job, results, datasets, quiet=quiet, num_workers=num_workers, run_dir=run_dir, every=every,
                      keep_checkpoint=keep_checkpoints)
        log(f"    {outcome(row)}")
        yield row


def outcome(row: dict) -> str:
    """One line for a finished job: its accuracy (and with TTA), time and folder."""
    tta = row.get("accuracy_tta")
    return (f"accuracy {100 * row['accuracy']:.1f}%" + (f", with TTA {100 * tta:.1f}%" if tta not in ("", None) else "")
            + f" in {row['wall_seconds']:.0f}s -> {row['run_dir']}")


def resume(run_dir: str | Path, quiet: bool = False, every: float | None = None, keep_checkpoints: bool = False,
           log=print) -> dict:
    """Resume one unfinished run in its own folder (RESULTS/runs/<run>) and record it; returns its row."""
    run_dir = Path(run_dir)
    st = runs.read_status(run_dir)
    if st["status"] == "finished":
        raise ToolkitError(f"{run_dir} is finished; nothing to resume (`toolkit run ... --rerun` runs it again).")
    if st["status"] == "running":
        raise ToolkitError(f"{run_dir} is running now (pid {st.get('pid')}); stop that process first.")
    recipe, context = replay(run_dir / "recipe.json")
    results = run_dir.parent.parent
    log(f"resuming {recipe.name} (seed {recipe.seed}) in {run_dir}, {st['status']} after "
        f"{runs.epochs_done(run_dir)} epoch(s)")
    return run_job(Job(recipe, context), results, quiet=quiet, run_dir=run_dir, every=every,
                   keep_checkpoint=keep_checkpoints)


# --- comparing ---------------------------------------------------------------------------------------

def compare(results: str | Path = "results", names=None, dataset: str | None = None, against: str | None = None,
            out: str | Path | None = None, budget: str | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Compare finished runs in the results table (all, or those matching `names` / `dataset` / `budget`)."""
    table = runs.load_table(results)
    if table.empty:
        raise ToolkitError(f"No finished runs in {Path(results) / runs.TABLE}; `toolkit run NAME` makes some.")
    if against is not None:
        registry.get(against)
    rows = table
    if names:
        import fnmatch
        patterns = [m for n in names for m in (registry.list_suites().get(n) or (n,))]
        rows = rows[[any(fnmatch.fnmatchcase(e, p) for p in patterns) for e in rows["name"]]]
    if dataset:  # a name, a path, or just the folder's name
        rows = rows[[d == dataset or Path(d).name == Path(dataset).name for d in rows["dataset"]]]
    if budget:
        rows = rows[rows["budget"] == budget]
    if rows.empty:
        raise ToolkitError("No finished run matches those experiment names / dataset / budget; `toolkit compare` with no "
                           "arguments compares everything in the table.")
    unfinished = runs.list_runs(results)
    unfinished = unfinished[unfinished["status"] != "finished"] if len(unfinished) else unfinished
    if len(unfinished):
        counts = unfinished["status"].value_counts()
        warnings.warn(f"{len(unfinished)} unfinished run folder(s) left out of the comparison "
                      f"({', '.join(f'{n} {s}' for s, n in counts.items())}); `toolkit runs` lists them, and "
                      f"running the same command again resumes the killed and interrupted ones.", stacklevel=2)
    return _summarize_and_write(rows, table, against, Path(out or Path(results) / "compare"))


def _summarize_and_write(rows, table, against, prefix: Path):
    from . import report
    table = annotate(table, against)
    summary = report.summarize(table.loc[rows.index], table)
    return summary, report.write_comparison(table.loc[rows.index], summary, prefix)


def annotate(table: pd.DataFrame, against: str | None = None) -> pd.DataFrame:
    """The table with what a report needs to label and pair each row: its label and label settings, and its
    reference's name, label settings and config_id (see `reference_recipe`)."""
    cols = ["label", "changes", "reference", "reference_name", "reference_changes", "reference_config_id"]
    if table.empty:
        return table.assign(**{c: [] for c in cols})
    out, missing = {c: [] for c in cols}, {}
    for _, row in table.iterrows():
        recipe = runs.row_recipe(row)
        context = json.loads(row["context"] or "{}")
        items = label_changes(recipe, context)
        out["label"].append(label(recipe.name, items))
        out["changes"].append(json.dumps(items))
        try:
            ref = reference_recipe(recipe, context, against)
            ref_items = label_changes(ref)
            values = [label(ref.name, ref_items), ref.name, json.dumps(ref_items), config_id(ref)]
        except (ToolkitError, ValueError) as e:  # the reference is no longer registered, or its data is gone
            missing[row["name"]] = str(e)
            values = ["", "", "{}", ""]
        for c, v in zip(cols[2:], values):
            out[c].append(v)
    for name, why in missing.items():
        warnings.warn(f"no reference for {name!r}, so no difference is shown for it: {why}", stacklevel=2)
    return table.assign(**out)


def label_of(recipe: Recipe) -> str:
    """`baseline [lr=0.01]`: the recipe's name and the settings in which it differs from its registered self."""
    return label(recipe.name, label_changes(recipe))


def label_changes(recipe: Recipe, context: dict | None = None) -> dict[str, str]:
    """The settings a recipe's label adds to its name: where it differs from the registered recipe it stands for
    (for a variant `NAME [k=v]`: from NAME, beyond k; for a recipe never registered: its `context`).
    Settings shown as table columns are left out."""
    base, skip = registry.registered(recipe.name), {*METADATA, *SHOWN}
    if base is None:
        bracket = re.fullmatch(rf"{re.escape(recipe.parent)} \[(.*)\]", recipe.name) if recipe.parent else None
        base = registry.registered(recipe.parent) if bracket else None
        if base is None:
            return {k: format_value(getattr(recipe, k)) for k in sorted(context or {}) if k not in skip}
        skip |= set(re.findall(r"(?:^|, )(\w+)=", bracket.group(1)))
    return {k: format_value(v) for k, v in changes(recipe, base, skip=skip).items()}
