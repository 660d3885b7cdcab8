"""What a run folder keeps besides its record: the latest checkpoint, the final weights, and the environment.

    checkpoint.pt   the latest epoch-boundary checkpoint while the run is unfinished (toolkit/train/checkpoint.py)
    model.pth       with --save-model: the final weights ("model"; with EMA also "ema"), plain tensors
    env.json        versions, device, threads, the toolkit's commit
    predictions.npz the class each evaluation predicted for every validation image, the labels, and a hash of
                    the validation files (a comparison counts the images two recipes disagree on from it)
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from ..atomic import write_atomic
from ..errors import CheckpointError

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pth"
PREDICTIONS = "predictions.npz"


def save_predictions(run_dir: Path, predictions: dict) -> Path:
    """{evaluation key: classes, "labels": ..., "valid_hash": ...} to run_dir/predictions.npz, compressed (a few KB
    for thousands of images), atomically."""
    import numpy as np

    def write(p):
        with open(p, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in predictions.items()})
    return write_atomic(Path(run_dir) / PREDICTIONS, write)


def load_predictions(run_dir: Path) -> dict | None:
    """A run's predictions.npz as {key: array, "valid_hash": str}; None where the run kept none (an older run).
    A damaged file raises CheckpointError with what is wrong (never a pickle: allow_pickle is off)."""
    import zipfile

    import numpy as np
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        out["valid_hash"] = str(out["valid_hash"])
        sizes = {len(v) for k, v in out.items() if k != "valid_hash"}
        if "labels" not in out or "plain" not in out or len(sizes) != 1:
            raise ValueError("it lacks the labels or the plain predictions, or its arrays differ in length")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e}); the run is compared by its accuracy "
                              f"alone. `toolkit run --config {Path(run_dir) / 'recipe.json'} --rerun` makes it "
                              f"again.") from None
    return out


def save_checkpoint(run_dir: Path, state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, lists, dicts only) to run_dir/checkpoint.pt, atomically."""
    import torch
    return write_atomic(Path(run_dir) / CHECKPOINT, lambda p: torch.save(state, p))


def save_model(run_dir: Path, state: dict) -> Path:
    """The final weights, {"model": state_dict[, "ema": state_dict]}, to run_dir/model.pth, atomically: plain
    tensors, so `torch.load(path, weights_only=True)` opens it."""
    import torch
    return write_atomic(Path(run_dir) / MODEL, lambda p: torch.save(state, p))


def load_checkpoint(run_dir: Path) -> dict | None:
    """The run's checkpoint, loaded with weights_only=True: a file holding pickled objects is refused."""
    import pickle

    import torch
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = [line.strip() for line in str(e).splitlines() if "Unsupported global" in line]
        raise CheckpointError(
            f"Checkpoint {path} holds more than tensors and plain values, so it is not loaded: unpickling it could "
            f"run code, and only weights_only loading is allowed{' (' + found[0] + ')' if found else ''}. Delete it "
            f"to start this run afresh.") from None
    except (OSError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"Checkpoint {path} cannot be read ({type(e).__name__}: {e}); delete it to start this "
                              f"run afresh.") from None


def environment() -> dict:
    """Versions, device, threads and the toolkit's commit, written next to every run."""
    import fastai
    import timm
    import torch
    import torchvision
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "fastai": fastai.__version__, "timm": timm.__version__, "device": device,
            "torch_threads": torch.get_num_threads(), "host": platform.node(),
            "platform": platform.platform(), "toolkit_commit": _git_commit()}


def _git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
