"""The Recipe: every knob of an experiment, as plain values that can be written next to its results."""
from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import json
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass, fields, replace

import numpy as np

from ..errors import RecipeError
from . import components, evaluations
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
        try:
            object.__setattr__(self, "tta", parse_tta(self.tta))  # true -> "fastai", modes in one order
            for key in ("callbacks", "batch_tfms"):                # each in one canonical form: name(a=1, b=2)
                object.__setattr__(self, key, component_tuple(getattr(self, key), key))
            for key in ("loss", "opt"):
                if isinstance(getattr(self, key), str) and getattr(self, key):
                    object.__setattr__(self, key, components.canonical(getattr(self, key), key))
        except ValueError as e:
            raise _invalid(self.name, str(e)) from None
        problems = [f"{f.name} must be a finite number (got {getattr(self, f.name)})" for f in fields(self)
                    if isinstance(getattr(self, f.name), float) and not math.isfinite(getattr(self, f.name))]
        if problems:   # inf and nan pass every range check below (inf > 0), and a run would "finish" with them
            raise _invalid(self.name, "; ".join(problems))
        problems = [msg for ok, msg in [
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
        problems += _stage_problems(self.stages)
        try:
            parse_ops(self.autoaug_ops, self.autoaug_add)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise _invalid(self.name, "; ".join(problems))

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


# --- what a run ran: the settings that take effect, and their id ------------------------------------

METADATA = ("name", "parent", "seed", "notes")  # describe a run, never change what it computes (seed: pooled)


def _inert(r: Recipe) -> set[str]:
    """Fields whose value cannot change this recipe's training, given its other fields."""
    hows = {st[3] for st in r.stages} if r.stages else {r.schedule}
    inert = {"label_delim"}                          # it only refuses a multi-label column: never changes training
    if r.stages:
        inert |= {"lr", "schedule"}                  # every stage names its own lr and schedule
    if "warmup_exp" not in hows:
        inert |= {"warmup_epochs", "hold_epochs", "lr_decay"}
    inert |= evaluations.unread(r)                   # what only an evaluation it does not ask for reads
    if r.budget != "pixels":
        inert.add("budget_pixels")
    if not (r.mixup and r.cutmix):
        inert.add("mix_switch")
    if not (r.mixup or r.cutmix):
        inert.add("mix_frac")
    if r.autoaug != "randaugment":
        inert |= {"autoaug_n", "autoaug_m"}
    if not r.autoaug:
        inert |= {"autoaug_ops", "autoaug_add"}
    if hows <= {"one_cycle", "fine_tune"}:
        inert.add("mom")                             # these schedules set momentum at every batch
    return inert


def _canonical(value, default):
    """A value as JSON data, typed like the field's default (2 and 2.0 are one presize; stages are lists)."""
    if isinstance(value, tuple):
        return [_canonical(v, None) for v in value]
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def effective(recipe: Recipe) -> dict:
    """The settings that take effect and differ from the defaults: what makes two runs the same experiment.

    Fields at their default are left out, so a field added later (at a default that keeps today's behaviour)
    does not change any existing id; so are fields at their LEGACY value. Metadata (name, parent, seed, notes) too.
    """
    inert = _inert(recipe)
    out = {}
    for f in fields(Recipe):
        value = getattr(recipe, f.name)
        if f.name in METADATA or f.name in inert or value == f.default or LEGACY.get(f.name, _MISSING) == value:
            continue
        out[f.name] = True if f.name == "tta" and value == "fastai" else _canonical(value, f.default)
    return out   # tta: "fastai" alone hashes as `true` did before the other modes, so such runs keep their id


def config_id(recipe: Recipe) -> str:
    """A short hash of the canonical JSON of `effective(recipe)`; the recipe must be resolved (its size, precision
    and memory format known)."""
    if recipe.size is None or recipe.precision == "auto" or recipe.channels_last is None:
        raise ValueError(f"config_id needs a resolved recipe (size, precision and channels_last known); "
                         f"{recipe.name!r} has size={recipe.size}, precision={recipe.precision}, "
                         f"channels_last={recipe.channels_last}")
    canonical = json.dumps(effective(recipe), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def format_value(value) -> str:
    """A value as a label shows it: `lr=0.01`, `stages=((0.5, ...),)`, `callbacks=clip(max_norm=0.5)`."""
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)   # components, as a recipe names them
    return repr(value) if isinstance(value, (float, tuple)) else str(value)


def label(name: str, items: dict) -> str:
    """A row's label: the name plus settings, `baseline [lr=0.01]`; a variant's own bracket takes them in."""
    if not items:
        return name
    text = ", ".join(f"{k}={v}" for k, v in items.items())
    return f"{name[:-1]}, {text}]" if name.endswith("]") else f"{name} [{text}]"


def changes(recipe: Recipe, base: Recipe, skip=()) -> dict:
    """{field: value} where `recipe` takes effect differently from `base` (fields in `skip` left out)."""
    a, b = effective(recipe), effective(base)
    keys = [f.name for f in fields(Recipe) if f.name not in skip]
    return {k: getattr(recipe, k) for k in keys if a.get(k, _MISSING) != b.get(k, _MISSING)}


_MISSING = object()


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


def stage_plan(recipe: Recipe, size: int) -> list[tuple[int, int, float, str]]:
    """The schedule as (size_px, epochs, lr, how) per stage.

    budget=epochs: the stage epochs add up to `recipe.epochs`. budget=pixels: then the lower-resolution stages
    get as many epochs as `budget_pixels` allows (see `pixel_plan`).
    """
    plan = epoch_plan(recipe, size)
    if recipe.budget != "pixels":
        return plan
    if not recipe.budget_pixels:
        raise RecipeError(f"Recipe {recipe.name!r} has budget=pixels but no budget_pixels: a sweep sets it from the "
                          f"reference's pixels (`toolkit run ... --budget pixels`), or set it with --set budget_pixels=N.")
    return pixel_plan(plan, recipe.budget_pixels, recipe.name)


def epoch_plan(recipe: Recipe, size: int) -> list[tuple[int, int, float, str]]:
    """`recipe.epochs` shared out over the stages by their epoch_share (largest remainder: exactly `epochs`)."""
    stages = recipe.stages or ((1.0, 1.0, recipe.lr, recipe.schedule),)
    if len(stages) > recipe.epochs:
        raise RecipeError(f"Recipe {recipe.name!r} has {len(stages)} stages but only {recipe.epochs} epochs: "
                          f"every stage needs at least one epoch; raise --epochs.")
    total = sum(s[1] for s in stages)
    raw = [recipe.epochs * s[1] / total for s in stages]
    n = [max(1, int(r)) for r in raw]
    order = sorted(range(len(stages)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in order:
        if sum(n) >= recipe.epochs:
            break
        n[i] += 1
    while sum(n) > recipe.epochs:  # only when max(1, ...) pushed a tiny share up
        n[n.index(max(n))] -= 1
    return [(max(8, round(size * s[0])), k, float(s[2]), s[3]) for s, k in zip(stages, n)]


def plan_pixels(plan) -> int:
    """Pixels a plan spends per training image: the sum over its stages of epochs x size^2."""
    return sum(k * px * px for px, k, _, _ in plan)


def pixel_plan(plan, budget: int, name: str = "recipe") -> list[tuple[int, int, float, str]]:
    """`plan` respent to `budget` pixels per image: the full-size stages keep their epochs, the lower-resolution
    stages get more (or fewer) epochs, rounded down, so that the plan spends the budget to within one epoch of
    its smallest stage. A plan with one stage size keeps its epochs: its pixels are its own."""
    full = max(px for px, _, _, _ in plan)
    low = [i for i, (px, _, _, _) in enumerate(plan) if px < full]
    if not low:
        return list(plan)
    fixed = plan_pixels([st for st in plan if st[0] == full])
    low_pixels = plan_pixels([plan[i] for i in low])
    spare = budget - fixed
    if spare < sum(plan[i][0] ** 2 for i in low):
        raise RecipeError(f"Recipe {name!r}: a budget of {budget:,} pixels per image leaves too little for its "
                          f"lower-resolution stages after {fixed:,} at full size; give the reference more epochs.")
    epochs = [k for _, k, _, _ in plan]
    for i in low:  # scale every lower-resolution stage alike, rounded down...
        epochs[i] = max(1, math.floor(plan[i][1] * spare / low_pixels))
    grown = True
    while grown:   # ...then add whole epochs, lowest resolution first, while they fit
        grown = False
        for i in sorted(low, key=lambda i: plan[i][0]):
            cost = plan[i][0] ** 2
            if fixed + sum(epochs[j] * plan[j][0] ** 2 for j in low) + cost <= budget:
                epochs[i] += 1
                grown = True
    return [(px, e, lr, how) for (px, _, lr, how), e in zip(plan, epochs)]


# --- overrides: `--set key=value`, checked against the fields and their types ---------------------

def _checked(value, typ, key: str):
    """A Python value for a field of type `typ`, as given or converted without loss (an int for a float, a list for
    a tuple); anything else is a RecipeError, as a bad `key=value` text is."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        return None if value is None else _checked(value, next(a for a in args if a is not type(None)), key)
    ok = (isinstance(value, (bool, np.bool_)) if typ is bool else
          isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) if typ is float else
          isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) if typ is int else
          isinstance(value, (str, os.PathLike)) if typ is str else
          isinstance(value, (tuple, list, str)) if typ == tuple[str, ...] else
          isinstance(value, (tuple, list)) if origin is tuple else True)
    if not ok:
        raise RecipeError(f"Bad value {value!r} for recipe key {key!r}: expected {_type_name(typ)}, got "
                          f"{type(value).__name__}.")
    if typ in (bool, int, float, str):
        return typ(value) if typ is not str else str(value)
    if typ == tuple[str, ...]:
        return tuple(value)
    if origin is tuple:
        return tuple(tuple(x) if isinstance(x, list) else x for x in value)
    return value


def is_number_field(key: str) -> bool:
    """Whether a recipe field holds a number (int or float, or None): a `--vary` list of it is separated by commas."""
    typ = typing.get_type_hints(Recipe).get(key)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    return typ in (int, float) or (len(args) == 1 and args[0] in (int, float))


def _parse(value: str, typ, key: str):
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value.strip().lower() in ("none", "null", "", "auto"):
            return None
        return _parse(value, next(a for a in args if a is not type(None)), key)
    if typ is bool:
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if typ in (int, float):
        return typ(value)
    if typ is str:
        return value
    if typ == tuple[str, ...]:   # callbacks, batch_tfms: `a, b(k=1)`; parsed and checked by the Recipe itself
        return value
    if origin is tuple:  # stages: a Python literal such as ((0.5, 0.5, 3e-3, 'one_cycle'), (1, 0.5, 1e-3, 'fine_tune'))
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError("expected a tuple of (size_scale, epoch_share, lr, how) stages, e.g. "
                             "((0.5, 0.5, 3e-3, 'one_cycle'), (1.0, 0.5, 1e-3, 'fine_tune'))") from None
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        return tuple(tuple(x) if isinstance(x, list) else x for x in parsed)
    raise ValueError(f"unsupported type {typ}")


def pairs(overrides: dict | list[str] | None) -> dict:
    """`["lr=1e-3", "bs=32"]` (as on a command line) or a dict -> {key: value}; an item without `=` is an error."""
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    out = {}
    for item in overrides:
        if "=" not in item:
            raise RecipeError(f"Override {item!r} is not of the form key=value (for example --set lr=1e-3).")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def _invalid(name: str, problems: str) -> RecipeError:
    return RecipeError(f"Recipe {name!r} is invalid: {problems}.", f"{problems}.")


def check_settings(settings, what: str) -> Recipe:
    """`settings` (key=value strings or a dict) checked as recipe fields, outside any recipe: the context of a
    sweep, a grid's values. An error names `what` (e.g. "--set valid_pct=2"), not a recipe the user did not name."""
    try:
        return apply_overrides(Recipe(), settings)
    except RecipeError as e:
        if e.detail == str(e):   # an unknown key, a value of the wrong type: said without a recipe's name already
            raise
        raise RecipeError(f"{what} is invalid: {e.detail}") from None


def apply_overrides(recipe: Recipe, overrides: dict[str, str] | list[str]) -> Recipe:
    """Return `recipe` with `key=value` overrides applied; unknown keys and bad values raise RecipeError."""
    overrides = pairs(overrides)
    hints = typing.get_type_hints(Recipe)
    known = [f.name for f in fields(Recipe)]
    changes = {}
    for key, value in overrides.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise RecipeError(f"Unknown recipe key {key!r}.{hint} Known keys: {', '.join(known)}.")
        if not isinstance(value, str):
            changes[key] = _checked(value, hints[key], key)
            continue
        try:
            changes[key] = _parse(value, hints[key], key)
        except (ValueError, SyntaxError, TypeError) as e:
            raise RecipeError(f"Bad value {value!r} for recipe key {key!r} (type {_type_name(hints[key])}): {e}.") from None
    return replace(recipe, **changes)


def _type_name(typ) -> str:
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")
