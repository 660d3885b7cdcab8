"""Architectures by name: fastai's xresnets, or any timm model as `timm:NAME` (random init)."""
from __future__ import annotations

import difflib

from fastai.vision.models import xresnet

from .errors import RecipeError

TIMM_PREFIX = "timm:"
XRESNETS = tuple(n for n in xresnet.__all__ if n.startswith("xresnet") or n.startswith("xse_resnext"))


def check_arch(arch: str) -> None:
    """Raise a clear RecipeError for an architecture name nobody can build."""
    if arch.startswith(TIMM_PREFIX):
        import timm
        name = arch[len(TIMM_PREFIX):]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f" Did you mean: {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
            raise RecipeError(f"Unknown timm model {name!r}.{hint} `python -c \"import timm; print(timm.list_models('resnet*'))\"` lists them.")
    elif arch not in XRESNETS:
        close = difflib.get_close_matches(arch, XRESNETS, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise RecipeError(f"Unknown architecture {arch!r}.{hint} Use a fastai xresnet ({', '.join(XRESNETS[:4])}, ...) "
                          f"or any timm model as timm:NAME (e.g. timm:resnet18).")


def create_model(arch: str, n_out: int):
    """A randomly initialised model with `n_out` outputs."""
    check_arch(arch)
    if arch.startswith(TIMM_PREFIX):
        import timm
        return timm.create_model(arch[len(TIMM_PREFIX):], pretrained=False, num_classes=n_out)
    return getattr(xresnet, arch)(n_out=n_out)
