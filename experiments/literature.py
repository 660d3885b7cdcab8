"""Recipes from beyond the book, each derived from the chapter-7 recipe it is compared with."""
from .chapter7 import BASELINE, NORMALIZE
from toolkit.recipes.registry import derive, register, register_suite

# Automatic augmentation drawn per sample on whole batches (toolkit/data/autoaug.py), on top of the baseline.
RANDAUGMENT = register(derive(BASELINE, "randaugment", autoaug="randaugment", autoaug_n=2, autoaug_m=9,
                              notes="RandAugment: 2 ops per sample at magnitude 9/30, arXiv:1909.13719"))
TRIVIALAUGMENT = register(derive(BASELINE, "trivialaugment", autoaug="trivialaugment",
                                 notes="TrivialAugment (wide): 1 op per sample, random magnitude, arXiv:2103.10158"))
AUTOAUGMENT = register(derive(BASELINE, "autoaugment", autoaug="autoaugment",
                              notes="AutoAugment's ImageNet policy, a sub-policy per sample, arXiv:1805.09501"))

# Learning-rate schedules (toolkit/train/schedule.py; `toolkit show NAME --plot` draws them).
FLAT_COS = register(derive(NORMALIZE, "flat_cos", schedule="flat_cos",
                           notes="fit_flat_cos: flat, then cosine for the last 25% (Imagenette leaderboard)"))
WARMUP_EXP = register(derive(NORMALIZE, "warmup_exp", schedule="warmup_exp",
                             notes="linear warm-up over 1 epoch, then x0.8 every epoch (Keras TPU flowers)"))

# MixUp on part of the batch, CutMix, and the switch between them (toolkit/train/mix.py).
MIXUP_FRAC = register(derive(NORMALIZE, "mixup_frac", mixup=0.4, mix_frac=0.2,
                             notes="MixUp(0.4) on the first 20% of each batch only"))
CUTMIX = register(derive(NORMALIZE, "cutmix", cutmix=1.0, notes="CutMix(1.0), arXiv:1905.04899"))
MIXUP_CUTMIX = register(derive(NORMALIZE, "mixup_cutmix", mixup=0.4, cutmix=1.0, mix_switch=0.5,
                               notes="MixUp(0.4) or CutMix(1.0), one or the other per batch"))
MIXUP_CUTMIX_LS = register(derive(MIXUP_CUTMIX, "mixup_cutmix_ls", label_smoothing=0.1,
                                  notes="the MixUp/CutMix switch with label smoothing 0.1"))

# Architectures and fine-tuning.
SQUEEZENET = register(derive(NORMALIZE, "squeezenet", arch="squeezenet",
                             notes="SqueezeNet with BatchNorm for small images (fire modules), from scratch"))
FINETUNE = register(derive(NORMALIZE, "finetune", arch="timm:resnet18", weights="timm", schedule="warmup_exp",
                           lr=1e-3, notes="pretrained timm resnet18, new head, warm-up then exponential decay"))

# fastai's Imagenette leaderboard script (fastai's examples/train_imagenette.py) with its defaults: an xresnet with
# Mish and self-attention, ranger (mom 0.9, sqr_mom 0.99, eps 1e-6), lr 1e-2, wd 1e-2, fit_flat_cos, label
# smoothing (fastai's LabelSmoothingCrossEntropy, eps 0.1), ImageNet statistics, crops down to 35% of the image.
# It augments with RandomResizedCrop and a flip only; here the crop is the batch augmentation's (min_scale 0.35),
# which also warps, rotates and lights as aug_transforms does.
LEADERBOARD = register(derive(NORMALIZE, "leaderboard", act="mish", sa=True, opt="ranger", mom=0.9, sqr_mom=0.99,
                              eps=1e-6, wd=1e-2, lr=1e-2, schedule="flat_cos", label_smoothing=0.1, min_scale=0.35,
                              notes="fastai's Imagenette leaderboard: Mish, self-attention, ranger, flat_cos, "
                                    "label smoothing"))

register_suite("literature", "randaugment", "trivialaugment", "autoaugment", "flat_cos", "warmup_exp", "mixup_frac",
               "cutmix", "mixup_cutmix*", "squeezenet", "finetune", "leaderboard")

# Ways to evaluate the same training (toolkit/train/evaluation.py): no extra training, each with its own seconds,
# and compared with the same model's plain accuracy as well as with the reference's.
EMA = register(derive(NORMALIZE, "ema", ema=0.999,
                      notes="timm ModelEmaV3 of the weights, decay 0.999 with warm-up, evaluated at the end"))
TTA_FLIP = register(derive(NORMALIZE, "tta_flip", tta="flip", notes="the image and its mirror, averaged"))
TTA_CROPS = register(derive(NORMALIZE, "tta_crops", tta="crops",
                            notes="5 tiles of the training size from a 1.25x view, averaged"))
TTA_HIRES = register(derive(NORMALIZE, "tta_hires", tta="hires",
                            notes="evaluation at eval_scale (1.15) x the training size, FixRes arXiv:1906.06423"))
TTA_ALL = register(derive(NORMALIZE, "tta_all", tta="all", notes="fastai's TTA, flip, crops and hires, each reported"))

register_suite("evaluation", "ema", "tta_flip", "tta_crops", "tta_hires", "tta_all")
