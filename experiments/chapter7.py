"""Fastbook chapter 7 ("Training a state-of-the-art model") on Imagenette, each recipe stating only its difference."""
from toolkit.recipes.recipe import Recipe
from toolkit.recipes.registry import derive, register, register_suite

# xresnet50 from scratch, Resize(2x size) then aug_transforms(size, min_scale=0.75), fit_one_cycle(5, 3e-3).
BASELINE = register(Recipe(name="baseline", notes="fastbook ch. 7: xresnet50 from scratch, one-cycle, no normalization"))

NORMALIZE = register(derive(BASELINE, "normalize", normalize="imagenet", notes="Normalize.from_stats(*imagenet_stats)"))
NORMALIZE_DATA = register(derive(BASELINE, "normalize_data", normalize="data",
                                 notes="Normalize with the training set's own mean/std (computed once, cached)"))

# The book: 4 epochs at 128 px then fine_tune(5, 1e-3) at 224. Here the same shape as shares of `epochs`,
# so it costs the baseline's epoch count: half the epochs at half size, then the rest at full size.
PROGRESSIVE = register(derive(NORMALIZE, "progressive",
                              stages=((0.5, 0.5, 3e-3, "one_cycle"), (1.0, 0.5, 1e-3, "fine_tune")),
                              notes="progressive resizing: half size, then fine_tune at full size"))

TTA = register(derive(NORMALIZE, "tta", tta=True, notes="Learner.tta(n=4, beta=0.25) at the end"))

MIXUP = register(derive(NORMALIZE, "mixup", mixup=0.4,
                        notes="MixUp(0.4), arXiv:1710.09412; the book: pays off only with long training"))
LABEL_SMOOTHING = register(derive(NORMALIZE, "label_smoothing", label_smoothing=0.1,
                                  notes="LabelSmoothingCrossEntropy(eps=0.1)"))
# Compared with MixUp alone: what label smoothing adds on top of it.
MIXUP_LS = register(derive(MIXUP, "mixup_ls", label_smoothing=0.1, notes="MixUp(0.4) + label smoothing 0.1"))

register_suite("chapter7", "baseline", "normalize", "normalize_data", "progressive", "tta",
               "mixup", "label_smoothing", "mixup_ls")
