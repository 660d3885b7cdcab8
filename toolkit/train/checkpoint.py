"""What a checkpoint holds, and how a Learner is put back: the state at an epoch boundary, enough to go on exactly.

A checkpoint is a dict of tensors and plain values only (so it loads with `torch.load(weights_only=True)`):

    position   the stage and the epoch within it where training goes on, and the epochs done
    model      the model's state_dict (weights and BatchNorm statistics)
    opt        fastai's optimizer state and hyper-parameters (numpy numbers stored as plain ones)
    rng        every random generator training draws from: python's (the toolkit's Mix and BatchPolicy),
               numpy's, torch's (BatchAugment, fastai's MixUp, shuffling inside torch), CUDA's, and the
               `random.Random` each fastai DataLoader holds for its shuffling
    log        the compute counted so far: training seconds, images and pixels
    smooth     the Recorder's smoothed training loss (fastai resets it at each fit, not at each epoch)
    scaler     fp16's GradScaler state (its loss scale and growth tracker), {} without one
    ema        the weight average (`WeightEMA`): its weights and step, {} without one
"""
from __future__ import annotations

import random

import numpy as np
import torch
from fastcore.foundation import L

FORMAT = 1


def plain(obj):
    """`obj` with tensors copied to the CPU, numpy arrays as tensors and numpy numbers as Python ones."""
    if isinstance(obj, torch.Tensor):  # a plain Tensor: fastai's subclasses would need unpickling code
        return obj.detach().to("cpu", copy=True).as_subclass(torch.Tensor)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, L)):
        return type(obj)(plain(v) for v in obj) if isinstance(obj, tuple) else [plain(v) for v in obj]
    return obj


def capture(learn, position: dict, log: dict) -> dict:
    """The state of `learn` (and of every random generator) at the end of an epoch."""
    np_state = np.random.get_state()
    return {
        "format": FORMAT, "position": dict(position), "log": dict(log),
        "model": plain(learn.model.state_dict()),
        "smooth": {"count": learn.recorder.smooth_loss.count, "val": plain(learn.recorder.smooth_loss.val)},
        "opt": plain(learn.opt.state_dict()),
        "scaler": plain(scaler.state_dict()) if (scaler := getattr(learn, "scaler", None)) is not None else {},
        "ema": plain(ema.state()) if (ema := getattr(learn, "weight_ema", None)) is not None else {},
        "rng": {"python": random.getstate(), "numpy": [np_state[0], plain(np_state[1]), *np_state[2:]],
                "torch": torch.get_rng_state(),
                "cuda": [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
                "dls": {"train": learn.dls.train.rng.getstate(), "valid": learn.dls.valid.rng.getstate()}},
    }


def restore_model(learn, state: dict) -> None:
    learn.model.load_state_dict(state["model"])


def restore_ema(learn, state: dict) -> None:
    """The weight average as it stood (a checkpoint from before EMA existed has none: the run starts it afresh)."""
    ema = getattr(learn, "weight_ema", None)
    if ema is not None:
        ema.load(state.get("ema", {}))


def restore_rng(learn, state: dict) -> None:
    """Every generator as it was when the checkpoint was taken (the DataLoaders' too)."""
    rng = state["rng"]
    random.setstate(_tuples(rng["python"]))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    learn.dls.train.rng.setstate(_tuples(rng["dls"]["train"]))
    learn.dls.valid.rng.setstate(_tuples(rng["dls"]["valid"]))


def restore_smooth_loss(learn, state: dict) -> None:
    """The smoothed training loss the epoch log reports, as it stood (call after the Recorder's before_fit)."""
    learn.recorder.smooth_loss.count = state["smooth"]["count"]
    learn.recorder.smooth_loss.val = state["smooth"]["val"]


def restore_scaler(learn, state: dict) -> None:
    """fp16's loss scale as it stood (call after MixedPrecision's before_fit has made the fit's GradScaler)."""
    scaler = getattr(learn, "scaler", None)
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def restore_opt(learn, state: dict) -> None:
    """The optimizer's state (moments, steps) and hyper-parameters, on the device of the parameters."""
    if learn.opt is None:
        learn.create_opt()
    params = [p for p, *_ in learn.opt.all_params()]
    opt_state = [{k: v.to(p.device) if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                 for p, s in zip(params, state["opt"]["state"])]
    learn.opt.load_state_dict({"state": opt_state, "hypers": L(dict(h) for h in state["opt"]["hypers"])})


def _tuples(state):
    """random.Random states are nested tuples; a loaded checkpoint may give lists back."""
    return tuple(_tuples(s) if isinstance(s, (list, tuple)) else s for s in state)
