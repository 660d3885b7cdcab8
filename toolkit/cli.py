"""The launcher: `toolkit list | show | run | search | compare | data | bench`. It parses arguments and calls the API."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import warnings
from pathlib import Path

from . import api
from . import display
from .errors import RunInterrupted, Terminated, ToolkitError
from .recipes import registry
from .recipes.components import UserCodeError
from .defaults import (BENCH_DATA, CHECKPOINT_COST, CHECKPOINT_EVERY, EASY_RANKING, FAMILIES, GRID_MAX, LOOKS, MARGIN,
                       MAX_SEEDS, NOISE_EFFECT, NOISE_K, PRUNERS, SAMPLERS, SEARCH_SEEDS, SEARCH_TOP, SELECT)
from .data.sources import OPTIONS
from .recipes.recipe import BUDGETS, Recipe
from .recipes.overrides import pairs
from .sweep.track import TRACKERS


def _load_experiments(args) -> None:
    """The shipped experiments, the user's installed ones and TOOLKIT_EXPERIMENTS, then each --experiments given."""
    from .recipes import components
    registry.load_named()
    for item in getattr(args, "experiments", None) or []:
        components.load(item)


EXPERIMENTS_HELP = ("a Python file (or importable module) of your own experiments and components, registered with "
                    "toolkit.register / toolkit.register_callback, _loss, _model, _optimizer, _batch_tfm; repeatable "
                    "(also: $TOOLKIT_EXPERIMENTS, paths joined by the OS path separator)")
# The commands that read recipes, and so the user's files: every one but the data and bench commands' listings.
WITHOUT_EXPERIMENTS = ("data list", "bench data")


DATASET_OPTIONS = [k for k in OPTIONS if k != "dataset_hash"]   # recorded when planned, never set by hand
DATASET_HELP = ("dataset name (see `toolkit data list`); a folder: one sub-folder per class (split by valid_pct), or "
                "train/ beside val/, valid/ or test/ with one sub-folder per class each; or a CSV of file names and "
                "labels")


def _context(args) -> dict:
    """--dataset/--size/--epochs and --set key=value: settings for a recipe and its reference alike."""
    return api.context(args.set, dataset=args.dataset, size=args.size, epochs=args.epochs, budget=args.budget)


def cmd_list(args) -> int:
    names = registry.list_experiments(args.pattern)
    suites = registry.list_suites(args.pattern)
    if not names and not suites:
        print(f"No experiment or suite matches {args.pattern!r}.", file=sys.stderr)
        return 1
    width = max(map(len, [*names, *suites]))
    for n in names:
        print(f"{n:<{width}}  {registry.get(n).notes}{_yours(n)}")
    for n, members in suites.items():
        print(f"{n:<{width}}  suite: {' '.join(members)}{_yours(n)}")
    return 0


def _yours(name: str) -> str:
    """` [yours: FILE]` after an experiment or suite registered by the user's own file (or notebook)."""
    where = registry.origin(name)
    return f"  [yours: {where}]" if where else ""


def cmd_show(args) -> int:
    info = api.show(args.name, _context(args), args.vary, args.against, args.plot)
    written = info.pop("written", None)
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, tuple) else value}")
    if written:
        print(f"\nWritten: {written}")
    return 0


def _options(args, **more):
    """The sweep's options (toolkit/sweep/options.py) from the arguments of the same names."""
    from .sweep.options import Options
    given = {k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__}
    return Options.of(args.quiet, **{**given, **more})


def cmd_run(args) -> int:
    if bool(args.names) == bool(args.config):
        raise ToolkitError("Give experiment names (or patterns, or suites) to run, or --config RUN_DIR/recipe.json "
                           "to replay a run, not both.")
    context = _context(args)
    names, reference = args.names, not args.no_reference
    if args.config:
        recipe, saved_context = api.replay(args.config)
        names, context, reference = [recipe], {**saved_context, **context}, False
    options = _options(args, reference=reference, rerun=args.rerun or bool(args.config))  # a replay runs again
    result = api.sweep_and_compare(names, context, args.vary, args.against, args.seeds, options, args.out,
                                   args.max_seeds, args.margin, log=lambda m: print(m, flush=True),
                                   family=args.family, confirm=args.confirm, question=args.question)
    print()
    print(result.markdown)
    print(f"\nWritten: {', '.join(map(str, result.written))}")
    hint = "" if args.config else result.noise_hint(_context(args), args.seeds == "auto")
    if hint:
        print(f"\n{hint}")
    return 0


def cmd_search(args) -> int:
    result = api.search_and_confirm(args.name, _context(args), args.space or [], args.trials, args.sampler,
                                    args.pruner, args.top, args.seeds, args.full, args.study, _options(args),
                                    args.out, args.margin, args.question, log=lambda m: print(m, flush=True))
    print()
    print(result.markdown)
    print(f"\nWritten: {', '.join(map(str, result.written))}")
    return 0


def cmd_export(args) -> int:
    out = api.export(args.run_dir, args.out, args.weights)
    print(f"Exported {Path(args.run_dir).name} ({args.weights} weights) to {out}: `load_learner('{out}')` opens it (a "
          f"pickle: open only files you trust), `learn.predict('image.jpg')` classifies an image.")
    return 0


def cmd_resume(args) -> int:
    row = api.resume(args.run_dir, args.quiet, progress=args.progress, checkpoint_every=args.checkpoint_every,
                     keep_checkpoints=args.keep_checkpoints, save_model=args.save_model, track=args.track)
    print(f"accuracy {100 * row['accuracy']:.1f}% after {row['attempts']} attempt(s) -> {row['run_dir']}")
    return 0


def cmd_runs(args) -> int:
    if args.rebuild_table:
        dest, n, skipped = api.rebuild_table(args.results)
        print(f"Wrote {n} row(s) to {dest}, from the finished run folders under {Path(args.results) / 'runs'} "
              f"({skipped} other folder(s) left out). Check it, then put it in place: mv {dest} "
              f"{Path(args.results) / 'runs.csv'}")
        return 0
    listing = api.runs(args.results)
    if listing.empty:
        print(f"No run folders under {Path(args.results) / 'runs'}.")
        return 0
    print(listing.to_markdown(index=False, disable_numparse=True))
    return 0


def cmd_compare(args) -> int:
    result = api.compare(args.names, args.results, dataset=args.dataset, against=args.against, out=args.out,
                         budget=args.budget, margin=args.margin, family=args.family, question=args.question,
                         flips=args.flips)
    print(result.markdown)
    print(f"\nWritten: {', '.join(map(str, result.written))}")
    return 0


def cmd_noise(args) -> int:
    report = api.noise(args.name, args.k, args.effect, args.margin, args.max_seeds, args.out, args.quiet,
                       log=lambda m: print(m, flush=True), results=args.results, progress=args.progress,
                       **_context(args))
    print()
    print(report.markdown())
    print(f"\nWritten: {', '.join(map(str, report.written))}")
    return 0


def cmd_fidelity(args) -> int:
    if args.dataset:
        raise ToolkitError("toolkit fidelity takes its two datasets as --proxy and --full, not --dataset.")
    report = api.fidelity(args.names, args.proxy, args.full, args.seeds, out=args.out, margin=args.margin,
                          max_seeds=args.max_seeds, quiet=args.quiet, log=lambda m: print(m, flush=True),
                          results=args.results, progress=args.progress,
                          **api.context(args.set, size=args.size, epochs=args.epochs, budget=args.budget))
    print()
    print(report.markdown())
    print(f"\nWritten: {', '.join(map(str, report.written))}")
    return 0


def cmd_data_list(args) -> int:
    for name, where in api.datasets().items():
        print(f"{name:<16} {where}")
    return 0


def cmd_data_show(args) -> int:
    print(api.data_show(args.src, **pairs(args.set)).markdown())
    return 0


def cmd_data_check(args) -> int:
    report = api.data_check(args.src, **pairs(args.set))
    print(report.markdown())
    return 1 if report.problems else 0


def cmd_data_proxy(args) -> int:
    info = api.data_proxy(args.src, args.dst, per_class=args.per_class, size=args.size, seed=args.seed,
                          classes=args.classes, select=args.select, rank_size=args.rank_size,
                          rank_context=api.context(args.rank_set) if args.rank_set else {},
                          progress=display.of(args.quiet, args.progress), log=lambda m: print(m, flush=True),
                          **pairs(args.set))
    print(f"Proxy written to {info['path']}: {info['classes']} classes, {info['train']} train and "
          f"{info['val']} val images" + (f", {info['skipped']} unreadable skipped" if info["skipped"] else "") + ".")
    return 0


def cmd_data_pack(args) -> int:
    api.data_pack(args.src, size=args.size, presize=args.presize, workers=args.workers,
                  progress=display.of(args.quiet, args.progress), plan=args.plan, **pairs(args.set))
    return 0


def cmd_bench_data(args) -> int:
    api.bench_data(dataset=args.dataset, size=args.size, arch=args.arch, bs=args.bs, out=args.out,
               loader_batches=args.loader_batches, rows=args.rows, repeats=args.repeats, quiet=args.quiet,
               policies=not args.no_policies, train=not args.loader_only)
    return 0


def _add_recipe_overrides(p: argparse.ArgumentParser, comparison: bool = True) -> None:
    g = p.add_argument_group("context (applies to each recipe and to its reference alike)")
    g.add_argument("--dataset", help=DATASET_HELP)
    g.add_argument("--size", type=int, help="training image size in px (default: the dataset's)")
    g.add_argument("--epochs", type=int, help="number of epochs (progressive stages share them)")
    g.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any recipe field (repeatable), among them how the dataset is read: "
                        + ", ".join(DATASET_OPTIONS))
    g.add_argument("--budget", choices=BUDGETS,
                   help="compute each recipe may spend: epochs (as given; the default) or pixels (as many pixels per "
                        "image as its reference: lower-resolution stages get more epochs)")
    if not comparison:
        return
    g = p.add_argument_group("comparison")
    g.add_argument("--vary", action="append", metavar="KEY=VALUE[,VALUE...]",
                   help="a treatment: run the variant `NAME [KEY=VALUE]`, compared with NAME itself; several values "
                        "make a grid, one variant per value (commas separate numbers, e.g. lr=1e-3,3e-3,1e-2; for "
                        "any key, repeat --vary KEY=VALUE); several keys, their product")
    g.add_argument("--grid-max", type=int, metavar="N",
                   help=f"run a grid of more than {GRID_MAX} variants (default: refused)")
    _add_family_option(g)
    _add_question_option(g)
    g.add_argument("--confirm", action="store_true",
                   help="after a grid: run its pick and the recipe again on fresh seeds, recorded as confirmation "
                        "runs, and show the confirmed Δ beside the selection's")
    g.add_argument("--against", metavar="NAME", help="compare every recipe with this one (default: each its parent)")


def _seeds(text: str):
    """--seeds: a whole number, or auto."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def _looks(max_seeds: int) -> str:
    """The looks of --seeds auto for a --max-seeds, as the help states them."""
    return ", ".join(map(str, [n for n in LOOKS if n < max_seeds] + [max_seeds]))


def _add_margin_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--margin", type=float, metavar="POINTS",
                   help=f"margin of practical equivalence, in accuracy points (default {MARGIN:g}): a difference shown to lie "
                        "within it is `equivalent`; an analysis setting, recorded with the comparison, not a run's")


def _add_question_option(p) -> None:
    p.add_argument("--question", choices=("new-images", "these-images"), default="new-images",
                   help="what a verdict answers: new-images (default): does it help on new images like these, the "
                        "seeds and the validation images both samples; these-images: on these very images, the "
                        "seeds alone")


def _add_family_option(p) -> None:
    p.add_argument("--family", choices=FAMILIES,
                   help="holm: the rows are one question, the chance of any false better / worse among them held at "
                        "5%% (Holm's step-down; under --seeds auto, each row's looks at 5%% / rows); none: each row on "
                        "its own (default: holm for a --vary grid, none otherwise)")


def _add_progress_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", choices=display.MODES,
                   help="bars: fastai's progress bars; lines: one plain line per epoch and per phase, for a log file; "
                        "none (default: bars on a terminal or in a notebook, else lines)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress at all (--progress none)")


def _add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help=f"write a checkpoint at an epoch end when this long has passed since the last (default: "
                        f"{CHECKPOINT_EVERY:g}, or {CHECKPOINT_COST} times what the last one took to write if longer: "
                        f"under {100 / CHECKPOINT_COST:g}%% of the time); always at a stage's end and on Ctrl-C or "
                        f"SIGTERM")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep a run's checkpoint after it finishes")
    p.add_argument("--save-model", action="store_true",
                   help="keep each run's final weights in its folder (model.pth; `toolkit export` turns one into a "
                        "fastai export file)")
    p.add_argument("--track", action="append", choices=TRACKERS, metavar="TRACKER",
                   help=f"also log each run to a tracker, one of {', '.join(TRACKERS)}; repeat for several (each is "
                        f"an extra: pip install -e '.[TRACKER]'; see docs/trackers.md)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="toolkit", description="Named, comparable fastai training recipes.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list experiments and suites (wildcards allowed: 'mixup*')")
    p.add_argument("pattern", nargs="?", default="*")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print an experiment's fully resolved recipe")
    p.add_argument("name")
    p.add_argument("--plot", nargs="?", const="", metavar="PNG",
                   help="also draw its learning-rate schedule (default file: results/schedule-NAME.png)")
    _add_recipe_overrides(p)
    p.set_defaults(func=cmd_show)

    _run_parser(sub)
    _runs_parsers(sub)

    p = sub.add_parser("compare", help="compare finished runs: markdown table, CSV and plot")
    p.add_argument("names", nargs="*", metavar="NAME|PATTERN|SUITE")
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--budget", choices=BUDGETS, help="only runs under this compute budget")
    p.add_argument("--against", metavar="NAME", help="compare every row with this recipe (default: each its parent)")
    p.add_argument("--results", default="results")
    p.add_argument("--out", help="output prefix (default: RESULTS/compare)")
    _add_margin_option(p)
    _add_family_option(p)
    _add_question_option(p)
    p.add_argument("--flips", action="store_true",
                   help="also which validation images the first NAME's row and the second's (or, with one NAME, its "
                        "reference) get differently on most seeds: counted by class, and a contact sheet "
                        "(OUT-flips.png)")
    p.set_defaults(func=cmd_compare)

    _export_parser(sub)
    p = sub.add_parser("noise", help="how noisy is this proxy: 2K seeds of one experiment, its A/A spread, the "
                                     "smallest difference n pairs detect, and what a question costs here")
    p.add_argument("name", metavar="NAME")
    _add_recipe_overrides(p, comparison=False)
    p.add_argument("--k", type=int, help=f"A/A pairs: runs 2K seeds (default: {NOISE_K})")
    p.add_argument("--effect", type=float, metavar="POINTS",
                   help=f"the difference whose cost is priced, in accuracy points (default: {NOISE_EFFECT:g})")
    p.add_argument("--max-seeds", type=int, metavar="K", help=f"the --seeds auto design simulated (default {MAX_SEEDS})")
    _add_margin_option(p)
    p.add_argument("--results", default="results")
    p.add_argument("--out", help="output file (default: RESULTS/noise-NAME.md)")
    _add_progress_options(p)
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("fidelity", help="does the proxy tell the truth: the same recipes on a proxy and on the full "
                                        "data, their verdicts side by side, agreement, rank correlation, cost")
    p.add_argument("names", nargs="+", metavar="NAME|PATTERN|SUITE")
    p.add_argument("--proxy", required=True, action="append",
                   help="a proxy (repeatable: proxies compared side by side): " + DATASET_HELP + "; or a rule that "
                        "fidelity builds once from --full: per_class=N[,size=PX][,select=random|easy][,classes=K]"
                        "[,seed=S]")
    p.add_argument("--full", required=True, help="the full data: " + DATASET_HELP)
    _add_recipe_overrides(p, comparison=False)
    p.add_argument("--seeds", type=_seeds, default=1, metavar="N|auto", help="seeds per recipe on each side")
    p.add_argument("--max-seeds", type=int, metavar="K", help=f"with --seeds auto (default {MAX_SEEDS})")
    _add_margin_option(p)
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--out", help="output prefix (default: RESULTS/fidelity)")
    _add_progress_options(p)
    p.set_defaults(func=cmd_fidelity)

    _data_parsers(sub)
    _bench_parsers(sub)
    _add_experiments_options(ap)
    return ap


def _add_experiments_options(ap: argparse.ArgumentParser, path: str = "") -> None:
    """--experiments on every command that reads recipes (all but WITHOUT_EXPERIMENTS)."""
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, p in action.choices.items():
                here = f"{path} {name}".strip()
                if any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
                    _add_experiments_options(p, here)
                elif here not in WITHOUT_EXPERIMENTS:
                    p.add_argument("--experiments", action="append", metavar="FILE_OR_MODULE", help=EXPERIMENTS_HELP)


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="a finished run's weights (--save-model) as a fastai export file for "
                                      "load_learner and predict")
    p.add_argument("run_dir", metavar="RUN_DIR", help="RESULTS/runs/<run>, run with --save-model")
    p.add_argument("out", metavar="OUT.pkl")
    p.add_argument("--weights", choices=("model", "ema"), default="model",
                   help="the final weights (default) or their moving average (a run with ema > 0)")
    p.set_defaults(func=cmd_export)


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="run experiments, patterns or suites and print their comparison table")
    p.add_argument("names", nargs="*", metavar="NAME|PATTERN|SUITE")
    _add_recipe_overrides(p)
    p.add_argument("--seeds", type=_seeds, default=1, metavar="N|auto",
                   help=f"run each experiment with this many seeds (seed, seed+1, ...); auto: {LOOKS[0]}, then more "
                        f"only for the rows still undecided, at planned looks "
                        f"({_looks(MAX_SEEDS)} for --max-seeds {MAX_SEEDS})")
    p.add_argument("--max-seeds", type=int, metavar="K", help=f"with --seeds auto: at most this many seeds per row "
                   f"(default {MAX_SEEDS}; looks at {', '.join(map(str, LOOKS))} below K, then K)")
    _add_margin_option(p)
    p.add_argument("--no-reference", action="store_true",
                   help="do not run the references for the seeds they lack (differences need them)")
    p.add_argument("--config", metavar="RUN_DIR/recipe.json",
                   help="replay a run: the same recipe, seed and context (its reference is not run again)")
    _add_executor_options(p)
    p.add_argument("--rerun", action="store_true",
                   help="run every job again in a new folder (by default finished runs are skipped and killed or "
                        "interrupted ones resumed)")
    _add_checkpoint_options(p)
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--out", help="output prefix of the comparison (default: RESULTS/last_run)")
    p.add_argument("--workers", type=int,
                   help="DataLoader worker processes, for --set loader=folder (default: fastai's)")
    _add_progress_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("search", help="search a recipe's settings with Optuna, prune hopeless trials, and confirm the "
                                      "best settings on fresh seeds against the recipe")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--space", action="append", metavar="KEY=SPEC",
                   help="a recipe field to search (repeatable): KEY=log(LOW,HIGH) or KEY=uniform(LOW,HIGH) for a "
                        "number field (an int field samples ints), KEY=V1,V2,... a choice of numbers, KEY=TEXT "
                        "repeated a choice of texts")
    p.add_argument("--trials", type=int, default=20,
                   help="the study's trials in all, complete or pruned, each one run on the recipe's seed (default 20; "
                        "a search run again goes on to this many)")
    p.add_argument("--sampler", choices=SAMPLERS, default=SAMPLERS[0], help="Optuna's sampler (default: tpe)")
    p.add_argument("--pruner", choices=PRUNERS, default=PRUNERS[0],
                   help="stop hopeless trials from their epochs' accuracy: successive halving or Hyperband "
                        "(default: none)")
    p.add_argument("--top", type=int, default=SEARCH_TOP,
                   help=f"the best settings confirmed on fresh seeds against the recipe (default {SEARCH_TOP})")
    p.add_argument("--seeds", type=int, default=SEARCH_SEEDS,
                   help=f"fresh seeds of the confirmation (default {SEARCH_SEEDS}; the trials use the recipe's own)")
    p.add_argument("--full", metavar="DATA", help="the confirmed pick and the recipe also run on this full data: "
                                                  + DATASET_HELP)
    p.add_argument("--study", metavar="NAME", help="the study's name in RESULTS/search.db (default: from the recipe, "
                                                   "space and sampler)")
    _add_recipe_overrides(p, comparison=False)
    _add_margin_option(p)
    _add_question_option(p)
    _add_executor_options(p)
    _add_checkpoint_options(p)
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--out", help="output prefix of the report (default: RESULTS/search-NAME)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes, for --set loader=folder")
    _add_progress_options(p)
    p.set_defaults(func=cmd_search)


def _add_executor_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the jobs run")
    g.add_argument("--executor", choices=("serial", "ray"), default="serial",
                   help="serial: one job after another in this process (default); ray: every job a Ray task, "
                        "on this machine or a cluster (needs the ray extra: pip install -e '.[ray]')")
    g.add_argument("--address", help="join the Ray cluster at HOST:PORT (default: $RAY_ADDRESS, else a local Ray)")
    g.add_argument("--cpus-per-run", type=int, help="CPUs (and torch threads) per job (default: 1, or a GPU's share)")
    g.add_argument("--gpus-per-run", type=float, help="GPUs per job (default: 1 where the cluster has GPUs, else 0)")


def _runs_parsers(sub) -> None:
    p = sub.add_parser("resume", help="resume one killed or interrupted run from its latest checkpoint")
    p.add_argument("run_dir", metavar="RUN_DIR", help="its folder, RESULTS/runs/<run>")
    _add_progress_options(p)
    _add_checkpoint_options(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("runs", help="list run folders with their status, epochs, attempts and age")
    p.add_argument("--results", default="results")
    p.add_argument("--rebuild-table", action="store_true",
                   help="write a fresh results table from the finished run folders, under a new name")
    p.set_defaults(func=cmd_runs)


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="how the dataset is read, as for a run (repeatable): " + ", ".join(DATASET_OPTIONS))


def _data_parsers(sub) -> None:
    p = sub.add_parser("data", help="datasets: list the named ones, show and check one, build a proxy or a pack")
    dsub = p.add_subparsers(dest="data_command", required=True)
    d = dsub.add_parser("list", help="dataset names the toolkit knows")
    d.set_defaults(func=cmd_data_list)
    d = dsub.add_parser("show", help="what the toolkit resolves for a dataset: source, labels, split, classes, counts")
    d.add_argument("src", help=DATASET_HELP)
    _add_dataset_options(d)
    d.set_defaults(func=cmd_data_show)
    d = dsub.add_parser("check", help="is a dataset sound before comparing on it: counts, missing classes, "
                                      "unreadable files, duplicates within and across splits, sizes; exit 1 when "
                                      "a comparison on it would be meaningless")
    d.add_argument("src", help=DATASET_HELP)
    _add_dataset_options(d)
    d.set_defaults(func=cmd_data_check)
    d = dsub.add_parser("proxy", help="a small deterministic proxy of any dataset")
    d.add_argument("src", help=DATASET_HELP)
    d.add_argument("dst", help="new folder to write")
    d.add_argument("--per-class", type=int, required=True, help="training images per class")
    d.add_argument("--size", type=int, required=True, help="shorter side of the written images, px")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--classes", help="keep only K classes (drawn with --seed), or those named, separated by commas")
    d.add_argument("--select", choices=SELECT, default="random",
                   help="which training images: random, or easy: those of lowest loss under a short ranking run of "
                        f"{EASY_RANKING['recipe']} ({EASY_RANKING['epochs']} epochs) on SRC, made once and cached "
                        "(default: %(default)s)")
    d.add_argument("--rank-size", type=int, metavar="PX", help="with --select easy: the ranking run's size "
                                                               "(default: SRC's)")
    d.add_argument("--rank-set", action="append", metavar="KEY=VALUE",
                   help="with --select easy: a setting of the ranking run, e.g. arch=xresnet18 (repeatable)")
    _add_dataset_options(d)
    _add_progress_options(d)
    d.set_defaults(func=cmd_data_proxy)
    d = dsub.add_parser("pack", help="decode a dataset once into a memory-mapped pack (runs do this when needed)")
    d.add_argument("src", help=DATASET_HELP)
    d.add_argument("--size", type=int, help="training size in px the pack serves (default: the dataset's)")
    d.add_argument("--presize", type=float, default=Recipe.presize,
                   help="stored size = presize x size, as the recipes' item Resize, at most the source images' own "
                        "side (default: %(default)s)")
    d.add_argument("--workers", type=int, help="decoding processes (default: one per core)")
    _add_dataset_options(d)
    d.add_argument("--plan", action="store_true", help="say what the pack would store and its bytes; build nothing")
    _add_progress_options(d)
    d.set_defaults(func=cmd_data_pack)


def _bench_parsers(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks that print tables")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    b = bsub.add_parser("data", help="images/s and epoch time of each data pipeline, against the no-loading limit")
    b.add_argument("--dataset", default=BENCH_DATA["dataset"], help="dataset name or folder (default: %(default)s)")
    b.add_argument("--size", type=int, default=BENCH_DATA["size"], help="training size in px (default: %(default)s)")
    b.add_argument("--arch", default=BENCH_DATA["arch"], help="model (default: %(default)s)")
    b.add_argument("--bs", type=int, default=BENCH_DATA["bs"], help="batch size (default: %(default)s)")
    b.add_argument("--loader-batches", type=int, default=BENCH_DATA["loader_batches"],
                   help="batches timed for the loader-only column (default: %(default)s)")
    b.add_argument("--repeats", type=int, default=BENCH_DATA["repeats"],
                   help="rounds over the rows; medians are reported (default: %(default)s)")
    b.add_argument("--rows", help="which pipelines to run, e.g. 3,4,5 (default: all)")
    b.add_argument("--no-policies", action="store_true", help="skip the augmentation-policy table")
    b.add_argument("--loader-only", action="store_true", help="loader columns only: no training epochs (no row 5)")
    b.add_argument("--out", default=BENCH_DATA["out"], help="folder for data.md and data.csv (default: %(default)s)")
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(func=cmd_bench_data)


def _warning_line(message, category, filename, lineno, line=None):
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    install_signal_handlers()
    warnings.formatwarning = _warning_line
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*")  # raised inside fastai's imports
    try:
        _load_experiments(args)
        return args.func(args)
    except RunInterrupted as e:
        print(f"error: {e}", file=sys.stderr)
        return 143 if e.terminated else 130
    except UserCodeError as e:   # the user's own code failed: its traceback, then one line that frames it
        print(e.trace, file=sys.stderr, end="")
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ToolkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # `toolkit ... | head`: the reader has what it wanted; nothing more to say
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # Python's advice: no second error at exit
        return 141   # 128 + SIGPIPE, as a shell reports a program stopped by a closed pipe
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM outside a run: dataset checks, packing, comparing
        print(f"{'Terminated' if isinstance(e, Terminated) else 'Interrupted'}; every finished run is kept and "
              f"nothing was left half-written.", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


def _terminate(signum, frame):
    raise Terminated


def install_signal_handlers() -> None:
    """SIGTERM (a scheduler, `kill`) is handled like Ctrl-C everywhere, with exit status 143."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


if __name__ == "__main__":
    sys.exit(main())
