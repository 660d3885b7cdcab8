"""`toolkit noise NAME`: how noisy is this proxy, and how many seeds does a question need on it?

NAME runs (or is reused from the results table) with 2K seeds under the given context. Seed i against seed K + i
is an A/A comparison: the same recipe, different seeds, so no true difference; the spread of those K differences
is what a paired comparison on this proxy has to see through. A real comparison pairs the same seed on both sides,
which cancels part of that spread, so the detectable differences below are an upper bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..atomic import check_folder, write_atomic
from ..display import duration
from ..defaults import NOISE_EFFECT, NOISE_K
from ..errors import ToolkitError
from ..recipes.identity import config_id
from .. import stats
from ..report.tables import SHOWN, seed_ranges, shown_as
from ..sweep import execute
from ..sweep.options import Options
from ..sweep.plan import Plan

PAIRS = (3, 5, 10, 20)   # the rows of "smallest difference you can expect to detect"
SWEEPS = 4000            # simulated comparisons behind each rate (seed 0)


@dataclass
class Noise:
    """What `noise` measured: the accuracy of every seed, the A/A differences, and what follows from them."""
    label: str
    accuracy: pd.Series            # by seed
    seconds: float                 # mean wall seconds per run
    n_valid: int
    k: int
    effect: float
    margin: float
    design: stats.Design
    written: list[Path] = field(default_factory=list)

    @property
    def aa(self) -> np.ndarray:
        """seed i - seed K + i, i = 0..K-1 (fractions of 1)."""
        a = self.accuracy.values
        return a[: self.k] - a[self.k: 2 * self.k]

    @property
    def aa_sd(self) -> float:
        return float(np.std(self.aa, ddof=1))

    def markdown(self) -> str:
        return to_markdown(self)

    def __str__(self) -> str:
        return self.markdown()

    def _repr_markdown_(self) -> str:
        return self.markdown()


def noise(name: str, context: dict, k: int | None = None, effect: float | None = None, margin: float | None = None,
          max_seeds: int | None = None, options: Options = Options(), out=None, log=print) -> Noise:
    """Run (or reuse) `name` with 2k seeds under `context` and measure the noise of its accuracy; written to
    OUT.md (default RESULTS/noise-NAME.md); k defaults to NOISE_K, effect to NOISE_EFFECT (toolkit/defaults.py).
    `options`: the sweep's (toolkit/sweep/options.py; noise runs no reference, whatever its `reference`)."""
    from ..judgment.summary import check_margin
    k, effect = NOISE_K if k is None else k, NOISE_EFFECT if effect is None else effect
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ToolkitError(f"--k must be a whole number of at least 2: 2K seeds make K A/A pairs (got {k}).")
    if not (isinstance(effect, (int, float)) and 0 < effect < 100):
        raise ToolkitError(f"--effect is a difference in accuracy points, above 0 (got {effect!r}).")
    margin = check_margin(margin)
    design = stats.design(stats.MAX_SEEDS if max_seeds is None else max_seeds)
    plan = Plan.of([name], context)
    if len(plan.rows) != 1:
        raise ToolkitError(f"`toolkit noise` measures one experiment; {name!r} names {len(plan.rows)}. Give one name.")
    recipe = plan.rows[0].recipe
    out = Path(out or Path(check_folder(options.results, "--results")) / f"noise-{recipe.name}")
    out = out if out.suffix == ".md" else out.with_name(out.name + ".md")
    check_folder(out.parent, "--out")
    done = execute.run_jobs(plan.jobs(2 * k, reference=False), options, log, plan.label)
    t = done.table
    seeds = range(recipe.seed, recipe.seed + 2 * k)
    rows = t[(t["name"] == recipe.name) & (t["config_id"] == config_id(recipe)) & t["seed"].astype(int).isin(seeds)]
    accuracy = rows.groupby(rows["seed"].astype(int))["accuracy"].mean().reindex(seeds)
    if accuracy.isna().any():
        raise ToolkitError(f"Some of the {2 * k} runs did not finish (seeds {list(accuracy.index[accuracy.isna()])}); "
                           f"run the same command again to resume them.")
    if np.ptp(accuracy.values) <= stats.EQUAL:
        raise ToolkitError(f"All {2 * k} runs of {recipe.name} have the same accuracy ({100 * accuracy.iloc[0]:.1f}%): "
                           f"no spread to measure. Does the seed reach the run (a `seed` fixed in --set)?")
    head = ", ".join(s for s in (shown_as(c, rows[c].iloc[0]) for c in SHOWN) if s)
    report = Noise(f"{recipe.name} on {head}", accuracy, float(rows["wall_seconds"].mean()),
                   int(rows["n_valid"].max()), k, float(effect), margin, design)
    write_atomic(out, lambda p: Path(p).write_text(report.markdown() + "\n"))
    report.written = [out]
    return report


def to_markdown(r: Noise) -> str:
    acc, aa, sd = r.accuracy, r.aa, r.aa_sd
    n = len(acc)
    lo, hi = (sd * math.sqrt((r.k - 1) / sps.chi2.ppf(q, r.k - 1)) for q in (0.975, 0.025))
    floor = stats.binomial_se(float(acc.mean()), r.n_valid)
    rates = [f"{n_} pairs {_rate(stats.simulate_fixed(0.0, 100 * sd, n_, r.margin, SWEEPS))}" for n_ in (3, 5)]
    auto, _ = stats.simulate(0.0, 100 * sd, r.design, r.margin, SWEEPS)
    rates.append(f"--seeds auto (at most {r.design.max_pairs}) {_rate(auto)}")
    lines = [
        f"{r.label}: {n} runs (seeds {seed_ranges(list(acc.index))}), {r.seconds:.0f} s per run on average.",
        "",
        "| measure | points |",
        "|:--|--:|",
        f"| accuracy, mean of {n} seeds | {100 * acc.mean():.1f} |",
        f"| seed-to-seed std of the accuracy | {100 * acc.std(ddof=1):.1f} |",
        f"| A/A: std of the {r.k} differences seed i - seed {r.k}+i (95% CI) | {100 * sd:.1f} "
        f"[{100 * lo:.1f}, {100 * hi:.1f}] |",
        f"| A/A: mean of those differences (no true difference) | {100 * aa.mean():+.1f} |",
        f"| evaluation noise floor: binomial SE on {r.n_valid:,} validation images | {100 * floor:.1f} |",
        "",
        f"False better / worse verdicts with no true difference ({SWEEPS:,} simulated comparisons from a normal "
        f"of spread {100 * sd:.1f} points; at no true difference the rate of a t test does not depend on the "
        f"spread, so this checks the verdicts' design rather than this proxy): {'; '.join(rates)}.",
        "",
        "Smallest difference you can expect to detect (80% power, paired t test at 5%, with the A/A spread):",
        "",
        "| pairs | " + " | ".join(map(str, PAIRS)) + " |",
        "|:--|" + "--:|" * len(PAIRS),
        "| detectable Δ, points | " + " | ".join(f"{100 * stats.detectable(p, sd):.1f}" for p in PAIRS) + " |",
        "| runs (both sides) | " + " | ".join(str(2 * p) for p in PAIRS) + " |",
        "| time here | " + " | ".join(duration(2 * p * r.seconds) for p in PAIRS) + " |",
        "",
        _cost(r, sd),
        "",
        "- The A/A spread compares different seeds, so it holds the seed-to-seed variance of both sides; a real "
        "comparison pairs the same seed on both sides, which cancels part of it: these detectable differences and "
        "costs are an upper bound.",
        f"- The A/A spread is measured on {r.k} differences: its 95% CI above spans {lo / sd:.1f} to {hi / sd:.1f} "
        f"times the estimate; more seeds (--k) narrow it.",
        f"- The noise floor is how far an accuracy on these {r.n_valid:,} images may lie from the same model's "
        f"accuracy on new images of the task (binomial). Every seed evaluates on the same images, so it is not part "
        f"of the seed-to-seed std, but it bounds how finely any accuracy here speaks of the task: a larger "
        f"validation set lowers it, more seeds do not.",
    ]
    return "\n".join(lines)


def _rate(verdicts) -> str:
    return f"{100 * stats.directed(verdicts).mean():.1f}%"


def _cost(r: Noise, sd: float) -> str:
    """What a question of `effect` points costs here: pairs at 80% power, x 2 runs x seconds per run; and under
    --seeds auto, by simulation: how often it is decided, and the pairs spent on average."""
    n = stats.pairs_to_detect(r.effect / 100, sd)
    fixed = (f"{n} pairs = {2 * n} runs, about {duration(2 * n * r.seconds)} here" if n else
             f"more than {stats.MAX_NEEDED} pairs ({2 * stats.MAX_NEEDED}+ runs, over "
             f"{duration(2 * stats.MAX_NEEDED * r.seconds)} here)")
    verdicts, stopped = stats.simulate(r.effect, 100 * sd, r.design, r.margin, SWEEPS)
    found = stats.found_better(verdicts).mean()
    return (f"A question of {r.effect:g} points (--effect): a fixed number of seeds needs {fixed}. Under --seeds auto "
            f"(at most {r.design.max_pairs}), a true difference of {r.effect:g} points is found `better` in "
            f"{100 * found:.0f}% of {SWEEPS:,} simulated sweeps, spending {stopped.mean():.1f} pairs on average "
            f"({duration(2 * stopped.mean() * r.seconds)} here).")
