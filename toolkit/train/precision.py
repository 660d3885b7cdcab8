"""The precision and memory format a run trains in: `auto` decided here, on the device the run starts on, and the
callbacks that apply them.

    precision      fp32 | bf16 | fp16 (CUDA only) | auto: bf16 where the device computes it natively (a CPU with
                   avx512_bf16 or amx_bf16, a GPU that supports it), else fp32
    channels_last  True | False | None (auto): on where it measured faster, the CPU (bench/step.py,
                   `toolkit bench data` rows 8 and 9); off on GPUs,
                   where it has not been measured here

Training, the validation after each epoch and TTA all run under the same autocast: a bf16 model is evaluated in
bf16 (the accuracy cost of evaluating in bf16 rather than fp32 is measured in bench/eval_precision.py).
"""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

from ..errors import RecipeError


@functools.lru_cache(maxsize=None)
def choice(device: str | None = None) -> dict:
    """What `auto` means on `device` (default: the one a run would use): {"precision": ..., "channels_last": ...}."""
    import torch
    kind = _device(device).type
    if kind == "cuda":
        return {"precision": "bf16" if torch.cuda.is_bf16_supported() else "fp32", "channels_last": False}
    if kind == "cpu":
        return {"precision": "bf16" if cpu_has_bf16() else "fp32", "channels_last": True}
    return {"precision": "fp32", "channels_last": False}   # mps and others: untested here, so the safe choice


def _device(device: str | None):
    import torch
    if device is not None:
        return torch.device(device)
    from fastai.torch_core import default_device   # the device every DataLoader of a run is put on
    return torch.device(default_device())


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (avx512_bf16 or amx_bf16): without them torch emulates bf16,
    which is slower than fp32. Read from /proc/cpuinfo, so other systems answer False (fp32, the safe choice)."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def decide(recipe, auto: dict | None = None, device: str | None = None):
    """`recipe` with `precision` and `channels_last` decided: its own values, else `auto` (what auto meant when
    its run was planned, as a results row records it), else this device's `choice`."""
    if recipe.precision != "auto" and recipe.channels_last is not None and auto is not None:
        return recipe
    planned = auto is None
    auto = auto or choice(device)
    out = replace(recipe, precision=auto["precision"] if recipe.precision == "auto" else recipe.precision,
                  channels_last=auto["channels_last"] if recipe.channels_last is None else recipe.channels_last)
    if planned and out.precision == "fp16" and _device(device).type != "cuda":
        raise RecipeError(f"Recipe {recipe.name!r} asks for precision=fp16, which trains on CUDA GPUs only (fp16 needs "
                          f"a gradient scaler and has no fast path on this {_device(device).type}). Use "
                          f"precision=bf16 or fp32, or precision=auto for the fastest that keeps accuracy here.")
    return out


def callbacks(recipe, device) -> list:
    """The callbacks that train `recipe` in its precision and memory format on `device` (auto decided there)."""
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import MixedPrecision
    recipe = decide(recipe, device=str(device))
    cbs = [ChannelsLast()] if recipe.channels_last else []   # the model alone: to_channelslast() also adds fp16
    if recipe.precision == "fp32":
        return cbs
    if _device(device).type == "cuda":
        return [*cbs, MixedPrecision(recipe.precision)]
    from .callbacks import Autocast   # fp16 off CUDA was refused by `decide`
    return [*cbs, Autocast(recipe.precision)]
