"""Run folders, their status and checkpoints, and the results table (one row per finished run).

    RESULTS/runs.csv                     one row per finished run, appended under a file lock
    RESULTS/runs/<time>-<name>-<dataset>-s<seed>-<id>/
        recipe.json     the resolved recipe, its config_id and context, stage plan, dataset path, pack
        env.json        versions, device, threads, the toolkit's commit
        epochs.csv      one row per finished epoch, flushed at once
        checkpoint.pt   the latest epoch-boundary checkpoint while the run is unfinished
        model.pth       with --save-model: the final weights ("model"; with EMA also "ema"), plain tensors
        metrics.json    final metrics
        status.json     running (pid, process start, host) | finished | failed | interrupted

A run found `running` whose process is gone is `killed` (same host: no such pid, or a pid of another process);
on another host it is `unknown`.
"""
from __future__ import annotations

import csv
import io
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

from ..recipes import registry
from ..atomic import check_folder, lock, write_atomic, write_json
from ..errors import CheckpointError, TableError, ToolkitError
from ..recipes.recipe import LEGACY, METADATA, Recipe, apply_overrides, changes, config_id
from ..recipes.vocabulary import EVALUATIONS
from ..train import precision

TABLE = "runs.csv"
RECIPE_FIELDS = [f.name for f in fields(Recipe) if f.name not in ("name", "seed")]
# Each evaluation besides the plain one (toolkit/train/evaluation.py): its accuracy and its seconds.
EVALUATED = [c for key in EVALUATIONS.values() for c in (f"accuracy_{key}", f"{key}_seconds")]
METRICS = ["accuracy", "valid_loss", *EVALUATED, "eval_seconds", "wall_seconds", "train_seconds",
           "images_per_second", "images_seen", "pixels_seen", "threads", "device", "epochs_done", "attempts",
           "restarted", "started_at", "n_train", "n_valid"]
COLUMNS = ["run_id", "name", "config_id", "seed", "context", "auto", *METRICS, "finished_at", "run_dir", *RECIPE_FIELDS]
NUMERIC = [*(m for m in METRICS if m not in ("device", "restarted", "started_at")), "seed", "size", "epochs", "bs",
           "lr", "presize", "min_scale", "warmup_epochs", "hold_epochs",
           "lr_decay", "mixup", "cutmix", "mix_switch", "mix_frac", "label_smoothing", "autoaug_n", "autoaug_m",
           "tta_n", "tta_beta", "eval_scale", "ema", "budget_pixels"]


# --- run folders ---------------------------------------------------------------------------------------

def new_run_name(results: str | Path, recipe: Recipe) -> Path:
    """A new run folder's path, not yet created: RESULTS/runs/<time>-<name>-<dataset>-s<seed>-<id>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{recipe.name}-{Path(recipe.dataset).name}-s{recipe.seed}").strip("_")
    return Path(results) / "runs" / f"{stamp}-{slug}-{secrets.token_hex(2)}"


def new_run_dir(results: str | Path, recipe: Recipe) -> Path:
    run_dir = new_run_name(results, recipe)
    run_dir.mkdir(parents=True)
    return run_dir


CHECKPOINT = "checkpoint.pt"


def now() -> str:
    """A timestamp with milliseconds: runs' start and end times tell which ran at the same time."""
    from datetime import datetime
    return datetime.now().isoformat(timespec="milliseconds")


# What a run's recipe.json holds besides the recipe's fields, in this version and every older one.
RUN_INFO = ("config_id", "context", "auto", "dataset_path", "stage_plan", "skipped_files", "pack")


def start(run_dir: Path, recipe: Recipe, context: dict, data=None, attempt: int = 1, auto: dict | None = None) -> None:
    """Write what a run is about to do: recipe.json (with its config_id, context and what `auto` meant when it was
    planned), env.json, status running."""
    info = {"config_id": config_id(recipe), "context": context, "auto": auto or precision.choice()}
    if data is not None:
        info.update(dataset_path=str(data.ds.path), stage_plan=data.plan, skipped_files=list(data.ds.bad_files),
                    pack=str(data.pack.path) if data.pack else None)
    write_json(run_dir / "recipe.json", {**recipe.to_dict(), **info})
    write_json(run_dir / "env.json", environment())
    mark(run_dir, "running", attempt=attempt, pid=os.getpid(), started=_process_start(os.getpid()),
         host=platform.node())


def mark(run_dir: Path, status: str, **info) -> None:
    write_json(Path(run_dir) / "status.json", {"status": status, **info,
                                               "at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def read_status(run_dir: Path) -> dict:
    """status.json, with `running` told apart from `killed` (process gone) and `unknown` (another host)."""
    try:
        st = json.loads((Path(run_dir) / "status.json").read_text())
    except (OSError, ValueError):
        return {"status": "unknown", "why": "no readable status.json"}
    if st.get("status") == "running":
        if st.get("host") != platform.node():
            return {**st, "status": "unknown", "why": f"running on {st.get('host')}, which cannot be checked from here"}
        if not _alive(st.get("pid"), st.get("started")):
            return {**st, "status": "killed"}
    return st


def _process_start(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, /proc), so a recycled pid is not taken for it;
    "dead" for a process that has exited but not been reaped yet (a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return "dead" if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return ""  # no /proc (macOS): the pid alone is checked


def _alive(pid, started) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    now = _process_start(int(pid))
    return now != "dead" and (not started or now == started)


def find_runs(results: str | Path) -> dict[tuple, list[Path]]:
    """Run folders by (name, config_id, seed), oldest first (their names start with the time they started)."""
    out: dict[tuple, list[Path]] = {}
    for saved in sorted((Path(results) / "runs").glob("*/recipe.json")):
        try:
            d = json.loads(saved.read_text())
            out.setdefault((d["name"], d["config_id"], int(d["seed"])), []).append(saved.parent)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a folder cut short before its recipe was written: nothing to resume from
    return out


def list_runs(results: str | Path) -> pd.DataFrame:
    """One line per run folder: its name and seed, status, epochs done of planned, attempts, and age."""
    lines = []
    for run_dir in sorted((Path(results) / "runs").glob("*/")):
        st = read_status(run_dir)
        try:
            saved = json.loads((run_dir / "recipe.json").read_text())
            name, seed, planned = saved["name"], saved["seed"], sum(k for _, k, *_ in saved.get("stage_plan", []))
        except (OSError, ValueError, KeyError, TypeError):
            name, seed, planned = "?", "", ""
        age = time.time() - run_dir.stat().st_mtime
        lines.append({"run": run_dir.name, "name": name, "seed": seed, "status": st["status"],
                      "epochs": f"{epochs_done(run_dir)}/{planned}", "attempts": st.get("attempt", 1),
                      "checkpoint": "yes" if (run_dir / CHECKPOINT).exists() else "",
                      "age": _age(age)})
    return pd.DataFrame(lines)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def recover(results: str | Path, run_dir: Path) -> dict:
    """The row of a finished run whose row never reached the table (killed in between), appended now."""
    saved = json.loads((run_dir / "recipe.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = result_row(Recipe.from_dict({**LEGACY, **saved}), saved.get("context", {}), run_dir, metrics,
                     saved.get("auto") or dict(LEGACY))
    append_row(results, row)
    return row


def attempts(run_dir: Path) -> int:
    """How many times the run in `run_dir` was started (0 for a folder that no run has started in yet)."""
    if not (Path(run_dir) / "status.json").exists():
        return 0
    return int(read_status(run_dir).get("attempt", 1))


def epochs_done(run_dir: Path) -> int:
    log = Path(run_dir) / "epochs.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0


def finish(results: str | Path, run_dir: Path, recipe: Recipe, context: dict, metrics: dict,
           keep_checkpoint: bool = False, append: bool = True, auto: dict | None = None) -> dict:
    """Record a finished run: metrics.json, status finished, its row in the results table (unless not `append`:
    a driver records it); drop its checkpoint."""
    write_json(run_dir / "metrics.json", metrics)
    row = result_row(recipe, context, run_dir, metrics, auto)
    mark(run_dir, "finished", epochs_done=metrics.get("epochs_done"), attempt=metrics.get("attempts", 1))
    if append:
        append_row(results, row)
    if not keep_checkpoint:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return row


# --- checkpoints -------------------------------------------------------------------------------------

def save_checkpoint(run_dir: Path, state: dict) -> Path:
    """Write `state` (tensors, numbers, strings, lists, dicts only) to run_dir/checkpoint.pt, atomically."""
    import torch
    return write_atomic(Path(run_dir) / CHECKPOINT, lambda p: torch.save(state, p))


MODEL = "model.pth"


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


# --- the results table ------------------------------------------------------------------------------

def result_row(recipe: Recipe, context: dict, run_dir: Path, metrics: dict, auto: dict | None = None) -> dict:
    """One row: the run's id, name, config_id, seed, context and `auto` (default: this device's), its metrics, and
    the whole recipe, flattened."""
    flat = {k: _cell(v) for k, v in recipe.to_dict().items() if k in RECIPE_FIELDS}
    return {"run_id": run_dir.name, "name": recipe.name, "config_id": config_id(recipe), "seed": recipe.seed,
            "context": json.dumps(context, sort_keys=True), "auto": json.dumps(auto or precision.choice(), sort_keys=True),
            **{k: metrics.get(k, "") for k in METRICS},
            "finished_at": now(), "run_dir": str(run_dir), **flat}


def row_auto(row) -> dict:
    """What `auto` meant when a row's run was planned; a row from before the column: LEGACY (fp32, contiguous)."""
    cell = row.get("auto", "") if hasattr(row, "get") else ""
    return json.loads(cell) if isinstance(cell, str) and cell else dict(LEGACY)


def _cell(value):
    return json.dumps(value) if isinstance(value, tuple) else value


def table_lock(results: str | Path):
    return lock(Path(results) / (TABLE + ".lock"))


def append_row(results: str | Path, row: dict) -> None:
    """Add one row to RESULTS/runs.csv under the table's lock, so concurrent runs never interleave.

    The table is checked first (a damaged one is never written to), and rewritten whole under a temporary name,
    then renamed: a kill or a full disk leaves it byte-identical to before. A table written by an older version
    is upgraded to today's columns on the way (see `upgrade`).
    """
    path = Path(results) / TABLE
    with table_lock(results):
        old = path.read_bytes() if path.exists() else b""
        header = check_table(path, old)
        if header and header != COLUMNS:
            table = upgrade(pd.read_csv(path, dtype=str, keep_default_na=False))
            old = table.to_csv(index=False, lineterminator="\n").encode()
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        if not old:
            w.writeheader()
        w.writerow(row)
        write_atomic(path, lambda p: _write_synced(p, old + buf.getvalue().encode()))


def _write_synced(path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def check_table(path: Path, data: bytes | None = None) -> list[str]:
    """The header of a results table whose content is whole, or a TableError naming the file and the line.

    Whole: it ends with a newline, every line has every field, and every number parses.
    """
    path = Path(path)
    if data is None:
        data = path.read_bytes() if path.exists() else b""
    if not data:
        return []
    fix = (" The file was not changed. `toolkit runs --rebuild-table` writes a fresh table from the run folders "
           "(under a new name) for you to check and put in its place.")
    text = data.decode("utf-8", errors="replace")
    if not text.endswith("\n"):
        raise TableError(f"The results table {path} is damaged: its last line (line {text.count(chr(10)) + 1}) is "
                         f"cut short (no newline at the end), as a killed write leaves it.{fix}")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    numeric = [i for i, c in enumerate(header) if c in NUMERIC]
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise TableError(f"The results table {path} is damaged: line {n} has {len(r)} fields where the header "
                             f"has {len(header)}.{fix}")
        for i in numeric:
            try:
                float(r[i] or 0)
            except ValueError:
                raise TableError(f"The results table {path} is damaged: line {n}, column {header[i]!r} holds "
                                 f"{r[i]!r}, not a number.{fix}") from None
    return header


def load_table(results: str | Path) -> pd.DataFrame:
    """The results table (checked; an older one upgraded in memory), numbers as numbers."""
    path = check_folder(results, "--results") / TABLE
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    data = path.read_bytes()
    if not data:   # an empty file is a table with no rows yet (the next append writes its header)
        return pd.DataFrame(columns=COLUMNS)
    check_table(path, data)
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    table = raw if list(raw.columns) == COLUMNS else upgrade(raw)
    for col in NUMERIC:
        table[col] = pd.to_numeric(table[col].replace("", None), errors="coerce")
    table["run_dir"] = [_located(results, d) for d in table["run_dir"]]
    return table


def _located(results: str | Path, run_dir: str) -> str:
    """A run folder as seen from here: the table may hold a path relative to where the run was started."""
    here = Path(results) / "runs" / Path(run_dir).name
    return str(here) if run_dir and not Path(run_dir).exists() and here.exists() else run_dir


def rebuild_table(results: str | Path) -> tuple[Path, int, int]:
    """A fresh results table from the finished run folders, written next to runs.csv under a new name.

    Returns (path, rows written, run folders skipped because they are not finished or cannot be read).
    """
    rows, skipped = [], 0
    for run_dir in sorted((Path(results) / "runs").glob("*/")):
        try:
            if read_status(run_dir)["status"] != "finished":
                raise ValueError("not finished")
            saved = json.loads((run_dir / "recipe.json").read_text())
            metrics = json.loads((run_dir / "metrics.json").read_text())
            row = result_row(Recipe.from_dict({**LEGACY, **saved}), saved.get("context", {}), run_dir, metrics,
                             saved.get("auto") or dict(LEGACY))
            row["finished_at"] = read_status(run_dir).get("at", "")
            rows.append(row)
        except (OSError, ValueError, TypeError, ToolkitError):
            skipped += 1
    dest = Path(results) / f"runs.rebuilt-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    write_atomic(dest, lambda p: pd.DataFrame(rows, columns=COLUMNS).to_csv(p, index=False))
    return dest, len(rows), skipped


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
        elif hints[k] in (bool, bool | None):
            values[k] = str(v).lower() in ("true", "1", "1.0")
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
    default (a field's default keeps the behaviour it had before the field existed), or its LEGACY value where the
    default is decided when a run starts (precision: every older run trained in fp32); `auto` too.
    """
    if "experiment" not in old.columns:
        defaults = {f.name: _cell(LEGACY.get(f.name, f.default)) for f in fields(Recipe)}
        defaults["auto"] = json.dumps(LEGACY, sort_keys=True)
        return old.assign(**{c: defaults.get(c, "") for c in COLUMNS if c not in old.columns})[COLUMNS]
    return pd.DataFrame([_upgrade_row(r) for _, r in old.iterrows()], columns=COLUMNS)


def _upgrade_row(old) -> dict:
    registered = registry.registered(old["experiment"])
    saved = Path(str(old.get("run_dir", ""))) / "recipe.json"
    try:
        d = json.loads(saved.read_text())
        recipe = Recipe.from_dict({**LEGACY, **d, "dataset": _dataset(d.get("dataset", ""), d.get("dataset_path"))})
    except (OSError, ValueError, TypeError):
        d = {}
        base = registered or Recipe(name=old["experiment"])
        cols = {k: old[k] for k in ("size", "epochs", "arch", "bs", "lr", "seed") if old.get(k, "") != ""}
        recipe = apply_overrides(base, {**cols, "dataset": _dataset(old["dataset"])})
    # Before the `loader` column existed every run read the image folder.
    recipe = replace(recipe, loader=old.get("loader") or d.get("loader") or "folder", **LEGACY)
    if registered is not None:
        recipe = replace(recipe, parent=registered.parent)
        context = {k: str(v) for k, v in changes(recipe, registered, skip=METADATA).items()}
    else:
        context = {}
    metrics = {k: old.get(k, "") for k in METRICS}
    row = result_row(recipe, context, Path(str(old.get("run_dir", ""))), metrics, dict(LEGACY))
    return {**row, "run_id": old["run_id"], "finished_at": old.get("finished_at", "")}


def _dataset(name: str, path: str | None = None) -> str:
    from ..data.datasets import DOWNLOADS, EMBEDDED
    if name in EMBEDDED or name in DOWNLOADS:
        return name
    return str(Path(path or name).expanduser().resolve())
