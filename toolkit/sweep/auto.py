"""`--seeds auto`: seeds spent where they decide.

Rounds at the planned looks of a group-sequential design (`toolkit.stats.design`; for at most 10 seeds: 3, 5, 7,
10 pairs): every row and its reference first run 3 seeds; after each round the rows are judged at the design's
per-look level, and only the rows still undecided run the seeds of the next look (their references too, and
only those). A row stops once decided, at the last look, or from the second look on when the pairs it would
likely need exceed the design's maximum. Each round is one sweep: under `--executor ray` its jobs run at once.
"""
from __future__ import annotations

import contextlib

import pandas as pd

from .. import stats
from ..errors import ToolkitError
from ..judgment.summary import pair_against, summarize
from . import execute
from .options import Options
from .plan import Plan


def sweep(plan: Plan, seeds: int | str = 1, max_seeds: int | None = None, margin: float = stats.MARGIN,
          options: Options = Options(), log=print, family: str | None = None, question: str = "new-images"):
    """Run a plan with `seeds` seeds per row, or as many as each verdict needs (`seeds="auto"`): (what it ran, the
    design of --seeds auto or None). Under --seeds auto a grid's rows are one family unless `family="none"` (each
    row's looks at alpha / rows)."""
    if family not in (None, *stats.FAMILIES):
        raise ToolkitError(f"--family must be one of {', '.join(stats.FAMILIES)} (got {family!r}).")
    if seeds != "auto":
        if max_seeds is not None:
            raise ToolkitError(f"--max-seeds applies to --seeds auto only (got --seeds {seeds}).")
        jobs = plan.jobs(seeds, reference=options.reference)
        return execute.run_jobs(jobs, options, log, plan.label), None
    return run_auto(plan, max_seeds, margin, options, log, family or ("holm" if len(plan.grid) > 1 else "none"),
                    question)


def run_auto(plan: Plan, max_seeds: int | None = None, margin: float = stats.MARGIN, options: Options = Options(),
             log=print, family: str = "none", question: str = "new-images"):
    """Run the plan's rows with as many seeds each as its verdict needs, at most `max_seeds`, with the sweep's
    `options` (toolkit/sweep/options.py). `family="holm"`: the rows are one family, each row's looks at
    alpha / rows (a Bonferroni split of the error over rows, each row's own looks under its Pocock-type boundary).

    Returns (the sweep: every look's jobs and rows, and the rows the comparison shows, each row at the seeds of
    the look where it stopped; the design). `max_seeds`: default stats.MAX_SEEDS."""
    design = stats.design(stats.MAX_SEEDS if max_seeds is None else max_seeds)
    if options.rerun:
        raise ToolkitError("--rerun and --seeds auto do not go together: auto decides from what the table holds. "
                           "Run again with a fixed --seeds N --rerun, or into a new --results folder.")
    recipes = {row.key: row.recipe for row in plan.rows}
    refs = {row.key: row.reference_key for row in plan.rows}
    design = _family(design, family, len(recipes), log)
    stopped: dict[tuple, int] = {}
    jobs, recorded = [], []
    with connected(options):
        for k, n in enumerate(design.looks):
            still = [key for key in recipes if key not in stopped]
            log(f"--seeds auto, look {k + 1}/{len(design.looks)}: {n} seeds for {len(still)} row(s)"
                + (f" ({', '.join(name for name, _ in still)})" if len(still) < len(recipes) else ""))
            todo = plan.jobs(n, keys=set(still), reference=options.reference)
            done = execute.run_jobs(todo, options, log, plan.label)
            jobs += done.jobs
            recorded.append(done.rows)
            decided, shown = _judge(done.table, recipes, refs, still, stopped, n, plan.against, margin, design, log,
                                    question)
            stopped.update(decided)
            if len(stopped) == len(recipes):
                break
    # each row at the seeds of the look where it stopped; one whose pairs fell short of the looks (a reference
    # missing) at the last look's
    return execute.Sweep(jobs, pd.concat(recorded), shown, done.table), design


def _family(design: stats.Design, family: str, rows: int, log) -> stats.Design:
    """The design each row's looks use: as it is, or with `family="holm"` at alpha / rows (a Bonferroni split of
    the error over the rows, each row's own looks under its Pocock-type boundary)."""
    if family != "holm" or rows < 2:
        return design
    log(f"--seeds auto over {rows} rows as one family: each row's looks at {100 * design.alpha / rows:.2g}% "
        f"(5% / {rows})")
    return stats.Design(design.looks, design.alpha / rows)


@contextlib.contextmanager
def connected(options: Options):
    """Under --executor ray, one connection to the cluster for every look or trial (each would connect otherwise)."""
    started = options.executor == "ray" and _connect(options.address)
    try:
        yield
    finally:
        if started:
            import ray
            ray.shutdown()


def _judge(table, recipes, refs, still, stopped, n, against, margin, design, log, question="new-images"):
    """The rows of `still` that stop at this look (pairs n), each logged with its verdict and why: ({key: n}, the
    table's rows at every row's look so far, which the comparison shows once this look is the last)."""
    at = {**{key: n for key in still}, **stopped}
    shown = _at_looks(table, recipes, refs, at)
    table = pair_against(table, against)
    lines = summarize(table.loc[shown.index], table, margin, design, question=question).set_index(["name", "config_id"])
    out = {}
    for key in still:
        if key not in lines.index:   # none of its runs finished (left alone as running elsewhere)
            continue
        line = lines.loc[key]
        why = line["stopped"] if isinstance(line["stopped"], str) else ""
        if not line["delta_pairs"] or why:   # decided, out of pairs, or nothing to pair with
            out[key] = n
            log(f"    {key[0]}: {line['delta_verdict']}" + (f", {why}" if why else ""))
    return out, shown


def _connect(address) -> bool:
    from .ray_executor import connect
    return connect(address)


def _at_looks(table: pd.DataFrame, recipes: dict, refs: dict, at: dict) -> pd.DataFrame:
    """The table's rows of every recipe at the seeds of its look (seed, seed + 1, ... below seed + pairs), and of
    every reference at the seeds its rows used: what a comparison at these looks shows."""
    seeds = {key: set(range(recipes[key].seed, recipes[key].seed + n)) for key, n in at.items()}
    for key, ref in refs.items():
        if ref != key and (ref not in recipes or refs[ref] == ref):   # a judged row keeps the seeds of its own look
            seeds[ref] = seeds.get(ref, set()) | seeds[key]
    keep = [seed in seeds.get((name, cid), ()) for name, cid, seed in
            zip(table["name"], table["config_id"], table["seed"].astype(int))]
    return table[keep]
