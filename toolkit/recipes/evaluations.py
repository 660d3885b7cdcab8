"""Ways to evaluate a trained model besides its plain accuracy, one spec each: what a recipe asks for it by, its
columns, how tables, footnotes and a run's one-line outcome name it, and the recipe fields it reads.

How each runs is `toolkit/train/evaluation.py`'s runner of the same mode (a test checks that every spec has one).
None changes how the model trained: they are ways to evaluate the same training, and importable without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

CROP_VIEW = 1.25   # crops: the view its tiles are cut from, as a multiple of the training size


@dataclass(frozen=True)
class Evaluation:
    mode: str                          # the word a recipe asks for it by: tta=<mode> (ema: ema > 0)
    key: str                           # its columns: accuracy_<key> and <key>_seconds
    shown: str                         # its name in a comparison's tables
    short: str                         # its name in a run's one-line outcome
    what: str                          # what it does, in a comparison's footnote
    line: Callable[[object, int], str]  # (recipe, training size) -> what it does with its numbers: a progress line
    reads: tuple[str, ...] = ()        # recipe fields it reads: settings that cannot matter without it
    via_tta: bool = True               # asked for in the recipe's `tta` field (else by a field of its own)
    mirrors: bool = False              # it shows the model mirrored images: refused where a mirror changes the label

    def asked(self, recipe) -> bool:
        """Whether `recipe` asks for this evaluation."""
        return self.mode in recipe.tta.split(",") if self.via_tta else bool(getattr(recipe, self.mode))


SPECS = (
    # fastai's TTA keeps the `tta` key (and columns) it had before the other modes
    Evaluation("fastai", "tta", "TTA (fastai)", "TTA",
               "fastai's Learner.tta (n augmented passes averaged, then lerped with the plain prediction by beta)",
               lambda r, size: f"TTA (fastai, n={r.tta_n}, beta={r.tta_beta:g})", reads=("tta_n", "tta_beta")),
    Evaluation("flip", "flip", "TTA flip", "flip", "the image and its horizontal mirror, probabilities averaged",
               lambda r, size: "TTA flip (image + mirror)", mirrors=True),
    Evaluation("crops", "crops", "TTA crops", "crops",
               f"5 tiles of the training size (4 corners and the centre) from a view at {CROP_VIEW:g}x it, "
               f"probabilities averaged",
               lambda r, size: f"TTA crops (5 tiles of {size} px from a {round(CROP_VIEW * size)} px view)"),
    Evaluation("hires", "hires", "TTA hires", "hires", "one pass at eval_scale x the training size, no augmentation",
               lambda r, size: f"TTA hires ({round(r.eval_scale * size)} px)", reads=("eval_scale",)),
    Evaluation("ema", "ema", "EMA", "EMA", "the moving average of the weights (timm ModelEmaV3, with warm-up), one "
               "plain pass", lambda r, size: f"EMA weights (decay {r.ema:g})", via_tta=False),
)
BY_MODE = {e.mode: e for e in SPECS}
BY_KEY = {e.key: e for e in SPECS}
# The recipe fields that change how a trained model is evaluated and nothing of its training: two recipes that differ
# only in these train the same models (toolkit/report/tables.py labels such a pair "same models", untested).
EVALUATION_FIELDS = ("tta", "ema", *(f for e in SPECS for f in e.reads))
TTA_MODES = tuple(e.mode for e in SPECS if e.via_tta)   # what `tta` may name, in the order they run
KEYS = tuple(e.key for e in SPECS)                     # the columns' keys, in table order


def asked(recipe) -> tuple[Evaluation, ...]:
    """The evaluations `recipe` asks for, in the order they run (fastai's TTA first: it draws from the random
    generators, which are then where an uninterrupted run has them)."""
    return tuple(e for e in SPECS if e.asked(recipe))


def unread(recipe) -> set[str]:
    """Recipe fields that no evaluation `recipe` asks for reads: they cannot change its results."""
    used = {f for e in asked(recipe) for f in e.reads}
    return {f for e in SPECS for f in e.reads} - used
