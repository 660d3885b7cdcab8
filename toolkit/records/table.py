"""RESULTS/runs.csv, one row per finished run (toolkit/records/schema.py): recorded, checked, loaded and rebuilt.

Every write takes the table's file lock, checks what is there, and replaces the file whole (temporary name, then
rename), so concurrent runs never interleave and a kill never leaves half a table.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import pandas as pd

from ..atomic import check_folder, lock, write_atomic, write_json
from ..errors import TableError, ToolkitError
from ..recipes.recipe import LEGACY, Recipe
from . import folders
from .artifacts import CHECKPOINT, save_predictions
from .migrate import saved_meaning, upgrade
from .schema import ALWAYS, COLUMNS, NAMED_BY, NUMERIC, result_row, row_auto

TABLE = "runs.csv"


def finish(results: str | Path, run_dir: Path, recipe: Recipe, context: dict, metrics: dict,
           keep_checkpoints: bool = False, append: bool = True) -> dict:
    """Record a finished run: predictions.npz (`metrics["predictions"]`, taken out of the metrics), metrics.json,
    status finished, its row in the results table (unless not `append`: a driver records it); drop its
    checkpoint. What the row means comes from the run's recipe.json, written when it started."""
    predictions = metrics.pop("predictions", None)
    if predictions:
        save_predictions(run_dir, predictions)
    write_json(run_dir / "metrics.json", metrics)
    row = _row(run_dir, recipe, context, metrics)
    folders.mark(run_dir, "finished", epochs_done=metrics.get("epochs_done"), attempt=metrics.get("attempts", 1))
    if append:
        append_row(results, row)
    if not keep_checkpoints:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    return row


def recover(results: str | Path, run_dir: Path) -> dict:
    """The row of a finished run whose row never reached the table (killed in between), appended now."""
    row = _folder_row(run_dir)
    append_row(results, row)
    return row


def _folder_row(run_dir: Path) -> dict:
    """A finished run folder's row, from its recipe.json and metrics.json (an older folder's: LEGACY where it
    says nothing)."""
    saved = folders.saved(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return _row(run_dir, Recipe.from_dict({**LEGACY, **saved}), saved.get("context", {}), metrics, saved)


def _row(run_dir: Path, recipe: Recipe, context: dict, metrics: dict, saved: dict | None = None) -> dict:
    saved = saved if saved is not None else folders.saved(run_dir)
    return result_row(recipe, context, run_dir, metrics, row_auto(saved), saved_meaning(saved, recipe),
                      saved.get("dataset_id", ""))


def table_lock(results: str | Path):
    return lock(Path(results) / (TABLE + ".lock"))


def append_row(results: str | Path, row: dict) -> None:
    """Add one row to RESULTS/runs.csv under the table's lock, so concurrent runs never interleave.

    The table is checked first (a damaged one is never written to), and rewritten whole under a temporary name,
    then renamed: a kill or a full disk leaves it byte-identical to before. A table written by an older version
    is upgraded to today's columns on the way (toolkit/records/migrate.py).
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
    text = data.decode("utf-8-sig", errors="replace")   # a byte-order mark (Excel's CSV UTF-8) is no column
    if not text.endswith("\n"):
        raise TableError(f"The results table {path} is damaged: its last line (line {text.count(chr(10)) + 1}) is "
                         f"cut short (no newline at the end), as a killed write leaves it.{fix}")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    lacking = [c for c in ALWAYS if c not in header]
    if not any(all(c in header for c in names) for names in NAMED_BY):
        lacking += [c for c in NAMED_BY[0] if c not in header]
    if lacking:
        raise TableError(f"The results table {path} is damaged: its header (line 1) lacks the column(s) "
                         f"{', '.join(map(repr, lacking))}, which every version of the table has.{fix}")
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
            if folders.read_status(run_dir)["status"] != "finished":
                raise ValueError("not finished")
            row = _folder_row(run_dir)
            row["finished_at"] = folders.read_status(run_dir).get("at", "")
            rows.append(row)
        except (OSError, ValueError, TypeError, ToolkitError):
            skipped += 1
    dest = Path(results) / f"runs.rebuilt-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    write_atomic(dest, lambda p: pd.DataFrame(rows, columns=COLUMNS).to_csv(p, index=False))
    return dest, len(rows), skipped


def select(results: str | Path, names=None, dataset: str | None = None, budget: str | None = None):
    """The results table and its finished rows of `names` (experiment names, suites or shell patterns), `dataset`
    (a name, a path, or just the folder's name) and `budget`: (table, rows); unfinished run folders are left
    out, with a warning that says how to resume them."""
    import fnmatch
    import warnings
    from ..recipes import registry
    table = load_table(results)
    if table.empty:
        raise ToolkitError(f"No finished runs in {Path(results) / TABLE}; `toolkit run NAME` makes some.")
    rows = table
    if names:
        patterns = [m for n in names for m in (registry.list_suites().get(n) or (n,))]
        rows = rows[[any(fnmatch.fnmatchcase(e, p) for p in patterns) for e in rows["name"]]]
    if dataset:
        rows = rows[[d == dataset or Path(d).name == Path(dataset).name for d in rows["dataset"]]]
    if budget:
        rows = rows[rows["budget"] == budget]
    if rows.empty:
        raise ToolkitError("No finished run matches those experiment names / dataset / budget; `toolkit compare` with no "
                           "arguments compares everything in the table.")
    unfinished = folders.list_runs(results)
    # a search's pruned runs are finished as far as they ever go: never resumed, never compared
    unfinished = unfinished[~unfinished["status"].isin(["finished", "pruned"])] if len(unfinished) else unfinished
    if len(unfinished):
        counts = unfinished["status"].value_counts()
        warnings.warn(f"{len(unfinished)} unfinished run folder(s) left out of the comparison "
                      f"({', '.join(f'{n} {s}' for s, n in counts.items())}); `toolkit runs` lists them, and "
                      f"running the same command again resumes the killed and interrupted ones.", stacklevel=3)
    return table, rows
