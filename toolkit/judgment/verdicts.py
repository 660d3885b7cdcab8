"""What the evidence supports: a verdict as a value (toolkit/judgment/__init__.py), the pairs that would settle
an undecided row, the looks of --seeds auto, a family's and a grid's tests."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from .. import stats
from ..stats import ALPHA, MARGIN, MAX_NEEDED, POWER
from .evidence import IMAGES, NEW_IMAGES, Evidence, asked, pair_evidence, widen

SAME_MODELS = "same models"


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


def judge(ev: Evidence, margin: float = MARGIN, alpha: float = ALPHA, alpha_equivalence: float | None = None,
          question: str = NEW_IMAGES, cap: int = MAX_NEEDED) -> Verdict:
    """The verdict the evidence supports (see `Verdict`): better / worse when the (1 - alpha) t interval excludes
    zero; within the margin when, besides, the (1 - 2 alpha_equivalence) interval lies inside ±margin (two one-sided
    tests); equivalent when only that; inconclusive otherwise, or from fewer than MIN_PAIRS pairs, no spread, or an
    interval narrower than one validation image."""
    a1 = alpha if alpha_equivalence is None else alpha_equivalence
    if ev.n < stats.MIN_PAIRS:
        return Verdict(question=question, margin=margin, reason=stats.MORE_SEEDS)
    se_eq, df_eq = ev.equivalence
    if ev.basis == IMAGES and se_eq is not None:   # each test never narrower than the seeds' own at its level
        se_eq = float(widen(se_eq, df_eq, ev.seeds_se, ev.n, 2 * a1))
    code = int(stats.codes(ev.mean, ev.at(alpha), ev.df, margin, alpha, a1, ev.image, se_eq, df_eq))
    direction = {1: 1, 2: -1, 3: 1, 4: -1}.get(code, 0)
    within = code in (3, 4, 5)
    v = Verdict(direction, within, code != 6, question=question, margin=margin)
    if code == 6:
        needed, limited = pairs_needed(ev, margin, alpha, a1, cap)
        v = Verdict(question=question, margin=margin, needed=needed, limited=limited)
    return v


def same_models(question: str = NEW_IMAGES, margin: float = MARGIN) -> Verdict:
    """Two rows whose models are the same (an evaluation's variant against its own training): not tested."""
    return Verdict(question=question, margin=margin, reason=SAME_MODELS)


def no_pairs(why: str, question: str = NEW_IMAGES, margin: float = MARGIN) -> Verdict:
    return Verdict(question=question, margin=margin, reason=why)


def unconfirmed(v: Verdict, ev: Evidence, alpha: float) -> Verdict:
    """A better / worse that the family did not confirm: what its equivalence test alone says (within the margin ->
    equivalent), else inconclusive, with the pairs needed planned at the family's level."""
    if v.within:
        return replace(v, direction=0)
    needed, limited = pairs_needed(ev, v.margin, alpha, ALPHA)
    return Verdict(question=v.question, margin=v.margin, needed=needed, limited=limited)


def p_value(ev: Evidence) -> float:
    """The two-sided p-value of the evidence's t test (nan below MIN_PAIRS or without spread): what Holm adjusts.
    For crossed evidence, the larger of its own and the seeds' own (`widen`: a difference shown on new images and
    on these very images alike)."""
    if ev.n < stats.MIN_PAIRS or not ev.se > 0 or not math.isfinite(ev.se):
        return math.nan
    p = float(2 * sps.t.sf(abs(ev.mean) / ev.se, ev.df))
    if ev.basis == IMAGES and ev.seeds_se > 0:
        p = max(p, float(2 * sps.t.sf(abs(ev.mean) / ev.seeds_se, ev.n - 1)))
    return p


def _plan(ev: Evidence, n):
    """(standard error, degrees of freedom) of `ev`'s question with n pairs (an array), the spread taken as
    measured: for crossed evidence the seed and interaction parts shrink with n, the images' part does not."""
    n = np.asarray(n, dtype=float)
    if ev.basis != IMAGES or not ev.components:   # the seeds alone (older runs, or "on these very images")
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
    pad = _padding(ev)

    def settles(k):
        se, df = _plan(ev, k)
        return (stats.power_t(ev.mean, se, df, alpha) >= power) | \
            (stats.power_tost(ev.mean, np.sqrt(se ** 2 + pad), df, margin / 100, alpha_equivalence) >= power)
    ok = settles(n)
    if ok.any():
        return int(n[ok.argmax()]), False
    if ev.basis == IMAGES and ev.components:
        return cap + 1, not bool(settles(np.array([10 ** 6]))[0])   # no number of seeds would: the images limit it
    return cap + 1, False


def _padding(ev: Evidence) -> float:
    """What the tests of equivalence add to the variance (the two images of `for_equivalence`), which more seeds
    do not take away."""
    se_eq = ev.equivalence[0]
    return max(0.0, se_eq ** 2 - ev.se ** 2) if se_eq is not None and ev.se > 0 else 0.0


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


def flag(row, col: str) -> bool:
    """A yes/no column of a comparison's row (a Verdict flattened); no where the row has no verdict."""
    x = row.get(col)
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and bool(x)


def call(row, prefix: str = "delta") -> str | None:
    """What the verdict of a comparison's row (its flattened columns) decides: "better" (within the margin or not),
    "worse", "equivalent"; None when it decides nothing."""
    if not flag(row, f"{prefix}_decided"):
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
