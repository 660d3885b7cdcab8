"""The names of the automatic-augmentation policies and operations, importable without torch (recipes check them)."""
from __future__ import annotations

OPS = ("auto_contrast", "brightness", "color", "contrast", "equalize", "invert", "posterize", "rotate", "sharpness",
       "shear_x", "shear_y", "solarize", "solarize_add", "translate_x", "translate_y")
EXTRA_OPS = ("cutout",)  # not in the standard set: add it with autoaug_add="cutout"
POLICIES = ("randaugment", "trivialaugment", "autoaugment")


def parse_ops(ops: str = "", add: str = "") -> tuple[str, ...]:
    """The operation set: `ops` (comma-separated) restricts the standard set, `add` appends extra operations."""
    chosen = [o.strip() for o in ops.split(",") if o.strip()] or list(OPS)
    extra = [o.strip() for o in add.split(",") if o.strip()]
    unknown = [o for o in chosen if o not in OPS] + [o for o in extra if o not in (*OPS, *EXTRA_OPS)]
    if unknown:
        raise ValueError(f"unknown augmentation operation(s) {', '.join(unknown)}; known: "
                         f"{', '.join(OPS + EXTRA_OPS)}")
    return tuple(dict.fromkeys(chosen + extra))
