"""Run folders, their status, and the results table (one row per finished run): the records a report reads.

    RESULTS/runs.csv                     one row per finished run, appended under a file lock
    RESULTS/runs/<time>-<name>-<dataset>-s<seed>-<id>/
        recipe.json   the resolved recipe, its config_id and context, stage plan, dataset path, pack
        env.json      versions, device, threads, the toolkit's commit
        epochs.csv    one row per finished epoch, flushed at once
        metrics.json  final metrics
        status.json   running | finished | failed | interrupted
"""
from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import secrets
import subprocess
import time
import typing
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd

from . import registry
from .atomic import lock, write_atomic, write_json
from .recipe import METADATA, Recipe, apply_overrides, changes, config_id

TABLE = "runs.csv"
RECIPE_FIELDS = [f.name for f in fields(Recipe) if f.name not in ("name", "seed")]
METRICS = ["accuracy", "valid_loss", "accuracy_tta", "tta_seconds", "wall_seconds", "train_seconds",
           "images_per_second", "images_seen", "pixels_seen", "threads", "device", "epochs_done", "n_train",
           "n_valid"]
COLUMNS = ["run_id", "name", "config_id", "seed", "context", *METRICS, "finished_at", "run_dir", *RECIPE_FIELDS]
NUMERIC = [*(m for m in METRICS if m != "device"), "seed", "size", "epochs", "bs", "lr", "presize", "min_scale", "warmup_epochs", "hold_epochs",
           "lr_decay", "mixup", "cutmix", "mix_switch", "mix_frac", "label_smoothing", "autoaug_n", "autoaug_m",
           "tta_n", "tta_beta", "budget_pixels"]


# --- run folders ---------------------------------------------------------------------------------------

def new_run_dir(results: str | Path, recipe: Recipe) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{recipe.name}-{Path(recipe.dataset).name}-s{recipe.seed}").strip("_")
    run_dir = Path(results) / "runs" / f"{stamp}-{slug}-{secrets.token_hex(2)}"
    run_dir.mkdir(parents=True)
    return run_dir


def start(run_dir: Path, recipe: Recipe, context: dict, data=None) -> None:
    """Write what a run is about to do: recipe.json (with its config_id and context), env.json, status running."""
    info = {"config_id": config_id(recipe), "context": context}
    if data is not None:
        info.update(dataset_path=str(data.ds.path), stage_plan=data.plan, skipped_files=list(data.ds.bad_files),
                    pack=str(data.pack.path) if data.pack else None)
    write_json(run_dir / "recipe.json", {**recipe.to_dict(), **info})
    write_json(run_dir / "env.json", environment())
    mark(run_dir, "running", pid=os.getpid(), host=platform.node())


def mark(run_dir: Path, status: str, **info) -> None:
    write_json(Path(run_dir) / "status.json", {"status": status, **info,
                                               "at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def epochs_done(run_dir: Path) -> int:
    log = Path(run_dir) / "epochs.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0


def finish(results: str | Path, run_dir: Path, recipe: Recipe, context: dict, metrics: dict) -> dict:
    """Record a finished run: metrics.json, status finished, and its row appended to the results table."""
    write_json(run_dir / "metrics.json", metrics)
    row = result_row(recipe, context, run_dir, metrics)
    mark(run_dir, "finished", epochs_done=metrics.get("epochs_done"))
    append_row(results, row)
    return row


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


# --- the results table ------------------------------------------------------------------------------

def result_row(recipe: Recipe, context: dict, run_dir: Path, metrics: dict) -> dict:
    """One row: the run's id, name, config_id, seed and context, its metrics, and the whole recipe, flattened."""
    flat = {k: _cell(v) for k, v in recipe.to_dict().items() if k in RECIPE_FIELDS}
    return {"run_id": run_dir.name, "name": recipe.name, "config_id": config_id(recipe), "seed": recipe.seed,
            "context": json.dumps(context, sort_keys=True), **{k: metrics.get(k, "") for k in METRICS},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": str(run_dir), **flat}


def _cell(value):
    return json.dumps(value) if isinstance(value, tuple) else value


def table_lock(results: str | Path):
    return lock(Path(results) / (TABLE + ".lock"))


def append_row(results: str | Path, row: dict) -> None:
    """Append one row to RESULTS/runs.csv under the table's lock, so concurrent runs never interleave.

    A table written by an older version is first rewritten with today's columns, atomically (see `upgrade`).
    """
    path = Path(results) / TABLE
    with table_lock(results):
        if path.exists() and path.stat().st_size:
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            if header != COLUMNS:
                upgraded = upgrade(pd.read_csv(path, dtype=str, keep_default_na=False))
                write_atomic(path, lambda p: upgraded.to_csv(p, index=False))
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            if fh.tell() == 0:
                w.writeheader()
            w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())


def load_table(results: str | Path) -> pd.DataFrame:
    """The results table with today's columns (an older table is upgraded in memory), numbers as numbers."""
    path = Path(results) / TABLE
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = raw if list(raw.columns) == COLUMNS else upgrade(raw)
    for col in NUMERIC:
        table[col] = pd.to_numeric(table[col].replace("", None), errors="coerce")
    return table


def row_recipe(row) -> Recipe:
    """The resolved recipe of a table row, read back from its flattened columns (each cell typed by its field)."""
    hints = typing.get_type_hints(Recipe)
    values = {"name": row["name"], "seed": row["seed"]}
    for k in RECIPE_FIELDS:
        v = row[k]
        if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            values[k] = None if k == "size" else "" if hints[k] is str else Recipe.__dataclass_fields__[k].default
        elif k == "stages":
            values[k] = json.loads(v) if isinstance(v, str) else v
        elif hints[k] is bool:
            values[k] = str(v).lower() in ("true", "1")
        elif hints[k] in (int, int | None):
            values[k] = int(float(v))
        elif hints[k] is float:
            values[k] = float(v)
        else:
            values[k] = str(v)
    values["seed"] = int(float(values["seed"]))
    return Recipe.from_dict(values)


def upgrade(old: pd.DataFrame) -> pd.DataFrame:
    """A table from an older version, with today's columns.

    Before config ids (a column `experiment`, no recipe): each row's recipe is read from its run folder's
    recipe.json, or else rebuilt from the registered recipe of that name and the columns the row has; its
    context is what differs from the registered recipe. A newer recipe field missing from the table gets its
    default (a field's default keeps the behaviour it had before the field existed).
    """
    if "experiment" not in old.columns:
        defaults = {f.name: _cell(f.default) for f in fields(Recipe)}
        return old.assign(**{c: defaults.get(c, "") for c in COLUMNS if c not in old.columns})[COLUMNS]
    return pd.DataFrame([_upgrade_row(r) for _, r in old.iterrows()], columns=COLUMNS)


def _upgrade_row(old) -> dict:
    registered = registry.registered(old["experiment"])
    saved = Path(str(old.get("run_dir", ""))) / "recipe.json"
    try:
        d = json.loads(saved.read_text())
        recipe = Recipe.from_dict({**d, "dataset": _dataset(d.get("dataset", ""), d.get("dataset_path"))})
    except (OSError, ValueError, TypeError):
        d = {}
        base = registered or Recipe(name=old["experiment"])
        cols = {k: old[k] for k in ("size", "epochs", "arch", "bs", "lr", "seed") if old.get(k, "") != ""}
        recipe = apply_overrides(base, {**cols, "dataset": _dataset(old["dataset"])})
    # Before the `loader` column existed every run read the image folder.
    recipe = replace(recipe, loader=old.get("loader") or d.get("loader") or "folder")
    if registered is not None:
        recipe = replace(recipe, parent=registered.parent)
        context = {k: str(v) for k, v in changes(recipe, registered, skip=METADATA).items()}
    else:
        context = {}
    metrics = {k: old.get(k, "") for k in METRICS}
    row = result_row(recipe, context, Path(str(old.get("run_dir", ""))), metrics)
    return {**row, "run_id": old["run_id"], "finished_at": old.get("finished_at", "")}


def _dataset(name: str, path: str | None = None) -> str:
    from .data import DOWNLOADS, EMBEDDED
    if name in EMBEDDED or name in DOWNLOADS:
        return name
    return str(Path(path or name).expanduser().resolve())
