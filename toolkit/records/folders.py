"""Run folders: where each run keeps what it did, and whether the process running it is still alive.

    RESULTS/runs/<time>-<name>-<dataset>-s<seed>-<id>/
        recipe.json     the resolved recipe and RUN_INFO: its config_id, context, what `auto` meant, what its row
                        means (label, role, reference), the dataset's identity, path and source (how it was
                        read and split; what a proxy was made from), stage plan and pack
        env.json        versions, device, threads, the toolkit's commit (toolkit/records/artifacts.py)
        epochs.csv      one row per finished epoch, flushed at once
        metrics.json    final metrics
        status.json     running (pid, process start, host) | finished | failed | interrupted
        checkpoint.pt, model.pth   see toolkit/records/artifacts.py
        code-<kind>-<name>.py       the source of each registered component the recipe names, as it ran (its hash
                        is in the recipe's `code`: the hash says that code changed, this text what it was)

A run found `running` whose process is gone is `killed` (same host: no such pid, or a pid of another process);
on another host it is `unknown`.
"""
from __future__ import annotations

import json
import os
import platform
import re
import secrets
import time
from pathlib import Path

import pandas as pd

from ..atomic import write_atomic, write_json
from ..recipes import components
from ..recipes.recipe import LEGACY, Recipe
from ..recipes.identity import config_id
from .artifacts import CHECKPOINT, environment

# What a run's recipe.json holds besides the recipe's fields, in this version and every older one.
RUN_INFO = ("config_id", "context", "auto", "meaning", "dataset_id", "dataset_path", "dataset_source", "stage_plan",
            "skipped_files", "pack", "code_from")


def new_run_name(results: str | Path, recipe: Recipe) -> Path:
    """A new run folder's path, not yet created: RESULTS/runs/<time>-<name>-<dataset>-s<seed>-<id>."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(results) / "runs" / f"{stamp}-{slug(f'{recipe.name}-{Path(recipe.dataset).name}-s{recipe.seed}')}-" \
                                    f"{secrets.token_hex(2)}"


def slug(text: str) -> str:
    """`text` as part of a folder's name: runs of other characters than letters, digits and _.+- become one _."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def new_run_dir(results: str | Path, recipe: Recipe) -> Path:
    run_dir = new_run_name(results, recipe)
    run_dir.mkdir(parents=True)
    return run_dir


def now() -> str:
    """A timestamp with milliseconds: runs' start and end times tell which ran at the same time."""
    from datetime import datetime
    return datetime.now().isoformat(timespec="milliseconds")


def start(run_dir: Path, recipe: Recipe, context: dict, data=None, attempt: int = 1, auto: dict | None = None,
          meaning: dict | None = None) -> None:
    """Write what a run is about to do: recipe.json (with its config_id, context, what `auto` meant when it was
    planned and what its row means), env.json, status running."""
    info = {"config_id": config_id(recipe), "context": context, "auto": auto or dict(LEGACY), "meaning": meaning or {}}
    if recipe.code:
        info["code_from"] = components.origins(recipe)
    if data is not None:
        info.update(dataset_id=data.ds.fingerprint, dataset_path=str(data.ds.path), dataset_source=data.ds.describe(),
                    stage_plan=data.plan,
                    skipped_files=list(data.ds.bad_files), pack=str(data.pack.path) if data.pack else None)
    write_json(run_dir / "recipe.json", {**recipe.to_dict(), **info})
    for name, text in components.sources(recipe).items():
        write_atomic(run_dir / f"code-{name}", lambda p, text=text: Path(p).write_text(text))
    write_json(run_dir / "env.json", environment())
    mark(run_dir, "running", attempt=attempt, pid=os.getpid(), started=_process_start(os.getpid()),
         host=platform.node())


def saved(run_dir: Path) -> dict:
    """A run folder's recipe.json."""
    return json.loads((Path(run_dir) / "recipe.json").read_text())


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
    for path in sorted((Path(results) / "runs").glob("*/recipe.json")):
        try:
            d = json.loads(path.read_text())
            out.setdefault((d["name"], d["config_id"], int(d["seed"])), []).append(path.parent)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a folder cut short before its recipe was written: nothing to resume from
    return out


def list_runs(results: str | Path) -> pd.DataFrame:
    """One line per run folder: its name and seed, status, epochs done of planned, attempts, and age."""
    lines = []
    for run_dir in sorted((Path(results) / "runs").glob("*/")):
        st = read_status(run_dir)
        try:
            d = saved(run_dir)
            name, seed, planned = d["name"], d["seed"], sum(k for _, k, *_ in d.get("stage_plan", []))
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


def attempts(run_dir: Path) -> int:
    """How many times the run in `run_dir` was started (0 for a folder that no run has started in yet)."""
    if not (Path(run_dir) / "status.json").exists():
        return 0
    return int(read_status(run_dir).get("attempt", 1))


def epochs_done(run_dir: Path) -> int:
    log = Path(run_dir) / "epochs.csv"
    return max(0, len(log.read_text().splitlines()) - 1) if log.exists() else 0
