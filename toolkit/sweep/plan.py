"""Planning a sweep: names -> resolved recipes x seeds, each paired with its reference -> checked jobs.

Vocabulary:
  context    overrides that apply to a recipe and to its reference alike (--dataset, --size, --epochs, --set)
  vary       overrides that make a variant `NAME [k=v]` of a recipe, compared with NAME itself (--vary); a grid
             when a key has several values (`lr=1e-3,1e-2`: commas separate numbers; any field: --vary repeated,
             `--vary tta=flip --vary tta=crops`; from Python a list), one variant per value, keys multiplied
  reference  what a recipe is compared with: `against` if given, else its parent, else the baseline,
             always under the same context; run for the seeds it lacks unless `reference=False`
  auto       what precision=auto and channels_last=auto meant on the device a sweep was planned on
             (toolkit/train/precision.py); recorded with every run, so that its reference is found again anywhere
"""
from __future__ import annotations

import difflib
import itertools
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..data.datasets import canonical_name, of_recipe
from ..errors import RecipeError, ToolkitError
from ..recipes import registry
from ..recipes.components import with_code
from ..defaults import GRID_MAX
from ..recipes.recipe import LEGACY, Recipe
from ..recipes.identity import config_id, format_value, label
from ..recipes.overrides import apply_overrides, check_settings, is_number_field, pairs
from ..records import folders
from ..records.schema import meaning
from ..train import precision
from ..train.resolve import reference_recipe, resolve_recipe


@dataclass(frozen=True)
class Job:
    """One run to do: a resolved recipe (with its seed), the context it was asked for under, and what its row will
    mean (`records.schema.meaning`: its label, role and reference), all decided here, when it is planned."""
    recipe: Recipe
    context: dict
    role: str = "recipe"   # "recipe", or "reference" (run so that a recipe has something to be compared with)
    auto: dict = field(default_factory=precision.choice)  # what `auto` meant when the job was planned
    meaning: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return self.recipe.name, config_id(self.recipe), self.recipe.seed


def context_of(overrides: dict | list | None = None, **settings) -> dict:
    """The context as recorded: {key: value as text}, checked against the recipe's fields, dataset canonical."""
    given = pairs(overrides)
    given.update({k: v for k, v in settings.items() if v is not None})
    if type(given.get("dataset")).__name__ == "DataFrame":   # from Python: read from a file named by its content
        given.update(dataset_frame(given["dataset"], given.get("folder", "")))
    check_settings(given, "A setting")  # unknown keys and bad values fail here, before anything runs
    out = {k: str(v) for k, v in sorted(given.items())}
    if "dataset" in out:
        out["dataset"] = canonical_name(out["dataset"])
    return out


def dataset_frame(df, folder: str = "") -> dict:
    """A DataFrame of file names and labels as context: written to a content-hashed CSV (so a Ray worker, `resume`
    and `--config` read the same data from the recipe alone), its relative file names read from `folder` (relative
    to the working folder; default: the working folder itself), made absolute."""
    from ..data.datasets import toolkit_home
    from ..data.sources import table_file
    return {"dataset": table_file(df, toolkit_home()), "folder": str(Path(folder or ".").resolve())}


_NO_LIMIT = 10 ** 9   # the limit is checked once, where a sweep starts (`grid_line`)


def treatments(vary, limit: int | None = None) -> list[dict]:
    """--vary as one treatment per variant: the product of each key's values, each value typed and checked, in the
    order given (a value given twice kept once). Commas separate the values of a number field only (`tta=flip,crops`
    is one value); a key repeated adds values; from Python, a list is a grid and anything else one value. More than
    `limit` (default GRID_MAX) variants is refused."""
    if not vary:
        return [{}]
    values: dict[str, list] = {}
    if isinstance(vary, dict):
        for k, v in vary.items():
            values.setdefault(k, []).extend(v if isinstance(v, list) else [v])
    else:
        for item in [vary] if isinstance(vary, str) else vary:
            if "=" not in item:
                raise RecipeError(f"--vary {item!r} is not of the form key=value (for example --vary lr=1e-3,1e-2).")
            k, v = (x.strip() for x in item.split("=", 1))
            values.setdefault(k, []).extend([x.strip() for x in v.split(",")] if is_number_field(k) else [v])
    typed = {}
    for k, vs in values.items():
        parsed = [getattr(check_settings({k: v}, f"--vary {k}={v}"), k) for v in vs]   # unknown keys, bad values
        typed[k] = list(dict.fromkeys(parsed))
    grid = [dict(zip(typed, combo)) for combo in itertools.product(*typed.values())]
    limit = GRID_MAX if limit is None else limit
    if len(grid) > limit:
        raise RecipeError(f"--vary makes a grid of {len(grid):,} variants ({' x '.join(f'{len(v)} {k}' for k, v in typed.items())}), "
                          f"more than {limit}: each runs with every seed. Give fewer values, or pass --grid-max "
                          f"{len(grid)} to run it anyway.")
    return grid


def variant(recipe: Recipe, vary: dict | list | None) -> Recipe:
    """`recipe` with the treatment `vary` applied, named `NAME [k=v, ...]` and compared with `recipe`."""
    treatment = pairs(vary)
    if not treatment:
        return recipe
    varied = apply_overrides(recipe, treatment)
    items = {k: format_value(getattr(varied, k)) for k in treatment}
    return replace(varied, name=label(recipe.name, items), parent=recipe.name)


@dataclass(frozen=True)
class Row:
    """One row of a comparison, decided once when a sweep is planned: the recipe as it will run (at its first seed),
    the recipe it was made from and the treatment that made it, its reference as it will run (None: it is its own),
    and what its rows and its reference's will mean in the records (`records.schema.meaning`)."""
    recipe: Recipe
    base: Recipe
    treatment: dict
    reference: Recipe | None
    meaning: dict
    reference_meaning: dict

    @property
    def key(self) -> tuple:
        return self.recipe.name, config_id(self.recipe)

    @property
    def reference_key(self) -> tuple:
        return self.key if self.reference is None else (self.reference.name, config_id(self.reference))


@dataclass(frozen=True)
class Plan:
    """A sweep, planned once from names, `vary`, `against` and the context: its rows (see `Row`). It says what a
    grid will run (`line`) and gives the jobs for the seeds asked (`jobs`), of every row or of some (the looks of
    --seeds auto choose rows and seeds; nothing is planned again)."""
    rows: tuple
    context: dict
    grid: tuple                  # the treatments: one per variant of each recipe ({} alone: no --vary)
    recipes: tuple               # the recipes the names stand for, before the context and any variant
    own: tuple = ()              # grid values that are a recipe's own setting (their row is the recipe itself)
    auto: dict = field(default_factory=precision.choice)   # what `auto` meant when it was planned
    label: str = "sweep"         # the names, as a tracker names the sweep
    against: str | None = None   # every row compared with this recipe (else each with its parent)

    @classmethod
    def of(cls, names, context: dict | None = None, vary=None, against: str | None = None,
           limit: int | None = None, grid: list[dict] | None = None) -> "Plan":
        """Plan `names` (experiment names, wildcard patterns, suites, or Recipe objects) under `context`: each
        recipe, or with `vary` each of its variants, resolved with its reference (`against`, else its parent, else
        the baseline, under the same context). More than `limit` variants (default GRID_MAX) is refused. `grid`:
        the variants' treatments given as they are, instead of `vary`'s product (a search's picks)."""
        context, auto = context or {}, precision.choice()
        if against is not None:
            registry.get(against)  # an unknown name fails here, with close matches
        grid = treatments(vary, limit) if grid is None else [treatments(t)[0] for t in grid] or [{}]
        items = [names] if isinstance(names, (str, Recipe)) else list(names)
        bases = list({r.name: r for item in items
                      for r in ([item] if isinstance(item, Recipe) else registry.expand(item))}.values())
        rows, own = {}, []
        for base in bases:
            given = apply_overrides(base, context)
            itself = resolve_recipe(given, context, against)
            for t in grid:   # a value that is the recipe's own makes no variant: the recipe, their reference, is it
                made = resolve_recipe(variant(given, t), context, against) if t else itself
                if t and config_id(made) == config_id(itself):
                    own.append(f"{', '.join(f'{k}={format_value(v)}' for k, v in t.items())} is {base.name}'s own")
                    continue
                ref = reference_recipe(made, context, against)   # what it is compared with in this sweep
                parent = ref if against is None else reference_recipe(made, context)   # what its records say
                ref = None if config_id(ref) == config_id(made) else ref   # the baseline is its own reference
                row = Row(made, base, t, ref, meaning(made, context, "recipe", auto, parent),
                          meaning(ref, context, "reference", auto, reference_recipe(ref, context))
                          if ref is not None else {})
                rows.setdefault(row.key, row)
        label = "-".join(item if isinstance(item, str) else item.name for item in items)
        return cls(tuple(rows.values()), context, tuple(grid), tuple(bases), tuple(own), auto, label, against)

    @classmethod
    def of_settings(cls, recipe, context: dict, settings: list[dict]) -> "Plan":
        """The plan of these settings of one recipe (a search's trial, or its picks on fresh seeds): each a variant
        compared with the recipe; settings that are all the recipe's own make the recipe itself."""
        plan = cls.of([recipe], context, grid=settings)
        return plan if plan.rows else cls.of([recipe], context)

    def line(self, seeds) -> str:
        """What a grid will run, said before it starts: variants per recipe, values that are a recipe's own, runs."""
        if len(self.grid) < 2:
            return ""
        made, n = len(self.rows), len(self.recipes)
        per = f"{seeds} seed(s)" if isinstance(seeds, int) else "--seeds auto"
        return (f"grid: {len(self.grid)} value(s) x {n} recipe(s): {made} variant(s), each compared with its "
                f"recipe, with {per}" + (f" ({(made + n) * seeds} runs with the recipes themselves)"
                                         if isinstance(seeds, int) else "")
                + (f"; {'; '.join(self.own)} setting: that value's row is the recipe itself, their reference"
                   if self.own else ""))

    def jobs(self, seeds: int = 1, keys=None, reference: bool = True) -> list[Job]:
        """The jobs of `seeds` seeds of every row (or of the rows of `keys`), each preceded by its reference's run
        with that seed (unless not `reference`). What the results already hold is skipped later (`triage`)."""
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise RecipeError(f"--seeds must be a whole number of at least 1, or auto (got {seeds}).")
        jobs: dict[tuple, Job] = {}
        for row in self.rows:
            if keys is not None and row.key not in keys:
                continue
            r, ref = row.recipe, row.reference if reference else None
            for seed in range(r.seed, r.seed + seeds):
                if ref is not None:
                    job = Job(replace(ref, seed=seed), self.context, "reference", self.auto, row.reference_meaning)
                    jobs.setdefault(job.key, job)
                job = Job(replace(r, seed=seed), self.context, auto=self.auto, meaning=row.meaning)
                if job.key not in jobs or jobs[job.key].role == "reference":  # asked for by name: a recipe after all
                    jobs[job.key] = job
        return list(jobs.values())


def plan(names, context: dict | None = None, vary=None, against: str | None = None, seeds: int = 1,
         reference: bool = True) -> list[Job]:
    """The jobs of a sweep: every recipe x seed, each preceded by its reference's run with that seed."""
    return Plan.of(names, context, vary, against, _NO_LIMIT).jobs(seeds, reference=reference)


def recipes_of(names, context: dict, vary=None, against: str | None = None) -> list[Recipe]:
    """The resolved recipes a sweep of `names` runs (at their first seed), each with `context` and `vary` applied."""
    return [row.recipe for row in Plan.of(names, context, vary, against, _NO_LIMIT).rows]


def grid_line(names, context: dict, vary, seeds, limit: int | None = None) -> str:
    """What a grid will run, said before it starts (see `Plan.line`)."""
    return Plan.of(names, context, vary, None, limit).line(seeds)


def replay(path: str | Path) -> tuple[Recipe, dict]:
    """The recipe and context of a run, from its recipe.json (other keys ignored), to run it again."""
    path = Path(path)
    if path.is_dir():
        path = path / "recipe.json"
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or not isinstance(saved.get("context", {}), dict):
            raise ValueError(f"it holds a JSON {type(saved).__name__}, not a run's recipe (a JSON object of recipe "
                             f"fields and its context)" if not isinstance(saved, dict) else "its context is no object")
        _check_keys(path, saved)
        recipe = Recipe.from_dict({**LEGACY, **saved})   # older runs: fp32
    except (OSError, ValueError, TypeError) as e:
        raise ToolkitError(f"Cannot replay {path}: {type(e).__name__}: {e}. Pass the recipe.json of a run folder "
                           f"(RESULTS/runs/<run>/recipe.json).") from None
    # the code it ran, registered here alike: else a clear error naming the component and the file to pass
    recipe = with_code(recipe, f"The run {path.parent}", saved.get("code_from"))
    return recipe, dict(saved.get("context", {}))


def _check_keys(path: Path, saved: dict) -> None:
    """A replay runs exactly what its file says: a key that is neither a recipe field nor one a run's recipe.json
    holds (a typo, or a field of another tool) is an error, never silently dropped."""
    known = [f.name for f in fields(Recipe)] + list(folders.RUN_INFO)
    unknown = [k for k in saved if k not in known]
    if unknown:
        close = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hints = "; ".join(f"{k!r} (did you mean {c[0]!r}?)" if c else repr(k) for k, c in close.items())
        raise ToolkitError(f"Cannot replay {path}: it holds {len(unknown)} key(s) that are neither recipe fields nor "
                           f"what a run's recipe.json holds: {hints}. A replay runs exactly what its file says, so "
                           f"nothing is dropped: fix or remove them. Recipe fields: {', '.join(f.name for f in fields(Recipe))}.")


def check(jobs: list[Job]) -> dict:
    """Everything that can be checked before the first epoch, once per setting (`train.learner.check`): the runs
    themselves, then their datasets, each loaded once per data key. Returns {data key: loaded dataset}."""
    from ..data.pipeline import data_key
    from ..train.learner import check as check_run   # torch loads only once names and overrides are known good
    recipes = {config_id(j.recipe): j.recipe for j in jobs}.values()
    for recipe in recipes:   # before any data work
        check_run(recipe)
    loaded = {}
    for recipe in recipes:
        if data_key(recipe) not in loaded:
            loaded[data_key(recipe)] = of_recipe(recipe)
        check_run(recipe, loaded[data_key(recipe)])
    return loaded
