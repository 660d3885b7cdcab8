"""How the difference between a recipe and its reference is judged: the evidence (a mean, its standard error and
degrees of freedom) from the runs' records, and the verdict it supports, as a value; the comparison's lines computed
from them (`summary`), which toolkit/report/ renders.

    evidence.py   the paired difference's mean, standard error and df: seeds and images crossed, or seeds alone
    verdicts.py   a Verdict from evidence; pairs needed; the looks of --seeds auto; Holm's and a grid's tests
    flips.py      which images changed between two rows (compare --flips)
    summary.py    one line per recipe setting: accuracy, judged differences, the family's rule, compute

The question a verdict answers by default is the user's: does the recipe help on new images like these? Both the
seeds and the validation images are samples, crossed: every seed of both recipes is judged on the same images. From
each run's predictions (predictions.npz) the per-image, per-seed differences D[s, i] (1: only the recipe got image i
right with seed s; -1: only the reference; 0: both or neither) give three mean squares, seeds (MS_s), images (MS_i)
and their interaction (MS_e). The variance of the mean difference is

    Var = sigma_seed^2 / n + sigma_image^2 / m + sigma_interaction^2 / (n m)  ~  (MS_s + MS_i - MS_e) / (n m),

the two-way random-effects (ANOVA) estimate, which counts the seed x image noise once (adding the seed-only and the
image-only variances would count it twice), floored at max(MS_s, MS_i) / (n m), each question's own variance, and
with Satterthwaite's degrees of freedom over all three mean squares: a t interval, at every level never narrower
than the seeds' own (`widen`). bench/verdict_error.py simulates
the rule on count-valued accuracies and holds it to its 5%; a smaller number of degrees of freedom (the seeds')
drives it wherever the seeds are the larger part. (Written here in a few lines of numpy: statsmodels has no crossed
random-effects estimate of a mean.)

"On these very images" (`--question these-images`): the seeds alone, Student's t on the per-seed differences.

Runs without predictions (older ones) are judged by their accuracies alone, the spread of their paired differences
floored at one validation image; the footnote says so. And nothing is decided from an interval narrower than one
validation image, or from no spread at all.
"""
from __future__ import annotations

from .evidence import (ACCURACIES, ASKED, DAMAGED, IMAGES, NEW_IMAGES, OTHER_SPLIT, QUESTIONS, THESE_IMAGES, Evidence,
                       asked, crossed, crossed_arrays, for_equivalence, mean_squares, pair_evidence, seeds_only,
                       these_images, widen)
from .flips import Flips, flips
from .verdicts import (SAME_MODELS, Verdict, best_set, call, flag, judge, look, no_pairs, p_value, pairs_needed, same_models,
                       seed_wins, unconfirmed)

__all__ = ["ACCURACIES", "ASKED", "DAMAGED", "IMAGES", "NEW_IMAGES", "OTHER_SPLIT", "QUESTIONS", "THESE_IMAGES",
           "Evidence", "asked", "crossed", "crossed_arrays", "for_equivalence", "mean_squares", "pair_evidence",
           "seeds_only", "these_images", "widen", "Flips", "flips", "SAME_MODELS", "Verdict", "best_set", "call", "flag", "judge", "look",
           "no_pairs", "p_value", "pairs_needed", "same_models", "seed_wins", "unconfirmed"]
