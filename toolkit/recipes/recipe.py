"""The Recipe: every knob of an experiment, as plain values that can be written next to its results."""
from __future__ import annotations

import ast
import dataclasses
import math
import numbers
from dataclasses import dataclass, fields

from ..errors import RecipeError
from . import components
from .vocabulary import ACTIVATIONS, POLICIES, POOLS, parse_ops, parse_tta

AUTOAUG = ("", *POLICIES)  # "" = none; see toolkit/data/autoaug.py

# A stage of a progressive-resizing schedule: (size_scale, epoch_share, lr, how).
#   size_scale  fraction of the recipe's `size` this stage trains at (0.5 = half size)
#   epoch_share fraction of the recipe's `epochs` spent in this stage (shares are normalised)
#   lr          peak learning rate of the stage
#   how         the stage's learning-rate schedule, one of HOWS (see toolkit/train/schedule.py): "one_cycle" (fit_one_cycle),
#               "fine_tune" (Learner.fine_tune; its frozen epoch counts), "flat_cos" (fit_flat_cos), "warmup_exp"
Stage = tuple[float, float, float, str]
HOWS = ("one_cycle", "fine_tune", "flat_cos", "warmup_exp")
NORMALIZE = ("none", "imagenet", "data")  # none | Normalize.from_stats(*imagenet_stats) | stats of the training set
LOADERS = ("packed", "folder")  # packed image cache + batch augmentation | fastai's folder DataBlock (PIL per item)
BUDGETS = ("epochs", "pixels")  # what a recipe and its reference spend alike (see `stage_plan`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: decided on the device a run starts on (toolkit/train/precision.py)
# What every run did before these fields existed: such a value hashes as if the field were absent, so that older
# rows (all fp32, contiguous) keep pooling with new runs of the same settings.
LEGACY = {"precision": "fp32", "channels_last": False}


@dataclass(frozen=True)
class Recipe:
    """One named training experiment. Defaults are the Imagenette baseline of fastbook chapter 7."""
    name: str = "baseline"
    parent: str = ""                 # the recipe this one is compared with ("" = baseline); metadata, not config
    dataset: str = "imagenette-160"  # a dataset name (see `toolkit data list`), a folder or a CSV file
    # How the dataset is read (toolkit/data/sources.py); each does nothing, and is recorded at its default, where
    # it does not apply.
    valid_pct: float = 0.2           # no split of its own: this share of each class validates, drawn once at load
    split_seed: int = 0              #   by a generator of its own, with this seed
    fn_col: str = ""                 # CSV: the column of file names ("" = the first; a name, or a position)
    label_col: str = ""              # CSV: the column of labels ("" = the second)
    valid_col: str = ""              # CSV: a boolean column, True = validation ("" = is_valid if there, else valid_pct)
    folder: str = ""                 # CSV: file names are relative to this folder (relative to the CSV's own)
    suff: str = ""                   # CSV: appended to each file name
    label_delim: str = ""            # CSV: a label holding this is several labels: refused, with a clear error
    label_re: str = ""               # folder: labels from file names, the expression's first group (from_name_re)
    dataset_hash: str = ""           # CSV: its content hash, recorded when a run is planned (not set by hand)
    arch: str = "xresnet50"          # fastai xresnet name, squeezenet, or "timm:NAME" for any timm model
    weights: str = ""                # "" random init | "timm" timm's pretrained weights | path of a checkpoint
    act: str = "relu"                # xresnet: the activation, one of ACTIVATIONS (fastai's example: mish)
    sa: bool = False                 # xresnet: self-attention in the first stage (fastai's SimpleSelfAttention)
    sym: bool = False                # xresnet: its symmetric form
    pool: str = "avg"                # xresnet: the pooling of the shortcuts that downsample, avg or max
    size: int | None = None          # px of the training batches; None = the dataset's default (224 on Imagenette, as in the book)
    presize: float = 2.0             # item Resize to presize x size before batch augmentation (book: 460 px for 224)
    min_scale: float = 0.75          # aug_transforms(min_scale=...): smallest crop, as a fraction of the image
    bs: int = 64                     # batch size
    epochs: int = 5
    lr: float = 3e-3                 # peak learning rate
    schedule: str = "one_cycle"      # one_cycle | fine_tune | flat_cos | warmup_exp (see toolkit/train/schedule.py)
    warmup_epochs: float = 1.0       # warmup_exp: linear ramp from lr/25 up to lr over this many epochs,
    hold_epochs: float = 0.0         #   then this many at lr,
    lr_decay: float = 0.8            #   then the rate times lr_decay every epoch
    normalize: str = "none"          # none | imagenet | data
    stages: tuple[Stage, ...] = ()   # progressive resizing; () = one stage at full size with `lr`
    mixup: float = 0.0               # alpha of MixUp's Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0              # alpha of CutMix's Beta(alpha, alpha); 0 = off
    mix_switch: float = 0.5          # with both on: probability that a batch is CutMix rather than MixUp
    mix_frac: float = 1.0            # fraction of each batch that is mixed (the first samples); the rest untouched
    label_smoothing: float = 0.0     # eps of LabelSmoothingCrossEntropy; 0 = plain cross-entropy
    loss: str = ""                   # a registered loss, e.g. "focal(gamma=2.0)"; "" = cross-entropy (or smoothed)
    opt: str = "adam"                # one of fastai's OPTIMIZERS, or a registered optimizer (toolkit/train/optimizers.py)
    wd: float | None = None          # weight decay; None = the optimizer's own (fastai: Adam, ranger 0.01, others 0)
    mom: float | None = None         # momentum (Adam's beta1); None = the optimizer's own. one_cycle and fine_tune
                                     #   cycle it themselves (0.95-0.85-0.95), so it acts under flat_cos and warmup_exp
    sqr_mom: float | None = None     # Adam's beta2 (and RMSProp's, ranger's...); None = the optimizer's own
    eps: float | None = None         # the optimizer's epsilon; None = its own
    clip: float = 0.0                # gradient clipping to this norm (fastai's GradientClip); 0 = off
    callbacks: tuple[str, ...] = ()  # registered callbacks, each a name or name(key=literal, ...) (recipes/components.py)
    sh: float = 0.0                  # random erasing as fastai's Imagenette example: RandomErasing(p=0.3, max_count=3,
                                     #   sh=sh), sh its largest area; 0 = off
    batch_tfms: tuple[str, ...] = () # registered batch transforms, on normalized training batches, in this order
    code: str = ""                   # each registered component's hash (kind:name=hash ...), recorded when a run is
                                     #   planned (not set by hand): another code is another config id
    autoaug: str = ""                # "" | randaugment | trivialaugment | autoaugment, drawn per sample on batches
    autoaug_n: int = 2               # randaugment: operations per sample
    autoaug_m: int = 9               # randaugment: magnitude bin, 0..30
    autoaug_ops: str = ""            # comma-separated subset of the operations ("" = the standard set)
    autoaug_add: str = ""            # extra operations to add, e.g. "cutout"
    tta: str = ""                    # evaluations besides the plain one, comma-separated: fastai (Learner.tta; true
                                     # means it), flip, crops, hires, or all (see toolkit/train/evaluation.py)
    tta_n: int = 4                   # fastai: augmented passes averaged
    tta_beta: float = 0.25           # fastai: weight of the un-augmented prediction
    eval_scale: float = 1.15         # hires: evaluate at eval_scale x the training size
    ema: float = 0.0                 # decay of an exponential moving average of the weights, also evaluated; 0 = off
    loader: str = "packed"           # packed: decode once into a memory-mapped pack | folder: fastai's DataBlock
    precision: str = "auto"          # auto | fp32 | bf16 | fp16 (CUDA only); auto: bf16 where the device has it
    channels_last: bool | None = None  # channels_last memory format; None = auto (on the CPU, where it is faster)
    budget: str = "epochs"           # epochs: `epochs` as given | pixels: as many pixels per image as the reference
    budget_pixels: int = 0           #   budget=pixels: pixels per training image the stages may spend (sum of
                                     #   epochs x size^2), filled in from the reference when a sweep resolves it
    confirm: bool = False            # a confirmation run (--confirm): fresh seeds after a grid's pick, its own id, so
                                     #   that it never pools with the runs that made the pick
    seed: int = 42
    notes: str = ""

    def __post_init__(self):
        self._canonical_values()
        problems = [f"{f.name} must be a finite number (got {getattr(self, f.name)})" for f in fields(self)
                    if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))]
        if problems:   # inf and nan pass every range check below (inf > 0), and a run would "finish" with them
            raise _invalid(self.name, "; ".join(problems))
        problems = self._problems() + _stage_problems(self.stages)
        try:
            parse_ops(self.autoaug_ops, self.autoaug_add)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise _invalid(self.name, "; ".join(problems))

    def _canonical_values(self) -> None:
        """Values written one way each: tta's modes in one order, components as name(a=1, b=2), whole numbers of
        `float | None` fields as floats (0 and 0.0 are one weight decay)."""
        try:
            object.__setattr__(self, "tta", parse_tta(self.tta))  # true -> "fastai", modes in one order
            for key in ("callbacks", "batch_tfms"):
                object.__setattr__(self, key, component_tuple(getattr(self, key), key))
            for key in ("loss", "opt", "arch"):   # arch: a registered model's arguments (fastai's names are left)
                value = getattr(self, key)
                if isinstance(value, str) and value and (key != "arch" or "(" in value):
                    object.__setattr__(self, key, components.canonical(value, key))
            for f in fields(self):
                value = getattr(self, f.name)
                if f.type == "float | None" and isinstance(value, int) and not isinstance(value, bool):
                    object.__setattr__(self, f.name, float(value))
        except ValueError as e:
            raise _invalid(self.name, str(e)) from None

    def _problems(self) -> list[str]:
        """Each field out of its range, or out of place with another."""
        return [msg for ok, msg in [
            (bool(self.name), "name must not be empty"),
            (bool(self.dataset), "dataset must not be empty"),
            (self.size is None or self.size >= 8, f"size must be at least 8 px (got {self.size})"),
            *split_checks(self.valid_pct, self.split_seed),
            (self.presize >= 1.0, f"presize must be >= 1 (got {self.presize})"),
            (0 < self.min_scale <= 1, f"min_scale must be in (0, 1] (got {self.min_scale})"),
            (self.bs >= 1, f"bs must be >= 1 (got {self.bs})"),
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.lr > 0, f"lr must be > 0 (got {self.lr})"),
            (self.schedule in HOWS, f"schedule must be one of {', '.join(HOWS)} (got {self.schedule!r})"),
            (self.warmup_epochs > 0, f"warmup_epochs must be > 0 (got {self.warmup_epochs})"),
            (self.hold_epochs >= 0, f"hold_epochs must be >= 0 (got {self.hold_epochs})"),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1] (got {self.lr_decay})"),
            (self.normalize in NORMALIZE, f"normalize must be one of {', '.join(NORMALIZE)} (got {self.normalize!r})"),
            (self.mixup >= 0, f"mixup must be >= 0 (got {self.mixup})"),
            (self.cutmix >= 0, f"cutmix must be >= 0 (got {self.cutmix})"),
            (0 <= self.mix_switch <= 1, f"mix_switch must be in [0, 1] (got {self.mix_switch})"),
            (0 < self.mix_frac <= 1, f"mix_frac must be in (0, 1] (got {self.mix_frac})"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1) (got {self.label_smoothing})"),
            (self.tta_n >= 1, f"tta_n must be >= 1 (got {self.tta_n})"),
            (0 <= self.tta_beta <= 1, f"tta_beta must be in [0, 1] (got {self.tta_beta})"),
            (1 <= self.eval_scale <= 4, f"eval_scale must be in [1, 4] (got {self.eval_scale})"),
            (0 <= self.ema < 1, f"ema must be 0 (off) or a decay in (0, 1) such as 0.999 (got {self.ema})"),
            (self.loader in LOADERS, f"loader must be one of {', '.join(LOADERS)} (got {self.loader!r})"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})"),
            (self.channels_last in (None, True, False), f"channels_last must be true, false or auto (got {self.channels_last!r})"),
            (self.budget in BUDGETS, f"budget must be one of {', '.join(BUDGETS)} (got {self.budget!r})"),
            (self.budget_pixels >= 0, f"budget_pixels must be >= 0 (got {self.budget_pixels})"),
            (self.autoaug in AUTOAUG, f"autoaug must be one of {', '.join(map(repr, AUTOAUG))} (got {self.autoaug!r})"),
            (self.autoaug_n >= 1, f"autoaug_n must be >= 1 (got {self.autoaug_n})"),
            (0 <= self.autoaug_m <= 30, f"autoaug_m must be in 0..30 (got {self.autoaug_m})"),
            (bool(self.opt), "opt must name an optimizer (adam is fastai's default)"),
            (self.wd is None or self.wd >= 0, f"wd must be >= 0, or none for the optimizer's own (got {self.wd})"),
            (self.mom is None or 0 <= self.mom < 1, f"mom must be in [0, 1), or none (got {self.mom})"),
            (self.sqr_mom is None or 0 <= self.sqr_mom < 1, f"sqr_mom must be in [0, 1), or none (got {self.sqr_mom})"),
            (self.eps is None or self.eps > 0, f"eps must be > 0, or none (got {self.eps})"),
            (self.clip >= 0, f"clip must be >= 0, the largest gradient norm (0 = off) (got {self.clip})"),
            (0 <= self.sh < 1, f"sh must be in [0, 1), random erasing's largest area (0 = off) (got {self.sh})"),
            (self.act in ACTIVATIONS, f"act must be one of {', '.join(ACTIVATIONS)} (got {self.act!r})"),
            (self.pool in POOLS, f"pool must be one of {', '.join(POOLS)} (got {self.pool!r})"),
            (is_xresnet(self.arch) or (self.act, self.sa, self.sym, self.pool) == ("relu", False, False, "avg"),
             f"act, sa, sym and pool shape fastai's xresnets; arch is {self.arch!r}"),
            (not (self.sym and not self.sa), "sym is the symmetric form of self-attention: set sa=true with it"),
        ] if not ok]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """A recipe from `to_dict()` output (e.g. a run's recipe.json): unknown keys ignored, stages as tuples."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if "stages" in values:
            values["stages"] = tuple(tuple(st) for st in values["stages"])
        return cls(**values)


def is_xresnet(arch: str) -> bool:
    """Whether `arch` names one of fastai's xresnets (the only models act, sa, sym and pool apply to)."""
    return arch.startswith(("xresnet", "xse_resnext"))


def component_tuple(value, key: str) -> tuple[str, ...]:
    """`callbacks` or `batch_tfms` as a recipe holds them: a tuple of canonical names. Text is parsed as a command
    line gives it: `count` or `count, clip(max_norm=0.5)`."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return ()
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError:
            raise ValueError(f"{key}: {value!r} is not a name, a call such as name(key=0.5), or several of them "
                             f"separated by commas") from None
        value = [ast.get_source_segment(text, e) for e in node.elts] if isinstance(node, ast.Tuple) else [text]
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a tuple of names (got {value!r})")
    return tuple(components.canonical(v, key) for v in value)


def split_checks(valid_pct: float, split_seed: int) -> list[tuple[bool, str]]:
    """(ok, problem) for the split drawn for a folder of class folders alone: a recipe's and `toolkit data`'s."""
    return [(0 < valid_pct < 1, f"valid_pct must be in (0, 1), the share of each class that validates (got "
                                f"{valid_pct})"),
            (isinstance(split_seed, numbers.Integral) and split_seed >= 0,
             f"split_seed must be a whole number >= 0, the seed of the drawn validation split (got {split_seed})")]


def _stage_problems(stages) -> list[str]:
    if not isinstance(stages, tuple):
        return [f"stages must be a tuple of (size_scale, epoch_share, lr, how) (got {stages!r})"]
    problems = []
    for i, st in enumerate(stages):
        if not (isinstance(st, tuple) and len(st) == 4):
            problems.append(f"stage {i} must be (size_scale, epoch_share, lr, how) (got {st!r})")
            continue
        scale, share, lr, how = st
        if not (isinstance(scale, (int, float)) and 0 < scale <= 4):
            problems.append(f"stage {i}: size_scale must be in (0, 4] (got {scale!r})")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (scale, share, lr)):
            problems.append(f"stage {i}: size_scale, epoch_share and lr must be finite numbers (got {st!r})")
            continue
        if not (isinstance(share, (int, float)) and share > 0):
            problems.append(f"stage {i}: epoch_share must be > 0 (got {share!r})")
        if not (isinstance(lr, (int, float)) and lr > 0):
            problems.append(f"stage {i}: lr must be > 0 (got {lr!r})")
        if how not in HOWS:
            problems.append(f"stage {i}: how must be one of {', '.join(HOWS)} (got {how!r})")
    return problems


def _invalid(name: str, problems: str) -> RecipeError:
    return RecipeError(f"Recipe {name!r} is invalid: {problems}.", f"{problems}.")
