"""The names of the automatic-augmentation policies and operations, of fastai's optimizers, activations and
poolings, and the words `tta` takes, importable without torch (recipes check them)."""
from __future__ import annotations

from .evaluations import TTA_MODES

OPS = ("auto_contrast", "brightness", "color", "contrast", "equalize", "invert", "posterize", "rotate", "sharpness",
       "shear_x", "shear_y", "solarize", "solarize_add", "translate_x", "translate_y")
EXTRA_OPS = ("cutout",)  # not in the standard set: add it with autoaug_add="cutout"
POLICIES = ("randaugment", "trivialaugment", "autoaugment")
# fastai's optimizers by the names a recipe's `opt` takes (toolkit/train/optimizers.py); a registered one besides
OPTIMIZERS = ("adam", "sgd", "ranger", "lamb", "rmsprop", "radam", "qhadam")
# fastai xresnet's activation (act_cls) and the pooling of its shortcuts (pool), by name (toolkit/train/models.py)
ACTIVATIONS = ("relu", "mish", "swish", "silu", "gelu", "leaky_relu")
POOLS = ("avg", "max")


def parse_ops(ops: str = "", add: str = "") -> tuple[str, ...]:
    """The operation set: `ops` (comma-separated) restricts the standard set, `add` appends extra operations."""
    chosen = [o.strip() for o in ops.split(",") if o.strip()] or list(OPS)
    extra = [o.strip() for o in add.split(",") if o.strip()]
    unknown = [o for o in chosen if o not in OPS] + [o for o in extra if o not in (*OPS, *EXTRA_OPS)]
    if unknown:
        raise ValueError(f"unknown augmentation operation(s) {', '.join(unknown)}; known: "
                         f"{', '.join(OPS + EXTRA_OPS)}")
    return tuple(dict.fromkeys(chosen + extra))


_YES, _NO = ("true", "1", "1.0", "yes", "on"), ("false", "0", "0.0", "no", "off", "none", "nan", "")


def parse_tta(value) -> str:
    """`tta` as a recipe stores it: the modes asked for, comma-separated in TTA_MODES order ("" = none).

    true (or True, as older runs recorded it) means "fastai"; "all" means every mode."""
    if isinstance(value, bool) or value is None:
        return "fastai" if value else ""
    words = [w.strip().lower() for w in str(value).replace("+", ",").split(",")]
    modes = set()
    for w in words:
        if w in _YES:
            modes.add("fastai")
        elif w == "all":
            modes |= set(TTA_MODES)
        elif w not in _NO:
            if w not in TTA_MODES:
                raise ValueError(f"tta takes one or more of {', '.join(TTA_MODES)} (comma-separated), all, true "
                                 f"(= fastai) or false (got {value!r})")
            modes.add(w)
    return ",".join(m for m in TTA_MODES if m in modes)
