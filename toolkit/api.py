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

    @property
    def markdown(self) -> str:
        from .report.tables import to_markdown
        return to_markdown(self.summary)

    @property
    def png(self) -> Path | None:
        return next((p for p in self.written if p.suffix == ".png"), None)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __str__(self) -> str:
        return self.markdown


def context(overrides=None, dataset: str | None = None, size: int | None = None, epochs: int | None = None,
            budget: str | None = None, **settings) -> dict:
    """The context of a sweep: settings that apply to every recipe and to its reference alike, checked."""
    from .sweep.plan import context_of
    return context_of(overrides, dataset=dataset, size=size, epochs=epochs, budget=budget, **settings)


def run(names, dataset: str | None = None, epochs: int | None = None, seeds: int | str = 1, size: int | None = None,
        budget: str | None = None, vary=None, against: str | None = None, reference: bool = True,
        results: str | Path = "results", out: str | Path | None = None, progress: str | None = None,
        quiet: bool = False, rerun: bool = False, executor: str = "serial", address: str | None = None,
        cpus_per_run: int | None = None, gpus_per_run: float | None = None, workers: int | None = None,
        checkpoint_every: float | None = None, keep_checkpoints: bool = False, max_seeds: int | None = None,
        margin: float | None = None, save_model: bool = False, track=(), log=print, **settings) -> Comparison:
    """Run experiments (names, wildcard patterns, suites or Recipe objects) with `seeds` seeds each, next to their
    references, record every run in RESULTS/runs.csv, and return the comparison of everything involved, written
    to OUT.{md,csv,png} (default RESULTS/last_run): what `toolkit run` does.

    `dataset`, `epochs`, `size`, `budget` and `**settings` (any recipe field, e.g. `arch="xresnet18", lr=1e-2`) are
    the context, applied to each recipe and to its reference alike; `vary={"lr": 1e-2}` makes the variant
    `NAME [lr=0.01]` compared with NAME. Run again, it skips finished runs and resumes interrupted ones.
    `seeds="auto"`: as many seeds per row as its verdict needs, up to `max_seeds` (default 10), at planned looks
    (toolkit/seeds/auto.py). `margin`: the margin of equivalence of the verdicts, in accuracy points (default 1).
    `save_model`: keep each run's final weights in its folder (model.pth; `toolkit export` makes a fastai export).
    `track`: trackers to log each run to, any of "tensorboard", "wandb", "mlflow" (toolkit/sweep/track.py).
    """
    ctx = context(dataset=dataset, size=size, epochs=epochs, budget=budget, **settings)
    return sweep_and_compare(names, ctx, vary=vary, against=against, seeds=seeds, reference=reference,
                             results=results, out=out, progress=progress, quiet=quiet, rerun=rerun, executor=executor,
                             address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, workers=workers,
                             checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                             max_seeds=max_seeds, margin=margin, save_model=save_model, track=track, log=log)


def sweep_and_compare(names, context: dict, vary=None, against: str | None = None, seeds: int | str = 1,
                      reference: bool = True, results: str | Path = "results", out: str | Path | None = None,
                      progress: str | None = None, quiet: bool = False, rerun: bool = False,
                      executor: str = "serial", address: str | None = None, cpus_per_run: int | None = None,
                      gpus_per_run: float | None = None, workers: int | None = None,
                      checkpoint_every: float | None = None, keep_checkpoints: bool = False,
                      max_seeds: int | None = None, margin: float | None = None, save_model: bool = False,
                      track=(), log=print) -> Comparison:
    """`run` with its context already made (`context(...)`, or the launcher's --dataset/--set...)."""
    from . import progress as show
    from .atomic import check_folder
    from .errors import ToolkitError
    from .report.compare import check_margin, summarize_and_write
    from .sweep import execute
    out = Path(out or check_folder(results, "--results") / "last_run")
    check_folder(out.parent, "--out")   # before anything trains
    margin = check_margin(margin)
    options = dict(reference=reference, results=results, progress=show.of(quiet, progress), num_workers=workers,
                   rerun=rerun, executor=executor, address=address, cpus_per_run=cpus_per_run,
                   gpus_per_run=gpus_per_run, every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                   save_model=save_model, track_with=tuple(track), log=log)
    design = None
    if seeds == "auto":
        from .seeds.auto import run_auto
        done, design = run_auto(names, context, vary, against, max_seeds, margin,
                                **options)
    elif max_seeds is not None:
        raise ToolkitError(f"--max-seeds applies to --seeds auto only (got --seeds {seeds}).")
    else:
        done = execute.run(names, context, vary=vary, against=against, seeds=seeds, **options)
    summary, written = summarize_and_write(done.involved, done.table, against, out, margin, design)
    return Comparison(summary, written, done)


def compare(names=None, results: str | Path = "results", dataset: str | None = None, against: str | None = None,
            budget: str | None = None, out: str | Path | None = None, margin: float | None = None) -> Comparison:
    """Compare finished runs of RESULTS/runs.csv (all, or those of `names` / `dataset` / `budget`), written to
    OUT.{md,csv,png} (default RESULTS/compare): what `toolkit compare` does."""
    from .report.compare import compare as compare_runs
    if isinstance(names, str):
        names = [names]
    summary, written = compare_runs(results, names, dataset=dataset, against=against, out=out, budget=budget,
                                    margin=margin)
    return Comparison(summary, written)


def noise(name: str, dataset: str | None = None, epochs: int | None = None, size: int | None = None, k: int | None = None,
          effect: float | None = None, margin: float | None = None, max_seeds: int | None = None,
          results: str | Path = "results", out: str | Path | None = None, progress: str | None = None,
          quiet: bool = False, log=print, **settings):
    """How noisy is this proxy: `name` with 2k seeds under the context (runs reused from RESULTS/runs.csv), its
    seed-to-seed std, the spread of k A/A differences, the evaluation noise floor, the smallest difference that
    n = 3, 5, 10, 20 pairs detect, and what a question of `effect` points costs here (defaults: k 5, effect 2); what `toolkit noise` does.
    Shown as its markdown in a notebook; written to OUT.md (default RESULTS/noise-NAME.md)."""
    from . import progress as show
    from .seeds.noise import noise as measure
    ctx = context(dataset=dataset, size=size, epochs=epochs, **settings)
    return measure(name, ctx, k=k, effect=effect, margin=margin, max_seeds=max_seeds, results=results, out=out,
                   progress=show.of(quiet, progress), log=log)


def resolved(name_or_recipe, against: str | None = None, **settings):
    """A recipe (a registered name or a Recipe) with `settings` applied, resolved as a sweep resolves it: its dataset
    and size, and under budget=pixels the pixels its reference spends."""
    from .recipes import registry
    from .recipes.recipe import Recipe, apply_overrides
    from .train.resolve import resolve
    recipe = name_or_recipe if isinstance(name_or_recipe, Recipe) else registry.get(name_or_recipe)
    ctx = context(**settings)
    return resolve(apply_overrides(recipe, ctx), ctx, against)


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
