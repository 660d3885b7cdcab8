"""A comparison written: its table and footnotes (toolkit/report/tables.py), every number, and its plot, as
PREFIX.{md,csv,png}, from the summary toolkit/judgment/ computed."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import check_folder, write_atomic
from . import plots, tables


def write_comparison(rows: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """PREFIX.md (the table and its footnotes), PREFIX.csv (every number, unrounded) and PREFIX.png (the plot)."""
    prefix = Path(check_folder(Path(prefix).parent, "--out")) / Path(prefix).name
    text, fig = tables.to_markdown(summary) + "\n", plots.plot(rows, summary)   # everything rendered, then written
    writers = {".md": lambda p: Path(p).write_text(text), ".csv": lambda p: summary.to_csv(p, index=False),
               ".png": lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png")}
    return [write_atomic(prefix.with_suffix(suffix), write) for suffix, write in writers.items()]


