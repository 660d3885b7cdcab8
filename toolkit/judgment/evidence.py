"""The evidence of a paired difference: its mean, standard error and degrees of freedom, over the seeds and the
validation images crossed (from the runs' predictions), or over the seeds alone (see toolkit/judgment/__init__.py)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from .. import stats
from ..stats import ALPHA

NEW_IMAGES, THESE_IMAGES = "new-images", "these-images"
QUESTIONS = (NEW_IMAGES, THESE_IMAGES)
ASKED = {NEW_IMAGES: "on new images like these", THESE_IMAGES: "on these very images"}

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
    seeds_se: float = 0.0          # crossed evidence: the seeds' own standard error (`widen`)

    @property
    def low(self) -> float:
        return self.mean - self.half(ALPHA) if self.se > 0 else math.nan

    @property
    def high(self) -> float:
        return self.mean + self.half(ALPHA) if self.se > 0 else math.nan

    def at(self, alpha: float) -> float:
        """The standard error a test at two-sided level alpha takes (`widen`: never below the seeds' own)."""
        return float(widen(self.se, self.df, self.seeds_se, self.n, alpha)) if self.basis == IMAGES else self.se

    def half(self, alpha: float) -> float:
        """Half the width of the two-sided (1 - alpha) t interval."""
        return float(stats.sps_t(1 - alpha / 2, self.df) * self.at(alpha))

    @property
    def image(self) -> float:
        """One validation image, as a fraction of the accuracy (0 when the count is unknown)."""
        return 1 / self.m if self.m else 0.0


# --- evidence --------------------------------------------------------------------------------------------------------

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
    return D.mean(axis=(-2, -1)), np.sqrt(se2), df, np.sqrt(s / (n * m))


def widen(se, df, seeds_se, n: int, alpha: float):
    """The standard error a test at two-sided level `alpha` takes from crossed evidence: its own, or more, so that
    its interval is never narrower than the seeds' own t interval at that level (Satterthwaite's df can exceed n - 1
    where the seeds are most of the spread): a difference must be shown on new images and on these very images
    alike. Arrays or numbers."""
    own = stats.sps_t(1 - alpha / 2, df)
    return np.maximum(se, sps.t.ppf(1 - alpha / 2, n - 1) * np.asarray(seeds_se, dtype=float) / own)


def crossed(D: np.ndarray) -> Evidence:
    """The evidence of an n x m array of per-image differences (n >= 2 seeds), seeds and images crossed."""
    D = np.asarray(D, dtype=float)
    n, m = D.shape
    s, i, e = (float(x) for x in mean_squares(D))
    mean, se, df, seeds_se = (float(x) for x in crossed_arrays(D))
    components = (max(0.0, (s - e) / m), max(0.0, (i - e) / n), e)
    eq = tuple(float(x) for x in for_equivalence(D))
    return Evidence(n, mean, se, df, m, IMAGES, components, D.mean(axis=1), equivalence=eq, seeds_se=seeds_se)


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
    _, se, df, _ = crossed_arrays(np.concatenate([D, pad, -pad], axis=-1))
    return se, df


def asked(ev: Evidence, question: str) -> Evidence:
    """The evidence for `question`: on new images like these (as measured), or on these very images (seeds only)."""
    return these_images(ev) if question == THESE_IMAGES else ev


def _load(run_dir: str):
    """A run's predictions (records/artifacts.py), or the reason there are none: (dict | None, note)."""
    from ..errors import CheckpointError
    try:
        return _cached(run_dir), ""
    except CheckpointError as e:
        return None, str(e)


@functools.lru_cache(maxsize=4096)
def _cached_at(run_dir: str, stamp: float):
    from ..records.artifacts import load_predictions
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
    rows, hashes = [], set()
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


