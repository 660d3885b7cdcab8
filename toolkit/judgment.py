"""How the difference between a recipe and its reference is judged: the evidence (a mean, its standard error and
degrees of freedom) from the runs' records, and the verdict it supports, as a value.

The question a verdict answers by default is the user's: does the recipe help on new images like these? Both the
seeds and the validation images are samples, crossed: every seed of both recipes is judged on the same images. From
each run's predictions (predictions.npz) the per-image, per-seed differences D[s, i] (1: only the recipe got image i
right with seed s; -1: only the reference; 0: both or neither) give three mean squares, seeds (MS_s), images (MS_i)
and their interaction (MS_e). The variance of the mean difference is

    Var = sigma_seed^2 / n + sigma_image^2 / m + sigma_interaction^2 / (n m)  ~  (MS_s + MS_i - MS_e) / (n m),

the two-way random-effects (ANOVA) estimate, which counts the seed x image noise once (adding the seed-only and the
image-only variances would count it twice), floored at max(MS_s, MS_i) / (n m), each question's own variance, and
with Satterthwaite's degrees of freedom over all three mean squares (n - 1 where that would make the interval
narrower than the seeds' own): a t interval. bench/verdict_error.py simulates
the rule on count-valued accuracies and holds it to its 5%; a smaller number of degrees of freedom (the seeds')
drives it wherever the seeds are the larger part. (Written here in a few lines of numpy: statsmodels has no crossed
random-effects estimate of a mean.)

"On these very images" (`--question these-images`): the seeds alone, Student's t on the per-seed differences.

Runs without predictions (older ones) are judged by their accuracies alone, the spread of their paired differences
floored at one validation image; the footnote says so. And nothing is decided from an interval narrower than one
validation image, or from no spread at all.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats as sps

from . import stats
from .stats import ALPHA, MARGIN, MAX_NEEDED, POWER

NEW_IMAGES, THESE_IMAGES = "new-images", "these-images"
QUESTIONS = (NEW_IMAGES, THESE_IMAGES)
ASKED = {NEW_IMAGES: "on new images like these", THESE_IMAGES: "on these very images"}
SAME_MODELS = "same models"

# Why a row's evidence is what it is, as its `basis` says it (the footnotes explain each).
IMAGES, ACCURACIES, OTHER_SPLIT, DAMAGED = "seeds and images", "accuracies", "another split", "damaged"


@dataclass(frozen=True)
class Evidence:
    """The paired difference of a recipe and its reference over n seeds (and m validation images): its mean, the
    standard error and degrees of freedom of the question asked, and what planning more seeds needs."""
    n: int
    mean: float
    se: float
    df: float
    m: int = 0                     # validation images (0: unknown)
    basis: str = ACCURACIES        # IMAGES: from predictions; else from the accuracies alone (and why)
    components: tuple = ()         # (seed, image, interaction) variances, for planning (crossed evidence)
    diffs: np.ndarray = field(default_factory=lambda: np.zeros(0))   # per-seed differences (fractions of 1)
    note: str = ""                 # what the footnote says of a fallback (the file, the split)
    equivalence: tuple = (None, None)   # (se, df) the tests of equivalence take, where they differ (`for_equivalence`)

    @property
    def low(self) -> float:
        return self.mean - self.half(ALPHA) if self.se > 0 else math.nan

    @property
    def high(self) -> float:
        return self.mean + self.half(ALPHA) if self.se > 0 else math.nan

    def half(self, alpha: float) -> float:
        """Half the width of the two-sided (1 - alpha) t interval."""
        return float(sps.t.ppf(1 - alpha / 2, self.df) * self.se)

    @property
    def image(self) -> float:
        """One validation image, as a fraction of the accuracy (0 when the count is unknown)."""
        return 1 / self.m if self.m else 0.0


@dataclass(frozen=True)
class Verdict:
    """What a row's evidence supports. `direction`: +1 better, -1 worse, 0 neither shown; `within`: the difference
    is shown to lie inside the margin; `decided`: it settles the row; `needed`: pairs that would likely settle an
    undecided row (MAX_NEEDED + 1: more than that; None: nothing to plan from); `limited`: no number of seeds would,
    the validation images limit it; `question`: which question it answers; `reason`: a verdict that is no test."""
    direction: int = 0
    within: bool = False
    decided: bool = False
    needed: int | None = None
    limited: bool = False
    question: str = NEW_IMAGES
    margin: float = MARGIN
    reason: str = ""               # "need more seeds", "same models", or why no pairs

    @property
    def text(self) -> str:
        """The verdict in words, as tables show it."""
        m = stats.points(self.margin)
        if self.reason:
            return self.reason
        if self.direction:
            word = stats.BETTER if self.direction > 0 else stats.WORSE
            return f"{word}, within {m}" if self.within else word
        return f"{stats.EQUIVALENT} ({m})" if self.within else stats.INCONCLUSIVE

    @property
    def inconclusive(self) -> bool:
        return not self.reason and not self.direction and not self.within

    def shown(self) -> str:
        """With the pairs that would settle an inconclusive row: `inconclusive (~7)`, `(>50)`, `(images)`."""
        if not self.inconclusive:
            return self.text
        if self.limited:
            return f"{self.text} (images)"
        return f"{self.text} ({stats.shown_needed(self.needed)})" if stats.shown_needed(self.needed) else self.text


# --- evidence ------------------------------------------------------------------------------------------------------

def mean_squares(D: np.ndarray):
    """(MS_s, MS_i, MS_e) of paired per-image differences, seeds x images (the last two axes; any leading axes are
    separate comparisons: a simulation's sweeps)."""
    D = np.asarray(D, dtype=float)
    n, m = D.shape[-2:]
    g, ds, di = D.mean(axis=(-2, -1)), D.mean(axis=-1), D.mean(axis=-2)
    ms_s = m * ((ds - g[..., None]) ** 2).sum(-1) / (n - 1)
    ms_i = n * ((di - g[..., None]) ** 2).sum(-1) / (m - 1)
    r = D - ds[..., :, None] - di[..., None, :] + g[..., None, None]
    ms_e = (r ** 2).sum(axis=(-2, -1)) / ((n - 1) * (m - 1))
    return ms_s, ms_i, ms_e


def crossed_arrays(D: np.ndarray):
    """(mean, standard error, degrees of freedom) of paired per-image differences, seeds and images crossed, for
    every comparison along the leading axes at once (what `crossed` computes for one; a simulation's sweeps)."""
    D = np.asarray(D, dtype=float)
    n, m = D.shape[-2:]
    s, i, e = mean_squares(D)
    se2, df = _variance(s, i, e, n, m)
    se = np.sqrt(se2)
    # never narrower than the seeds' own t interval (Satterthwaite's df can exceed n - 1 where the seeds dominate)
    seeds_half = sps.t.ppf(0.975, n - 1) * np.sqrt(s / (n * m))
    df = np.where(stats.sps_t(0.975, df) * se < seeds_half, n - 1, df)
    return D.mean(axis=(-2, -1)), se, df


def crossed(D: np.ndarray) -> Evidence:
    """The evidence of an n x m array of per-image differences (n >= 2 seeds), seeds and images crossed."""
    D = np.asarray(D, dtype=float)
    n, m = D.shape
    s, i, e = (float(x) for x in mean_squares(D))
    mean, se, df = (float(x) for x in crossed_arrays(D))
    components = (max(0.0, (s - e) / m), max(0.0, (i - e) / n), e)
    eq = tuple(float(x) for x in for_equivalence(D))
    return Evidence(n, mean, se, df, m, IMAGES, components, D.mean(axis=1), equivalence=eq)


def _variance(s, i, e, n, m):
    """(variance of the mean, Satterthwaite's degrees of freedom) from the mean squares (see the module); arrays
    or numbers."""
    s, i, e = (np.asarray(x, dtype=float) for x in (s, i, e))
    num = np.maximum(np.maximum(s + i - e, s), i)
    den = s ** 2 / (n - 1) + i ** 2 / (m - 1) + e ** 2 / ((n - 1) * (m - 1))
    df = np.where(den > 0, num ** 2 / np.where(den > 0, den, 1.0), np.inf)
    return num / (n * m), df


def seeds_only(diffs, m: int = 0, basis: str = ACCURACIES, note: str = "") -> Evidence:
    """The evidence of per-seed differences alone (Student t, n - 1 df), their spread floored at one validation
    image when `m` is known: accuracies from older runs, or the question "on these very images"."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return Evidence(n, float(d.mean()) if n else math.nan, math.nan, math.nan, m, basis, diffs=d, note=note)
    sd = float(d.std(ddof=1))
    if basis == ACCURACIES or basis in (OTHER_SPLIT, DAMAGED):
        sd = max(sd, 1 / m if m else 0.0)   # accuracies alone: no spread finer than one image is believed
    return Evidence(n, float(d.mean()), sd / math.sqrt(n), n - 1, m, basis, diffs=d, note=note)


def these_images(ev: Evidence) -> Evidence:
    """The same pairs asked "on these very images": the seeds' spread alone (Student t)."""
    return seeds_only(ev.diffs, ev.m, ev.basis, ev.note) if ev.basis == IMAGES else ev


# --- verdicts -------------------------------------------------------------------------------------------------------

def judge(ev: Evidence, margin: float = MARGIN, alpha: float = ALPHA, alpha_equivalence: float | None = None,
          question: str = NEW_IMAGES, cap: int = MAX_NEEDED) -> Verdict:
    """The verdict the evidence supports (see `Verdict`): better / worse when the (1 - alpha) t interval excludes
    zero; within the margin when, besides, the (1 - 2 alpha_equivalence) interval lies inside ±margin (two one-sided
    tests); equivalent when only that; inconclusive otherwise, or from fewer than MIN_PAIRS pairs, no spread, or an
    interval narrower than one validation image."""
    a1 = alpha if alpha_equivalence is None else alpha_equivalence
    if ev.n < stats.MIN_PAIRS:
        return Verdict(question=question, margin=margin, reason=stats.MORE_SEEDS)
    code = int(stats.codes(ev.mean, ev.se, ev.df, margin, alpha, a1, ev.image, *ev.equivalence))
    direction = {1: 1, 2: -1, 3: 1, 4: -1}.get(code, 0)
    within = code in (3, 4, 5)
    v = Verdict(direction, within, code != 6, question=question, margin=margin)
    if code == 6:
        needed, limited = pairs_needed(ev, margin, alpha, a1, cap)
        v = Verdict(question=question, margin=margin, needed=needed, limited=limited)
    return v


def for_equivalence(D: np.ndarray):
    """(standard error, degrees of freedom) the tests of equivalence take from per-image differences (seeds x images,
    leading axes: separate comparisons): the crossed estimate with two more images, one the recipe gets right and
    its reference wrong on every seed, one the other way round. Rare images on which the two always disagree are the
    hardest part of "on new images" to see: a validation set may hold none of them, and then the spread looks smaller
    than it is (a Wald interval near 0). The two images, as Agresti and Coull add two successes and two failures,
    keep `equivalent` from being claimed of recipes a margin apart: without them, 10-22% of the time where the
    recipes disagree on 1% of the images (bench/verdict_error.py)."""
    D = np.asarray(D, dtype=float)
    pad = np.ones(D.shape[:-1] + (1,))
    _, se, df = crossed_arrays(np.concatenate([D, pad, -pad], axis=-1))
    return se, df


def same_models(question: str = NEW_IMAGES, margin: float = MARGIN) -> Verdict:
    """Two rows whose models are the same (an evaluation's variant against its own training): not tested."""
    return Verdict(question=question, margin=margin, reason=SAME_MODELS)


def no_pairs(why: str, question: str = NEW_IMAGES, margin: float = MARGIN) -> Verdict:
    return Verdict(question=question, margin=margin, reason=why)


def asked(ev: Evidence, question: str) -> Evidence:
    """The evidence for `question`: on new images like these (as measured), or on these very images (seeds only)."""
    return these_images(ev) if question == THESE_IMAGES else ev


def unconfirmed(v: Verdict, ev: Evidence, alpha: float) -> Verdict:
    """A better / worse that the family did not confirm: what its equivalence test alone says (within the margin ->
    equivalent), else inconclusive, with the pairs needed planned at the family's level."""
    if v.within:
        return replace(v, direction=0)
    needed, limited = pairs_needed(ev, v.margin, alpha, ALPHA)
    return Verdict(question=v.question, margin=v.margin, needed=needed, limited=limited)


def p_value(ev: Evidence) -> float:
    """The two-sided p-value of the evidence's t test (nan below MIN_PAIRS or without spread): what Holm adjusts."""
    if ev.n < stats.MIN_PAIRS or not ev.se > 0 or not math.isfinite(ev.se):
        return math.nan
    return float(2 * sps.t.sf(abs(ev.mean) / ev.se, ev.df))


def _plan(ev: Evidence, n):
    """(standard error, degrees of freedom) of `ev`'s question with n pairs (an array), the spread taken as
    measured: for crossed evidence the seed and interaction parts shrink with n, the images' part does not."""
    n = np.asarray(n, dtype=float)
    if ev.basis != IMAGES:
        sd = ev.se * math.sqrt(ev.n)
        return sd / np.sqrt(n), n - 1
    va, vb, ve = ev.components
    m = ev.m
    s, i, e = ve + m * va, ve + n * vb, ve   # the mean squares expected with n seeds
    num = np.maximum(np.maximum(s + i - e, s), i)
    den = s ** 2 / (n - 1) + i ** 2 / (m - 1) + e ** 2 / ((n - 1) * (m - 1))
    return np.sqrt(num / (n * m)), num ** 2 / den


def pairs_needed(ev: Evidence, margin: float = MARGIN, alpha: float = ALPHA, alpha_equivalence: float = ALPHA,
                 cap: int = MAX_NEEDED, power: float = POWER) -> tuple[int | None, bool]:
    """(pairs in all that would likely settle the row, taking its measured mean and spread as the truth; whether
    the validation images limit it, so that no number of seeds would). cap + 1: more than cap pairs."""
    if not (ev.se > 0 and math.isfinite(ev.se)) or ev.n < 2:
        return None, False
    n = np.arange(stats.MIN_PAIRS, cap + 1)
    se, df = _plan(ev, n)
    ok = (_power_difference(ev.mean, se, df, alpha) >= power) | \
        (_power_equivalence(ev.mean, se, df, margin / 100, alpha_equivalence) >= power)
    if ok.any():
        return int(n[ok.argmax()]), False
    if ev.basis == IMAGES:
        far = np.array([10 ** 6])
        se_inf, df_inf = _plan(ev, far)
        limited = not ((_power_difference(ev.mean, se_inf, df_inf, alpha) >= power)
                       | (_power_equivalence(ev.mean, se_inf, df_inf, margin / 100, alpha_equivalence) >= power))[0]
        return cap + 1, bool(limited)
    return cap + 1, False


def _power_difference(delta, se, df, alpha):
    nc = abs(delta) / se
    crit = sps.t.ppf(1 - alpha / 2, df)
    return stats._tail(crit, df, nc) + stats._tail(crit, df, -nc)


def _power_equivalence(delta, se, df, margin, alpha):
    crit = sps.t.ppf(1 - alpha, df)
    p = stats._tail(crit, df, (margin + delta) / se) + stats._tail(crit, df, (margin - delta) / se) - 1
    return np.where(abs(delta) < margin, np.clip(p, 0.0, 1.0), 0.0)


def look(ev: Evidence, plan: stats.Design, margin: float = MARGIN, question: str = NEW_IMAGES) -> tuple[Verdict, str]:
    """One planned look of --seeds auto at the pairs so far: (the verdict at the design's per-look levels, why the
    row stops: '' if it goes on). A row stops when decided, at the last look, or from the second look on when it
    would need more than the design's pairs (or the images limit it: more seeds would not settle it)."""
    a2, a1 = plan.levels
    v = judge(ev, margin, a2, a1, question, cap=max(MAX_NEEDED, plan.max_pairs))
    if v.reason == stats.MORE_SEEDS:
        return v, ""
    if v.decided:
        return v, "decided"
    if ev.n >= plan.max_pairs:
        return v, "last look"
    if ev.n > plan.looks[0] and (v.limited or (v.needed is not None and v.needed > plan.max_pairs)):
        return v, ("the validation images limit it" if v.limited else f"needs more than {plan.max_pairs} pairs")
    return v, ""


def best_set(accuracy, dirs: dict, n_valid: int = 0, alpha: float = ALPHA, question: str = NEW_IMAGES) -> list:
    """The values a grid cannot tell from the best: `accuracy` is a DataFrame, one column per value, one row per
    seed (paired), `dirs` {value: run folders by seed}; value i stays unless some value j beats it, a one-sided t
    test of j - i at alpha / (K - 1) on the evidence `question` asks for (no spread: no test)."""
    cols = list(accuracy.columns)
    if len(cols) < 2:
        return cols
    level = alpha / (len(cols) - 1)
    keep = []
    for i in cols:
        beaten = False
        for j in cols:
            if j == i:
                continue
            both = accuracy[[i, j]].dropna()
            if len(both) < stats.MIN_PAIRS:
                continue
            ev = asked(pair_evidence(both[j], both[i], dirs[j], dirs[i], n_valid=n_valid), question)
            if ev.se > 0 and math.isfinite(ev.se):
                beaten |= float(sps.t.sf(ev.mean / ev.se, ev.df)) < level
        if not beaten:
            keep.append(i)
    return keep


def call(row, prefix: str = "delta") -> str | None:
    """What the verdict of a comparison's row (its flattened columns) decides: "better" (within the margin or not),
    "worse", "equivalent"; None when it decides nothing."""
    def flag(col):
        x = row.get(f"{prefix}_{col}")
        return x is not None and not (isinstance(x, float) and math.isnan(x)) and bool(x)
    if not flag("decided"):
        return None
    d = row.get(f"{prefix}_direction")
    return stats.BETTER if d and d > 0 else stats.WORSE if d and d < 0 else stats.EQUIVALENT


def seed_wins(diffs) -> str:
    """On how many seeds the recipe beat its reference, as a count ("3 of 3", "2 of 3, 1 tie"): at a handful of
    pairs no interval on a share can mean much, a count says what there is."""
    d = np.asarray(diffs, dtype=float)
    if not len(d):
        return ""
    wins, ties = int((d > stats.EQUAL).sum()), int((np.abs(d) <= stats.EQUAL).sum())
    return f"{wins} of {len(d)}" + (f", {ties} tie{'s' if ties > 1 else ''}" if ties else "")


# --- from the records ------------------------------------------------------------------------------------------------

def _load(run_dir: str):
    """A run's predictions (records/artifacts.py), or the reason there are none: (dict | None, note)."""
    from .errors import CheckpointError
    from .records.artifacts import load_predictions
    try:
        return _cached(run_dir), ""
    except CheckpointError as e:
        return None, str(e)


@functools.lru_cache(maxsize=4096)
def _cached_at(run_dir: str, stamp: float):
    from .records.artifacts import load_predictions
    return load_predictions(run_dir) if run_dir else None


def _cached(run_dir: str):
    import os
    path = os.path.join(run_dir, "predictions.npz") if run_dir else ""
    stamp = os.path.getmtime(path) if path and os.path.exists(path) else 0.0
    return _cached_at(run_dir, stamp)


def pair_evidence(treatment, reference, t_dirs, r_dirs, t_key: str = "plain", r_key: str = "plain",
                  n_valid: int = 0) -> Evidence:
    """The evidence of a recipe's accuracies against its reference's, paired by seed (pandas Series by seed), from
    the runs' predictions where every run of both kept them for the same validation images (`t_dirs`, `r_dirs`:
    run folders by seed; `t_key`, `r_key`: which evaluation's predictions), else from the accuracies alone (floored
    at one image of `n_valid`), with a note saying why."""
    common = sorted(set(treatment.index) & set(reference.index))
    diffs = treatment[common].to_numpy(float) - reference[common].to_numpy(float)
    rows, hashes, note = [], set(), ""
    for seed in common:
        a, why_a = _load(str(t_dirs.get(seed, "")))
        b, why_b = _load(str(r_dirs.get(seed, "")))
        if why_a or why_b:
            return seeds_only(diffs, n_valid, DAMAGED, why_a or why_b)
        if a is None or b is None or t_key not in a or r_key not in b:
            return seeds_only(diffs, n_valid, ACCURACIES)
        if a["valid_hash"] != b["valid_hash"] or len(a["labels"]) != len(b["labels"]) \
                or not np.array_equal(a["labels"], b["labels"]):
            return seeds_only(diffs, n_valid, OTHER_SPLIT,
                              f"seed {seed}: the runs were validated on other images ({t_dirs.get(seed)} and "
                              f"{r_dirs.get(seed)}), so they are compared by their accuracies alone")
        hashes.add(a["valid_hash"])
        rows.append((a[t_key] == a["labels"]).astype(np.int8) - (b[r_key] == b["labels"]).astype(np.int8))
    if len(hashes) > 1:
        return seeds_only(diffs, n_valid, OTHER_SPLIT, "the seeds were validated on different images")
    if len(rows) < 2:
        return seeds_only(diffs, n_valid or (len(rows[0]) if rows else 0), ACCURACIES if not rows else IMAGES)
    return crossed(np.stack(rows))


# --- which images changed ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Flips:
    """The validation images a recipe (a) and another (b) get differently on most of their paired seeds, from the
    runs' predictions, in the canonical order of the validation files (sorted relative paths, `valid_hash`)."""
    seeds: list
    labels: np.ndarray          # each image's class index
    a_only: np.ndarray          # per image: seeds on which a is right and b wrong
    b_only: np.ndarray          # per image: seeds on which b is right and a wrong
    valid_hash: str

    @property
    def helped(self) -> np.ndarray:
        """Images a gets right and b wrong on most seeds."""
        return np.flatnonzero(self.a_only > len(self.seeds) / 2)

    @property
    def hurt(self) -> np.ndarray:
        return np.flatnonzero(self.b_only > len(self.seeds) / 2)


def flips(a_dirs, b_dirs, key: str = "plain") -> Flips:
    """The images two rows' models get differently, seed by seed (`a_dirs`, `b_dirs`: run folders by seed). A
    clear error where a run kept no predictions, a file is damaged, or the two were validated on other images."""
    from .errors import ToolkitError
    seeds = sorted(set(a_dirs.index) & set(b_dirs.index))
    if not seeds:
        raise ToolkitError("--flips: the two rows have no seed in common to pair.")
    a_only = b_only = labels = None
    hashes = set()
    for seed in seeds:
        pair = []
        for dirs in (a_dirs, b_dirs):
            got, why = _load(str(dirs[seed]))
            if why:
                raise ToolkitError(f"--flips: {why}")
            if got is None or key not in got:
                raise ToolkitError(f"--flips: the run {dirs[seed]} kept no predictions (it was recorded before runs "
                                   f"kept them): run it again (`toolkit run --config {dirs[seed]}/recipe.json --rerun`).")
            pair.append(got)
        a, b = pair
        hashes |= {a["valid_hash"], b["valid_hash"]}
        if len(hashes) > 1 or not np.array_equal(a["labels"], b["labels"]):
            raise ToolkitError("--flips: the runs were validated on different images (another split or another "
                               "dataset), so no image can be paired.")
        right_a, right_b = a[key] == a["labels"], b[key] == b["labels"]
        labels = a["labels"]
        a_only = (right_a & ~right_b).astype(int) + (0 if a_only is None else a_only)
        b_only = (right_b & ~right_a).astype(int) + (0 if b_only is None else b_only)
    return Flips(seeds, labels, a_only, b_only, hashes.pop())
