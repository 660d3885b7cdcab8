"""`toolkit search`: Optuna proposes settings of one recipe, each trial an ordinary run, and the best are then
confirmed on fresh seeds (toolkit/sweep/confirm.py) rather than crowned.

A space is a few recipe fields, each a range or a choice:

    lr=log(1e-4,1e-1)          a float (an int field: an int) between the bounds, sampled on a log scale
    label_smoothing=uniform(0,0.2)   the same on a linear scale
    mixup=0,0.2,0.4            a choice among numbers (commas separate a number field's values, as --vary's)
    tta=flip  tta=crops        a choice among texts: the key repeated

The study lives in Optuna's own storage, RESULTS/search.db (SQLite), and this process alone writes it (ask and
tell; workers never touch it; a lock refuses a second driver of the same study). Every trial runs on the recipe's
own seed, as a job of the sweep: its own config id, run folder and row, skipped when the table already has it,
resumed when it was killed. A search killed and run again goes on: a trial left running is marked failed and its
settings are asked again, so its run folder resumes; --trials counts the study's trials in all. A pruner
(Optuna's successive halving or Hyperband) is told each epoch's accuracy and stops the hopeless trials; a pruned
run is marked `pruned` in its folder, never resumed, and never enters the table or a comparison.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import PRUNERS, SAMPLERS
from ..errors import Pruned, RunInterrupted, ToolkitError
from ..recipes.overrides import check_settings, is_number_field
from ..recipes.recipe import Recipe
from ..recipes.stages import stage_plan
from ..records.schema import field_type
from . import execute
from .auto import connected
from .options import Options
from .plan import Plan, check

STORAGE = "search.db"   # the studies of a results folder: Optuna's SQLite storage, in RESULTS/
_RANGE = re.compile(r"^(log|uniform)\(\s*([^,()]+)\s*,\s*([^,()]+)\s*\)$")
FORMS = ("KEY=log(LOW,HIGH), KEY=uniform(LOW,HIGH), KEY=V1,V2,... for a number field, or KEY=TEXT repeated for a "
         "text field")


@dataclass(frozen=True)
class Dim:
    """One field of a space: a range (`scale` log or uniform, `low`, `high`; an int field samples ints) or a
    choice (`choices`, each as the recipe holds it)."""
    key: str
    scale: str = "choice"
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    integer: bool = False

    def spec(self) -> str:
        return (f"{self.key}={self.scale}({self.low:g},{self.high:g})" if self.scale != "choice" else
                f"{self.key}={','.join(map(str, self.choices))}")

    def distribution(self):
        import optuna.distributions as d
        if self.scale == "choice":
            return d.CategoricalDistribution(self.choices)
        if self.integer:
            return d.IntDistribution(int(self.low), int(self.high), log=self.scale == "log")
        return d.FloatDistribution(self.low, self.high, log=self.scale == "log")


def parse_space(space, sampler: str = "tpe") -> dict[str, Dim]:
    """--space as {key: Dim}, every value checked before anything runs: `space` as the launcher's KEY=SPEC items
    (a key repeated adds choices), or from Python a dict {key: "log(a,b)" | [choices] | one value}."""
    if sampler not in SAMPLERS:
        raise ToolkitError(f"--sampler must be one of {', '.join(SAMPLERS)} (got {sampler!r}).")
    items = _items(space)
    if not items:
        raise ToolkitError(f"A search needs a space: give --space {FORMS}, e.g. --space 'lr=log(1e-4,1e-1)'.")
    dims: dict[str, Dim] = {}
    for key, specs in items.items():
        if key not in Recipe.__dataclass_fields__:   # an unknown key: the recipe's error, with close matches
            check_settings({key: specs[0] if specs else ""}, f"--space {key}")
        bad = [s for s in specs if isinstance(s, str) and "(" in s and not _RANGE.match(s)]
        if bad:
            raise ToolkitError(f"--space {key}={bad[0]} is no range: give {FORMS} (a range is log(LOW,HIGH) or "
                               f"uniform(LOW,HIGH), lower case, two bounds).")
        ranges = [_RANGE.match(s) for s in specs if isinstance(s, str)]
        if any(ranges):
            if len(specs) > 1:
                raise ToolkitError(f"--space {key}: give a range once, or a choice of values, not both ({specs}).")
            dims[key] = _range(key, ranges[0], sampler)
        else:
            dims[key] = _choice(key, specs)
    return dims


def _items(space) -> dict[str, list]:
    out: dict[str, list] = {}
    if isinstance(space, dict):
        for k, v in space.items():
            out.setdefault(k, []).extend(list(v) if isinstance(v, (list, tuple)) else [v])
        return out
    for item in [space] if isinstance(space, str) else list(space or []):
        if "=" not in str(item):
            raise ToolkitError(f"--space {item!r} is not of the form {FORMS}.")
        k, v = (x.strip() for x in str(item).split("=", 1))
        if "(" in v or not is_number_field(k):
            out.setdefault(k, []).append(v)
        else:
            out.setdefault(k, []).extend(x.strip() for x in v.split(",") if x.strip())
        if not v:
            raise ToolkitError(f"--space {k}= gives no value: an empty choice. Give {FORMS}.")
    return out


def _range(key: str, m, sampler: str) -> Dim:
    scale, low, high = m.group(1), m.group(2), m.group(3)
    if not is_number_field(key):
        raise ToolkitError(f"--space {key}={m.group(0)}: {key} is a text field, which takes a choice of values "
                           f"(--space {key}=A --space {key}=B), not a range.")
    if sampler == "grid":
        raise ToolkitError(f"--space {key}={m.group(0)}: the grid sampler tries every value of a finite choice; give "
                           f"{key} as values (--space {key}=A,B,C) or use --sampler tpe or random.")
    try:
        low, high = float(low), float(high)
    except ValueError:
        raise ToolkitError(f"--space {key}={m.group(0)}: the bounds must be numbers.") from None
    if not low < high:
        raise ToolkitError(f"--space {key}={m.group(0)}: the lower bound must be below the upper one.")
    if scale == "log" and low <= 0:
        raise ToolkitError(f"--space {key}={m.group(0)}: a log scale needs bounds above 0; use uniform(...) for a "
                           f"range from {low:g}.")
    integer = field_type(key) is int
    if integer and (low != int(low) or high != int(high)):
        raise ToolkitError(f"--space {key}={m.group(0)}: {key} is a whole number; give whole bounds.")
    for bound in (low, high):
        check_settings({key: int(bound) if integer else bound}, f"--space {key}={m.group(0)}")
    return Dim(key, scale, low, high, integer=integer)


def _choice(key: str, specs: list) -> Dim:
    if not specs:
        raise ToolkitError(f"--space {key}: an empty choice. Give {FORMS}.")
    values = []
    for v in specs:
        value = getattr(check_settings({key: v}, f"--space {key}={v}"), key)
        # Optuna's choices are numbers, texts or None: a tuple field (callbacks) keeps the text it was given
        values.append(value if value is None or isinstance(value, (bool, int, float, str)) else str(v))
    return Dim(key, choices=tuple(dict.fromkeys(values)))


def canonical(dims: dict[str, Dim]) -> str:
    return " ".join(d.spec() for _, d in sorted(dims.items()))


# ----------------------------------------------------------------------------------------------------- the study

@dataclass
class Search:
    """What a search did: its study (name, storage), the trials as a table, what ran, and the settings it ranks
    best (params, their trial's accuracy)."""
    study: object
    name: str
    storage: str
    dims: dict
    trials: object                 # pandas.DataFrame: number, state, params, accuracy, epochs, run
    recipe: object
    sampler: str
    pruner: str
    ran: int = 0                   # trials run by this call
    seconds: float = 0.0
    best: list = field(default_factory=list)   # [(params, accuracy)], best first, distinct settings


def study_name(recipe, dims: dict[str, Dim], sampler: str, pruner: str = "none") -> str:
    """A study per recipe (as resolved under its context), space, sampler and pruner."""
    from ..recipes.identity import config_id
    digest = hashlib.sha1(f"{config_id(recipe)} {canonical(dims)} {sampler} {pruner}".encode()).hexdigest()[:8]
    return f"{recipe.name}-{sampler}-{digest}"


def _sampler(name: str, dims: dict[str, Dim], seed: int):
    import optuna
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({k: list(d.choices) for k, d in dims.items()}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(name: str, epochs: int):
    import optuna
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(2, epochs))
    return optuna.pruners.NopPruner()


def open_study(results: Path, name: str, dims: dict[str, Dim], sampler: str, pruner: str, recipe, seed: int):
    """The study `name` in RESULTS/search.db, created or loaded; one opened before with another space, sampler or
    recipe is refused."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from ..recipes.identity import config_id
    storage = f"sqlite:///{(results / STORAGE).resolve()}"
    said = {"space": canonical(dims), "sampler": sampler, "pruner": pruner, "recipe": recipe.name,
            "config_id": config_id(recipe)}
    done = len(_finished(optuna.load_study(study_name=name, storage=storage))) \
        if name in optuna.get_all_study_names(storage) else 0
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=_sampler(sampler, dims, seed + done), pruner=_pruner(pruner, recipe.epochs))
    old = study.user_attrs
    if old and any(old.get(k) != v for k, v in said.items()):
        differs = "; ".join(f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in said.items() if old.get(k) != v)
        raise ToolkitError(f"The study {name!r} in {results / STORAGE} was opened with another search ({differs}). "
                           f"A study is one recipe, one space, one sampler and one pruner: give another --study name, "
                           f"or the same search as before.")
    for k, v in said.items():
        study.set_user_attr(k, v)
    return study, storage


def _finished(study) -> list:
    import optuna
    return [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def _take_over(study, log) -> None:
    """Trials left running by a killed driver: marked failed, their settings asked again (their folders resume)."""
    import optuna
    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            _tell(study, t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params, skip_if_exists=False)
            log(f"search: trial {t.number} was left running by a stopped search; its settings are asked again and "
                f"its run resumes")


def search(recipe_name, context: dict, space, trials: int, sampler: str = "tpe", pruner: str = "none",
           options: Options = Options(), study: str | None = None, log=print) -> Search:
    """Run the study's trials until it holds `trials` finished ones (complete or pruned), each an ordinary run of
    the recipe with the trial's settings on the recipe's own seed; returns the search with its best settings."""
    if pruner not in PRUNERS:
        raise ToolkitError(f"--pruner must be one of {', '.join(PRUNERS)} (got {pruner!r}).")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ToolkitError(f"--trials must be a whole number of at least 1 (got {trials!r}).")
    dims = parse_space(space, sampler)
    base = Plan.of([recipe_name], context)
    if len(base.rows) != 1:
        raise ToolkitError(f"A search tunes one recipe; {recipe_name!r} names {len(base.rows)}.")
    recipe = base.rows[0].recipe
    if pruner != "none" and options.executor == "ray":
        raise ToolkitError("--pruner stops trials from the epochs this process sees; under --executor ray the trials "
                           "run elsewhere. Use --pruner none with Ray, or the serial executor with a pruner.")
    if sampler == "grid":
        import math
        size = math.prod(len(d.choices) for d in dims.values())
        if trials > size:
            log(f"search: the grid has {size} setting(s); --trials {trials} is capped there")
            trials = size
    bounds = Plan.of([recipe_name], context, grid=[_values(dims, lo=True), _values(dims, lo=False)])
    check(bounds.jobs(1, reference=False))   # the space's bounds run: fail before the first trial
    results = Path(options.results)
    name = study or study_name(recipe, dims, sampler, pruner)
    with _one_driver(results, name):
        opened, storage = open_study(results, name, dims, sampler, pruner, recipe, recipe.seed)
        _take_over(opened, log)
        t0, ran = time.perf_counter(), 0
        with connected(options):   # under --executor ray, one connection for every trial
            while len(_finished(opened)) < trials:
                trial = opened.ask({k: d.distribution() for k, d in dims.items()})
                ran += 1
                _run_trial(opened, trial, recipe_name, context, options, log, len(_finished(opened)) + 1, trials,
                           dims)
        out = Search(opened, name, storage, dims, trial_table(opened, dims), recipe, sampler, pruner, ran,
                     time.perf_counter() - t0)
        out.best = best(opened, dims)
        return out


@contextlib.contextmanager
def _one_driver(results: Path, name: str):
    """This process alone drives the study `name`: a second search of it is refused at once, clearly."""
    from filelock import FileLock, Timeout
    if not re.fullmatch(r"[\w.-]+", name):
        raise ToolkitError(f"--study {name!r}: a study's name is letters, digits, '.', '_' and '-' (it names a lock "
                           f"file in the results folder).")
    results.mkdir(parents=True, exist_ok=True)
    guard = FileLock(str(results / f".search-{name}.lock"))
    try:
        guard.acquire(timeout=0)
    except Timeout:
        raise ToolkitError(f"Another search is driving the study {name!r} in {results / STORAGE} now (its lock "
                           f"{guard.lock_file} is held). Wait for it to finish, or give another --study name.") from None
    try:
        yield
    finally:
        guard.release()


def _values(dims: dict[str, Dim], lo: bool) -> dict:
    return {k: (d.choices[0 if lo else -1] if d.scale == "choice" else
                (int(d.low if lo else d.high) if d.integer else (d.low if lo else d.high))) for k, d in dims.items()}


def _run_trial(study, trial, recipe_name, context, options: Options, log, k: int, n: int, dims=None) -> None:
    """One trial: its settings as a variant of the recipe (the recipe itself where they are its own), run (or found
    in the table) on the recipe's own seed, told to the study: its final accuracy, or pruned."""
    import optuna
    try:
        params = setting(trial.params, dims)
        plan = Plan.of_settings(recipe_name, context, [params])
        row = plan.rows[0]
        jobs = plan.jobs(1, reference=False)
        trial.set_user_attr("config_id", row.key[1])
        log(f"search: trial {trial.number} ({k}/{n}): " + ", ".join(
            f"{p}={v:.4g}" if isinstance(v, float) else f"{p}={v}" for p, v in params.items()))
        planned = sum(e for _, e, *_ in stage_plan(row.recipe, row.recipe.size))

        def report(epoch: dict) -> None:   # a trial at its last epoch has spent what it costs: it finishes
            trial.report(float(epoch["accuracy"]), step=int(epoch["epoch"]))
            if int(epoch["epoch"]) + 1 < planned and trial.should_prune():
                raise Pruned(epoch["epoch"] + 1, float(epoch["accuracy"]))

        done = execute.run_jobs(jobs, options, log, plan.label, on_epoch=report if options.executor != "ray" else None,
                                keep_pruned=True)
    except Pruned as e:
        log(f"    pruned after {e.epochs} epoch(s) at {100 * e.accuracy:.1f}%")
        trial.set_user_attr("epochs_run", e.epochs)
        _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
        return
    except (KeyboardInterrupt, RunInterrupted):   # left running: the next search asks it again, its run resumes
        raise
    except Exception:   # its cause is the user's to fix: the next search asks other settings
        _tell(study, trial, state=optuna.trial.TrialState.FAIL)
        raise
    seed = row.recipe.seed
    mine = done.involved[(done.involved["config_id"] == row.key[1]) & (done.involved["seed"].astype(int) == seed)]
    if mine.empty:   # no row: a run of these settings the pruner stopped before, or one left alone (running)
        return _without_row(study, trial, row.recipe, options, log)
    trial.set_user_attr("run_dir", str(mine.iloc[-1]["run_dir"]))
    trial.set_user_attr("epochs_run", planned if len(done.rows) else 0)   # 0: found in the table, not run again
    _tell(study, trial, float(mine.iloc[-1]["accuracy"]))


def _without_row(study, trial, recipe, options: Options, log) -> None:
    """A trial whose run left no row: pruned again if its folder was pruned; else its folder is running or on
    another host, and the search stops with a clear message (the trial is asked again next time)."""
    import optuna
    from ..recipes.identity import config_id
    from ..records import folders
    last = folders.find_runs(options.results).get((recipe.name, config_id(recipe), recipe.seed), [None])[-1]
    status = folders.read_status(last)["status"] if last else "none"
    if status == "pruned":
        log("    its run was pruned before: pruned again, never resumed")
        trial.set_user_attr("epochs_run", 0)
        _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
        return
    raise ToolkitError(f"The run of trial {trial.number} ({recipe.name}) is {status} in {last}, so it has no result "
                       f"yet. Let it finish (or stop it, then `toolkit resume {last}`), and run the search again: the "
                       f"trial is asked again.")


def setting(params: dict, dims: dict[str, Dim] | None = None) -> dict:
    """A trial's settings as its run takes them: a float sampled from a range to 3 significant digits (lr=0.00561,
    not 0.005611516...), kept within its bounds, so that labels read as people write them; two trials that round
    alike are one setting, run once. A choice is run as given."""
    def rounded(k, v):
        d = (dims or {}).get(k)
        if not isinstance(v, float) or (d is not None and d.scale == "choice"):
            return v
        v = float(f"{v:.3g}")
        return v if d is None else min(max(v, d.low), d.high)
    return {k: rounded(k, v) for k, v in params.items()}


def _tell(study, trial, *args, **kwargs) -> None:
    """study.tell; the grid sampler, told its last setting, asks the study to stop, which Optuna allows only inside
    `optimize` (the trial is stored before that): the loop ends there anyway, as --trials is capped at the grid."""
    try:
        study.tell(trial, *args, **kwargs)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


def trial_table(study, dims: dict[str, Dim] | None = None):
    """Every trial: its number, state, settings, accuracy (final, or the last epoch's when pruned), the epochs this
    search ran for it (0 where the table held it already; none for a failed one) and its run folder."""
    import pandas as pd
    rows = []
    for t in study.trials:
        steps = t.intermediate_values
        rows.append({"trial": t.number, "state": t.state.name.lower(), **setting(t.params, dims),
                     "accuracy": t.value if t.value is not None else (steps[max(steps)] if steps else None),
                     "epochs run": t.user_attrs.get("epochs_run"), "run_dir": t.user_attrs.get("run_dir", "")})
    return pd.DataFrame(rows)


def best(study, dims: dict[str, Dim] | None = None, k: int | None = None) -> list[tuple[dict, float]]:
    """The study's complete trials, best first, one per distinct setting: [(params, accuracy)]."""
    import optuna
    done = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: -t.value)
    out, seen = [], set()
    for t in done:
        params = setting(t.params, dims)
        key = json.dumps(params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((params, float(t.value)))
    return out if k is None else out[:k]
