"""What `import toolkit` offers a notebook or a script, and what the launcher calls: a sweep and its comparison
(`run`, `compare`), and a recipe as plain fastai objects to iterate on by hand (`dls`, `learner`).

Imports stay inside the functions: `import toolkit` and `toolkit list` load no torch, fastai or pandas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Comparison:
    """A comparison table (`summary`, one line per recipe setting) and the files it was written to (PREFIX.md, .csv,
    .png); `sweep`: what `run` ran (its jobs and the rows it recorded), None for `compare`. Shown as the markdown
    table in a notebook."""
    summary: object                       # pandas.DataFrame
    written: list[Path] = field(default_factory=list)
    sweep: object = None                  # toolkit.sweep.execute.Sweep
    grids: list = field(default_factory=list)   # toolkit.judgment.grid.Grid: the best of each grid
    confirmed: object = None              # Comparison: the picks on fresh seeds (--confirm)
    flips: str = ""                       # which images changed (compare --flips), as markdown

    @property
    def markdown(self) -> str:
        from .report.grid import lines
        from .report.tables import to_markdown
        parts = [to_markdown(self.summary)] + ([self.flips] if self.flips else [])
        parts += ["\n".join(f"- {line}" for line in lines(g)) for g in self.grids]
        if self.confirmed is not None and self.confirmed.summary is not None:
            parts.append("Confirmation on fresh seeds (never pooled with the selection's):\n\n"
                         + self.confirmed.markdown + "\n\n" + "\n".join(f"- {line}" for line in self.confirm_lines()))
        return "\n\n".join(parts)

    def confirm_lines(self) -> list[str]:
        """Each pick's Δ at selection beside its Δ on fresh seeds."""
        out = []
        s, c = self.summary, self.confirmed.summary
        for _, row in c[c["delta_mean"].notna()].iterrows():
            name = str(row["name"])
            sel = s[s["name"] == name]
            if sel.empty:
                continue
            a, b = sel.iloc[0], row
            out.append(f"{name}: Δ {100 * a['delta_mean']:+.1f} pts [{100 * a['delta_low']:+.1f}, "
                       f"{100 * a['delta_high']:+.1f}] on the selection's seeds ({a['seeds']}), "
                       f"{100 * b['delta_mean']:+.1f} pts [{100 * b['delta_low']:+.1f}, {100 * b['delta_high']:+.1f}] "
                       f"({b['delta_verdict']}) on fresh seeds ({b['seeds']}): the selection overstated it by "
                       f"{100 * (a['delta_mean'] - b['delta_mean']):+.1f} pts")
        return out

    @property
    def png(self) -> Path | None:
        return next((p for p in self.written if p.suffix == ".png"), None)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __str__(self) -> str:
        return self.markdown

    def noise_hint(self, context: dict, auto: bool = False) -> str:
        """With inconclusive rows: the `toolkit noise` command that says how many seeds this proxy needs ("")."""
        from .report.tables import noise_hint
        return noise_hint(self.summary, context, auto) if self.summary is not None else ""


def context(overrides=None, dataset: str | None = None, size: int | None = None, epochs: int | None = None,
            budget: str | None = None, **settings) -> dict:
    """The context of a sweep: settings that apply to every recipe and to its reference alike, checked."""
    from .sweep.plan import context_of
    return context_of(overrides, dataset=dataset, size=size, epochs=epochs, budget=budget, **settings)


def run(names, seeds: int | str = 1, vary=None, against: str | None = None, out: str | Path | None = None,
        max_seeds: int | None = None, margin: float | None = None, quiet: bool = False, log=print,
        family: str | None = None, confirm: bool = False, question: str = "new-images", **settings) -> Comparison:
    """Run experiments (names, wildcard patterns, suites or Recipe objects) with `seeds` seeds each, next to their
    references, record every run in RESULTS/runs.csv, and return the comparison of everything involved, written
    to OUT.{md,csv,png} (default RESULTS/last_run): what `toolkit run` does.

    `settings` are of two kinds, told apart by name:
    - the context, applied to each recipe and to its reference alike: `dataset`, `epochs`, `size`, `budget` and
      any recipe field (e.g. `arch="xresnet18", lr=1e-2`);
    - the sweep's options, the fields of toolkit/sweep/options.py: `results`, `progress`, `workers`, `rerun`,
      `reference`, `checkpoint_every`, `keep_checkpoints`, `save_model` (keep each run's final weights; `toolkit
      export` makes a fastai export), `track` (trackers: "tensorboard", "wandb", "mlflow"), `executor`,
      `address`, `cpus_per_run`, `gpus_per_run`.
    `vary={"lr": 1e-2}` makes the variant `NAME [lr=0.01]` compared with NAME; `vary={"lr": [1e-3, 1e-2]}` a grid,
    one variant per value (the product over keys), its rows judged as one family (`family="holm"`, the default for
    a grid; "none": each row alone), the best of it said as the set of values the data cannot tell from the best;
    `confirm=True` runs the pick and NAME again on fresh seeds. `question`: "new-images" (the default: on new
    images like these, seeds and validation images both samples) or "these-images" (the seeds alone; see
    toolkit/judgment/). Run again, it skips finished runs
    and resumes interrupted ones. `seeds="auto"`: as many seeds per row as its verdict needs, up to `max_seeds`
    (default MAX_SEEDS in toolkit/defaults.py), at planned looks (toolkit/sweep/auto.py). `margin`: the margin of
    equivalence of the verdicts, in accuracy points (default MARGIN). `quiet`: no progress at all.
    """
    from .sweep.options import Options
    options, ctx = Options.split(settings, quiet)
    return sweep_and_compare(names, context(**ctx), vary, against, seeds, options, out, max_seeds, margin, log,
                             family=family, confirm=confirm, question=question)


def sweep_and_compare(names, context: dict, vary=None, against: str | None = None, seeds: int | str = 1,
                      options=None, out: str | Path | None = None, max_seeds: int | None = None,
                      margin: float | None = None, log=print, quiet: bool = False, family: str | None = None,
                      confirm: bool = False, question: str = "new-images", **option_values) -> Comparison:
    """`run` with its context already made (`context(...)`, or the launcher's --dataset/--set...) and its options
    as one `Options` (toolkit/sweep/options.py), or as keywords of the same names. A grid (`vary` with lists) adds
    the best of each recipe's grid and its figure (OUT-grid.png); `confirm`: runs the pick and the recipe on fresh
    seeds and compares them (OUT-confirm.*).

    The flow, top to bottom: plan once (toolkit/sweep/plan.py) -> run and record (sweep/) -> judge
    (toolkit/judgment/) -> write (toolkit/report/) -> confirm on fresh seeds (sweep/confirm.py), judged and
    written alike."""
    from .atomic import check_folder
    from .judgment.grid import grids
    from .judgment.summary import check_margin, judged
    from .report.compare import write_comparison
    from .report.grid import figure
    from .sweep import confirm as confirming
    from .sweep.auto import sweep
    from .sweep.options import Options
    from .sweep.plan import Plan
    options = options or Options.of(quiet, **option_values)
    out = Path(out or check_folder(options.results, "--results") / "last_run")
    check_folder(out.parent, "--out")   # before anything trains
    margin = check_margin(margin)
    _check_question(question)
    plan = Plan.of(names, context, vary, against, options.grid_max)
    if confirm and len(plan.grid) < 2:   # before anything trains
        from .errors import ToolkitError
        raise ToolkitError("--confirm confirms the pick of a grid: give --vary with several values (and at least 3 "
                           "seeds). Nothing was run.")
    if plan.line(seeds):
        log(plan.line(seeds))
    done, design = sweep(plan, seeds, max_seeds, margin, options, log, family, question)
    rows, summary = judged(done.involved, done.table, against, margin, design, family, question)
    keys = list(plan.grid[0])
    found = grids(done.involved, summary, keys) if keys else []
    result = Comparison(summary, write_comparison(rows, summary, out), done, found)
    if found and len(keys) == 1:
        result.written.append(figure(found[0], out.with_name(f"{out.name}-grid.png")))
    if confirm:
        plans, n = confirming.grid_picks(found, context, against, log)
        result.confirmed = Comparison(None, [])
        if plans:
            again = confirming.confirm(plans, n, options, log, margin, "none", question)
            rows, summary = judged(again.involved, again.table, against, margin, None, "none", question)
            result.confirmed = Comparison(summary, write_comparison(rows, summary, out.with_name(f"{out.name}-confirm")),
                                          again)
        result.written += result.confirmed.written
    return result


def _check_question(question: str) -> None:
    from .judgment import QUESTIONS
    if question not in QUESTIONS:
        from .errors import ToolkitError
        raise ToolkitError(f"question must be one of {', '.join(QUESTIONS)} (got {question!r}).")


@dataclass
class Searched:
    """A search (toolkit/sweep/search.py: its study, its trials as a table, its best settings), the confirmation of
    its best settings on fresh seeds (a Comparison), the pick on the full data (a Comparison, with `full`), and the
    files written. Shown as its report in a notebook."""
    search: object
    confirmed: object = None             # Comparison: the best settings and the recipe on fresh seeds
    optimism: object = None              # pandas.DataFrame: each one's search score beside its fresh seeds
    full: object = None                  # Comparison: the pick and the recipe on the full data (`full=`)
    written: list[Path] = field(default_factory=list)
    markdown: str = ""

    @property
    def trials(self):
        return self.search.trials

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __str__(self) -> str:
        return self.markdown


def search(recipe, space, trials: int = 20, sampler: str = "tpe", pruner: str = "none", top: int | None = None,
           seeds: int | None = None, full: str | None = None, study: str | None = None, out: str | Path | None = None,
           margin: float | None = None, question: str = "new-images", quiet: bool = False, log=print,
           **settings) -> Searched:
    """Search `recipe`'s settings over `space` with Optuna, then confirm the best: what `toolkit search` does.

    `space`: {key: "log(a,b)" | "uniform(a,b)" | [choices]} or the launcher's ["key=spec", ...] (see
    toolkit/sweep/search.py). `trials`: the study's trials in all (complete or pruned), each an ordinary run on the
    recipe's own seed; `sampler`: "tpe" (default), "random" or "grid"; `pruner`: "none", "halving" or
    "hyperband". The `top` best settings (default 3) then run on `seeds` fresh seeds (default 3) beside the recipe,
    judged as one family; `full`: a dataset on which the confirmed pick and the recipe also run. `settings`: the
    context and the sweep's options, as `run` takes them. Written to OUT.md (default RESULTS/search-RECIPE), with
    OUT-trials.csv, Optuna's pictures and OUT-confirm.*."""
    from .sweep.options import Options
    options, ctx = Options.split(settings, quiet)
    return search_and_confirm(recipe, context(**ctx), space, trials, sampler, pruner, top, seeds, full, study,
                              options, out, margin, question, log)


def search_and_confirm(recipe, context: dict, space, trials: int = 20, sampler: str = "tpe", pruner: str = "none",
                       top: int | None = None, seeds: int | None = None, full: str | None = None,
                       study: str | None = None, options=None, out: str | Path | None = None,
                       margin: float | None = None, question: str = "new-images", log=print) -> Searched:
    """`search` with its context made and its options as one `Options`. The flow, top to bottom: the study's
    trials (toolkit/sweep/search.py) -> the best settings on fresh seeds (sweep/confirm.py) -> judged
    (toolkit/judgment/) -> written (toolkit/report/search.py), and with `full` the pick on the full data."""
    import json
    from .atomic import check_folder, write_atomic
    from .judgment.summary import check_margin, judged
    from .report import search as shown
    from .report.compare import write_comparison
    from .sweep import confirm as confirming
    from .sweep import search as searching
    from .sweep.options import Options
    from .sweep.plan import Plan, context_of
    options = options or Options()
    top, seeds = _confirmation_size(top, seeds)
    margin = check_margin(margin)
    _check_question(question)
    name = recipe if isinstance(recipe, str) else recipe.name
    out = Path(out or check_folder(options.results, "--results") / f"search-{name}")
    check_folder(out.parent, "--out")   # before anything trains
    if full is not None:
        full_context = context_of({**context, "dataset": full})   # a bad dataset fails here, not after the search
    found = searching.search(recipe, context, space, trials, sampler, pruner, options, study, log)
    pngs = shown.pictures(found, out)
    result = Searched(found, written=list(pngs))
    picks, first = found.best[:top], found.recipe.seed + 1

    def confirmed(ctx: dict, settings: list[dict], family: str, suffix: str):
        """`settings` and the recipe on `seeds` fresh seeds under `ctx`, judged and written to OUT-SUFFIX.*."""
        plan = Plan.of_settings(recipe, confirming.fresh(ctx, first), settings)
        again = confirming.confirm([plan], seeds, options, log, margin, family, question)
        rows, summary = judged(again.involved, again.table, None, margin, None, family, question)
        done = Comparison(summary, write_comparison(rows, summary, out.with_name(f"{out.name}-{suffix}")), again)
        result.written += done.written
        return done, {row.recipe.name: row.treatment for row in plan.rows}

    if picks:
        log(f"search: confirming the {len(picks)} best setting(s) and {found.recipe.name} on {seeds} fresh seeds "
            f"({first}-{first + seeds - 1})")
        result.confirmed, variants = confirmed(context, [p for p, _ in picks], "holm", "confirm")
        result.optimism = shown.optimism(found, picks, result.confirmed.summary, variants)
        kept = result.optimism[~result.optimism["verdict"].astype(str).str.startswith("worse")] \
            if len(result.optimism) else result.optimism
        if full is not None and len(kept):   # the confirmed pick: the best fresh mean among those not worse
            pick = json.loads(kept.loc[kept["fresh %"].idxmax(), "params"])
            log(f"search: the confirmed pick ({', '.join(f'{k}={v}' for k, v in pick.items())}) and "
                f"{found.recipe.name} on the full data {full}, {seeds} seeds")
            result.full, _ = confirmed(full_context, [pick], "none", "full")
    else:
        log("search: no trial completed (all pruned or failed): nothing to confirm")
    forests = tuple(c.png for c in (result.confirmed, result.full) if c is not None and c.png)
    result.markdown = shown.markdown(found, pngs,
                                     result.confirmed.markdown if result.confirmed else "", result.optimism,
                                     result.full.markdown if result.full else "", forests)
    result.written = [write_atomic(out.with_suffix(".md"), lambda p: Path(p).write_text(result.markdown)),
                      write_atomic(out.with_name(f"{out.name}-trials.csv"),
                                   lambda p: found.trials.to_csv(p, index=False)), *result.written]
    return result


def _confirmation_size(top: int | None, seeds: int | None) -> tuple[int, int]:
    """--top and --seeds of a search (defaults: SEARCH_TOP, SEARCH_SEEDS), checked before anything runs."""
    from .defaults import SEARCH_SEEDS, SEARCH_TOP
    from .errors import ToolkitError
    from .stats import MIN_PAIRS
    top = SEARCH_TOP if top is None else top
    seeds = SEARCH_SEEDS if seeds is None else seeds
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ToolkitError(f"--top must be a whole number of at least 1 (got {top!r}).")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < MIN_PAIRS:
        raise ToolkitError(f"--seeds is the confirmation's fresh seeds per setting: at least {MIN_PAIRS}, the fewest "
                           f"pairs a verdict is drawn from (got {seeds!r}).")
    return top, seeds


def compare(names=None, results: str | Path = "results", dataset: str | None = None, against: str | None = None,
            budget: str | None = None, out: str | Path | None = None, margin: float | None = None,
            family: str | None = None, question: str = "new-images", flips: bool = False) -> Comparison:
    """Compare finished runs of RESULTS/runs.csv (all, or those of `names` / `dataset` / `budget`), written to
    OUT.{md,csv,png} (default RESULTS/compare): what `toolkit compare` does. `question`: as `run` takes it.
    `flips=True`: also the validation images the first name's row and the second's (or, with one name, its
    reference) get differently on most seeds, by class, and a contact sheet of them (OUT-flips.png)."""
    from .judgment.summary import check_margin, judged
    from .records.table import select
    from .report.compare import write_comparison
    if isinstance(names, str):
        names = [names]
    margin = check_margin(margin)
    table, rows = select(results, names, dataset, budget)
    prefix = Path(out or Path(results) / "compare")
    rows, summary = judged(rows, table, against, margin, family=family, question=question)
    result = Comparison(summary, write_comparison(rows, summary, prefix))
    if flips:
        from .report.flips import of_comparison
        result.flips, pngs = of_comparison(table, summary, list(names or []), prefix)
        result.written += pngs
    return result


def noise(name: str, /, k: int | None = None, effect: float | None = None, margin: float | None = None,
          max_seeds: int | None = None, out: str | Path | None = None, quiet: bool = False, log=print, **settings):
    """How noisy is this proxy: `name` with 2k seeds under the context (runs reused from RESULTS/runs.csv), its
    seed-to-seed std, the spread of k A/A differences, the evaluation noise floor, the smallest difference that
    n = 3, 5, 10, 20 pairs detect, and what a question of `effect` points costs here (defaults: NOISE_K and
    NOISE_EFFECT in toolkit/defaults.py); what `toolkit noise` does. `settings`: the context and the sweep's
    options, as `run` takes them. Shown as its markdown in a notebook; written to OUT.md (default
    RESULTS/noise-NAME.md)."""
    from .studies.noise import noise as measure
    from .sweep.options import Options
    options, ctx = Options.split(settings, quiet)
    return measure(name, context(**ctx), k=k, effect=effect, margin=margin, max_seeds=max_seeds, options=options,
                   out=out, log=log)


def fidelity(names, proxy, full, seeds: int | str = 1, out=None, margin: float | None = None,
             max_seeds: int | None = None, quiet: bool = False, log=print, **settings):
    """Does the proxy tell the truth? `names` and their references on `proxy` and on `full` under the context in
    `settings` (`size` required; the sweep's options too, as `run` takes them), each recipe's two verdicts side by
    side with their agreement, Kendall's tau of the effects (with, from 8 recipes, a bootstrap interval over recipes
    and seeds), the cost of each side, and which proxy to use; what `toolkit fidelity` does. `proxy`: a dataset, a description such as
    "per_class=100,select=easy" (built once from `full`; toolkit/studies/proxies.py), or a list of these. Written to
    OUT.md/.csv/.png (default RESULTS/fidelity)."""
    from .studies.fidelity import fidelity as measure
    from .studies.proxies import is_description
    from .sweep.options import Options
    options, ctx = Options.split(settings, quiet)
    ctx = context(**ctx)
    given = [proxy] if isinstance(proxy, (str, Path)) else list(proxy)
    proxies = [p if is_description(p) else context(dataset=p)["dataset"] for p in given]
    return measure(names, proxies, context(dataset=full)["dataset"], ctx, seeds, options.check(), out, margin,
                   max_seeds, log)


def data_show(dataset, **options):
    """What the toolkit resolves for a dataset (a name, folder, CSV or DataFrame) read with `options` (the dataset
    options, e.g. `label_col="noisy_labels_25"`): its source, how labels and split were decided, what a proxy came
    from, its classes and images per class and split; what `toolkit data show` prints. Shown as markdown."""
    from .data import audit
    return audit.show(_dataset(dataset, options))


def data_check(dataset, **options):
    """Whether a dataset is sound before anything is compared on it: images per class and split with the imbalance,
    classes missing from a split, unreadable files, exact and near duplicates within and across splits, sizes and
    modes; `.problems` lists what makes a comparison meaningless. What `toolkit data check` prints."""
    from .data import audit
    return audit.check(_dataset(dataset, options))


def _dataset(dataset, options: dict):
    from .data.datasets import load, read_options
    ctx = context(dataset=dataset, **options)
    return load(ctx["dataset"], **read_options(ctx["dataset"], {k: v for k, v in ctx.items() if k != "dataset"}))


def resolved(name_or_recipe, against: str | None = None, **settings):
    """A recipe (a registered name or a Recipe) with `settings` applied, resolved as a sweep resolves it: its dataset
    and size, and under budget=pixels the pixels its reference spends."""
    from .recipes import registry
    from .recipes.recipe import Recipe
    from .recipes.overrides import apply_overrides
    from .train.resolve import resolve_recipe
    recipe = name_or_recipe if isinstance(name_or_recipe, Recipe) else registry.get(name_or_recipe)
    ctx = context(**settings)
    return resolve_recipe(apply_overrides(recipe, ctx), ctx, against)


def dls(name_or_recipe, progress: str | None = None, num_workers: int | None = None, **settings):
    """The recipe's fastai `DataLoaders` at its first stage's size, exactly as a run builds them (dataset, size, seed,
    loader, normalization, augmentation, policy): `dls.show_batch()`, `dls.one_batch()`. Nothing is recorded."""
    return learner(name_or_recipe, progress=progress, num_workers=num_workers, **settings).dls


def learner(name_or_recipe, progress: str | None = None, num_workers: int | None = None, **settings):
    """The recipe's fastai `Learner`, exactly as a run builds it before its first epoch: its data (`dls`), seed,
    model, loss, MixUp/CutMix, on the recipe's first stage. Use it as any fastai Learner: `lr_find()`,
    `fit_one_cycle(...)`, `show_results()`, `ClassificationInterpretation.from_learner(learn)`.

    `learn.recipe` is the resolved recipe and `learn.stages` its stage plan [(size, epochs, lr, schedule)]: a
    progressive recipe starts at its first (smaller) size here, and `toolkit.run` fits the later stages, which a
    hand-made fit does not. `settings`: `dataset`, `size`, `epochs`, `seed` or any recipe field. Nothing made this
    way is recorded in a results table; `toolkit.run` records.
    """
    from .data import pipeline
    from .train.learner import fresh_learner
    from .train.models import check_arch, check_weights
    recipe = resolved(name_or_recipe, **settings)
    check_arch(recipe.arch)
    check_weights(recipe.arch, recipe.weights)
    data = pipeline.prepare(recipe, progress=progress)
    pipeline.check_batches(recipe, data.ds)
    learn = fresh_learner(recipe, data, data.plan[0][0], num_workers=num_workers)
    learn.recipe, learn.stages = recipe, data.plan
    return learn


def show(name, ctx: dict | None = None, vary=None, against: str | None = None,
         plot: str | Path | None = None) -> dict:
    """What `toolkit show` prints: the recipe `name` (a registered name or a Recipe) resolved under a context (and
    `vary`), its config id, what it is compared with, its stage plan and the pixels it spends per image; `plot`: also
    draw its learning-rate schedule to that PNG (returned under "written")."""
    from .recipes import registry
    from .recipes.recipe import Recipe
    from .recipes.identity import config_id
    from .recipes.stages import plan_pixels, stage_plan
    from .recipes.overrides import apply_overrides
    from .sweep.plan import variant
    from .train.resolve import reference_recipe, resolve_recipe
    ctx = ctx or {}
    base = name if isinstance(name, Recipe) else registry.get(name)
    recipe = resolve_recipe(variant(apply_overrides(base, ctx), vary), ctx, against)
    reference = reference_recipe(recipe, ctx, against)
    info = recipe.to_dict()
    info["config_id"] = config_id(recipe)
    info["compared with"] = (f"{reference.name} (config {config_id(reference)})"
                             if config_id(reference) != config_id(recipe) else "itself: it is a reference")
    plan = stage_plan(recipe, recipe.size)
    info["stage plan"] = "; ".join(f"{e} epoch(s) at {s}px, lr {lr:g}, {how}" for s, e, lr, how in plan)
    info["pixels per image"] = (f"{plan_pixels(plan):,} (sum of epochs x size^2"
                                + (f"; budget {recipe.budget_pixels:,}, the reference's)" if recipe.budget == "pixels"
                                   else ")"))
    if plot is not None:
        from .atomic import write_atomic
        from .train import schedule
        dest = Path(plot or Path("results") / f"schedule-{recipe.name}.png")
        fig = schedule.plot(schedule.lr_curve(recipe), f"{recipe.name}: learning rate per batch ({recipe.epochs} epochs)")
        write_atomic(dest, lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))
        info["written"] = dest
    return info


def export(run_dir: str | Path, out: str | Path, weights: str = "model") -> Path:
    """A finished run's kept weights (`--save-model`) as a fastai export file for `load_learner` and `predict`: what
    `toolkit export` does. `weights`: "model" (the final weights) or "ema" (their moving average)."""
    import pickle

    import torch

    from .atomic import check_folder
    from .data.datasets import with_dataset
    from .errors import ToolkitError
    from .records import artifacts
    from .sweep.plan import replay
    from .train.export import export as export_learner
    run_dir = Path(run_dir)
    path = run_dir / artifacts.MODEL
    if not path.is_file():
        raise ToolkitError(f"{run_dir} holds no {artifacts.MODEL}: only a run made with --save-model keeps its "
                           f"weights. Run it again with `toolkit run ... --save-model --rerun`, or `toolkit run "
                           f"--config {run_dir / 'recipe.json'} --save-model`.")
    check_folder(Path(out).parent, "The export file's folder")
    recipe, _ = replay(run_dir / "recipe.json")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, OSError, RuntimeError, EOFError) as e:
        raise ToolkitError(f"{path} cannot be read as plain tensors ({type(e).__name__}: {e}).") from None
    return export_learner(with_dataset(recipe), state, out, weights)


def resume(run_dir: str | Path, quiet: bool = False, log=print, **options) -> dict:
    """Resume one killed or interrupted run from its latest checkpoint, in its own folder, and record it: what
    `toolkit resume` does; returns its row. `options`: the sweep's (toolkit/sweep/options.py), e.g. `track`."""
    from .sweep.jobs import resume as resume_run
    from .sweep.options import Options
    return resume_run(run_dir, Options.of(quiet, **options), log)


def runs(results: str | Path = "results"):
    """One line per run folder under RESULTS/runs: its name and seed, status, epochs, attempts and age (a
    pandas DataFrame): what `toolkit runs` prints."""
    from .atomic import check_folder
    from .records import folders
    return folders.list_runs(check_folder(results, "--results"))


def rebuild_table(results: str | Path = "results") -> tuple[Path, int, int]:
    """A fresh results table from the finished run folders, written next to runs.csv under a new name: (its path,
    rows written, folders left out). What `toolkit runs --rebuild-table` does."""
    from .atomic import check_folder
    from .records.table import rebuild_table as rebuild
    return rebuild(check_folder(results, "--results"))


def replay(run_dir: str | Path):
    """(recipe, context) of a finished or unfinished run, from its recipe.json, to run it again (`toolkit run
    --config`); its components must be registered with the code it ran."""
    from .sweep.plan import replay as read
    return read(run_dir)


def datasets() -> dict:
    """{name: where it comes from} of every dataset name the toolkit knows: what `toolkit data list` prints."""
    from .data.datasets import DOWNLOADS, EMBEDDED
    return {**{name: "embedded (scikit-learn's handwritten digits, no download)" for name in EMBEDDED},
            **{name: f"{url} (default size {size} px)" for name, (url, size) in DOWNLOADS.items()}}


def data_proxy(src, dst, per_class: int, size: int, seed: int = 0, classes=None, select: str = "random",
               rank_size: int | None = None, rank_context: dict | None = None, progress: str | None = None,
               log=print, **options) -> dict:
    """A small deterministic proxy of any dataset, written to `dst` (random images, or the easiest under a ranking
    run): what `toolkit data proxy` does; returns what was written. `options`: how `src` is read."""
    from .data.datasets import read_options
    from .studies.proxies import make
    return make(src, dst, per_class=per_class, size=size, seed=seed, progress=progress, classes=classes,
                select=select, rank_size=rank_size, context=rank_context or {}, log=log,
                **read_options(src, options))


def data_pack(src, size: int | None = None, presize: float = 2.0, workers: int | None = None,
              progress: str | None = None, plan: bool = False, **options):
    """Decode a dataset once into a memory-mapped pack (`plan`: say what it would store, build nothing): what
    `toolkit data pack` does. `options`: how `src` is read."""
    from .data.datasets import read_options
    from .data.pack import pack
    from .errors import ToolkitError
    if presize < 1:
        raise ToolkitError(f"--presize must be at least 1 (got {presize}).")
    return pack(src, size=size, presize=presize, workers=workers, progress=progress, plan=plan,
                **read_options(src, options))


def bench_data(**settings):
    """Images/s and epoch time of each data pipeline against the no-loading limit, as tables: what `toolkit bench
    data` does (toolkit/train/throughput.py; its settings there)."""
    from .train.throughput import bench_data as measure
    return measure(**settings)
