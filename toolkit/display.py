"""How progress is shown, decided here once: fastprogress bars on a terminal and in a notebook, plain lines when the
output goes to a file (nohup, CI, a cluster's job log), or nothing.

  bars   fastai's ProgressCallback and fastprogress bars (its per-epoch table included)
  lines  one plain line per finished epoch and per finished phase (packing a split, building a proxy, TTA); no bar
         is ever created, since fastprogress writes a carriage return whenever one is, whatever its settings
  none   nothing but warnings and errors (`--quiet`)
"""
from __future__ import annotations

import sys

MODES = ("bars", "lines", "none")


def choose(progress: str | None = None) -> str:
    """The mode to show progress in: `progress` if given, else bars where someone watches (a terminal, a notebook:
    ipykernel's stdout is no tty, so it is asked for by name), else lines."""
    if progress is None:
        from fastcore.imports import in_notebook  # a few ms, no torch
        return "bars" if in_notebook() or getattr(sys.stdout, "isatty", lambda: False)() else "lines"
    if progress not in MODES:
        from .errors import ToolkitError
        raise ToolkitError(f"Unknown progress mode {progress!r}; use one of {', '.join(MODES)}.")
    return progress


def of(quiet: bool = False, progress: str | None = None) -> str:
    """The mode asked for by a `--quiet` flag and a `--progress` option: quiet wins."""
    return "none" if quiet else choose(progress)


def bar(items, mode: str, total: int | None = None, comment: str = ""):
    """`items`, iterated under a fastprogress bar in bars mode, plainly otherwise."""
    if mode != "bars":
        return items
    from fastprogress.fastprogress import progress_bar
    pb = progress_bar(items, total=total)
    pb.comment = comment
    return pb


def line(message: str, mode: str) -> None:
    """One plain line, shown in bars and lines mode (flushed: a log file shows it at once)."""
    if mode != "none":
        print(message, flush=True)


def duration(seconds: float) -> str:
    """Seconds as a person reads them: '45 s', or '12 min' from 90 s on."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
