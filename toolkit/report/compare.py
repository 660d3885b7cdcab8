"""A comparison: the finished runs of the results table (all, some names, or what a sweep involved), each row
labelled and paired with its reference, summarized (toolkit/report/tables.py) and written as PREFIX.{md,csv,png}."""
from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path

import pandas as pd

from ..atomic import check_folder, write_atomic
from ..errors import ToolkitError
from ..recipes import registry
from ..records import folders
from ..records.table import TABLE, load_table
from .. import judgment, stats
from ..judgment.summary import pair_against, summarize
from . import plots, tables


def compare(results: str | Path = "results", names=None, dataset: str | None = None, against: str | None = None,
            out: str | Path | None = None, budget: str | None = None,
            margin: float | None = None, family: str | None = None,
            question: str = judgment.NEW_IMAGES, with_flips: bool = False):
    """Compare finished runs in the results table (all, or those matching `names` / `dataset` / `budget`), with a
    margin of equivalence of `margin` accuracy points, judged for `question` (toolkit/judgment/): (the summary,
    the files written). `with_flips`: also which images changed between the first name's row and the second's (or
    its reference), as a third item: its markdown (toolkit/report/flips.py)."""
    margin = check_margin(margin)
    table = load_table(results)
    if table.empty:
        raise ToolkitError(f"No finished runs in {Path(results) / TABLE}; `toolkit run NAME` makes some.")
    rows = table
    if names:
        patterns = [m for n in names for m in (registry.list_suites().get(n) or (n,))]
        rows = rows[[any(fnmatch.fnmatchcase(e, p) for p in patterns) for e in rows["name"]]]
    if dataset:  # a name, a path, or just the folder's name
        rows = rows[[d == dataset or Path(d).name == Path(dataset).name for d in rows["dataset"]]]
    if budget:
        rows = rows[rows["budget"] == budget]
    if rows.empty:
        raise ToolkitError("No finished run matches those experiment names / dataset / budget; `toolkit compare` with no "
                           "arguments compares everything in the table.")
    unfinished = folders.list_runs(results)
    unfinished = unfinished[unfinished["status"] != "finished"] if len(unfinished) else unfinished
    if len(unfinished):
        counts = unfinished["status"].value_counts()
        warnings.warn(f"{len(unfinished)} unfinished run folder(s) left out of the comparison "
                      f"({', '.join(f'{n} {s}' for s, n in counts.items())}); `toolkit runs` lists them, and "
                      f"running the same command again resumes the killed and interrupted ones.", stacklevel=2)
    prefix = Path(out or Path(results) / "compare")
    summary, written = summarize_and_write(rows, table, against, prefix, margin, family=family, question=question)
    if not with_flips:
        return summary, written
    from . import flips
    text, pngs = flips.of_comparison(table, summary, list(names or []), prefix)
    return summary, written + pngs, text


def check_margin(margin) -> float:
    """--margin: a number of points from 0 (no claim of equivalence is ever made) to 100; None: the default."""
    if margin is None:
        return stats.MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 100:
        raise ToolkitError(f"--margin is a number of accuracy points from 0 to 100, such as 1 or 0.5 (got {margin!r}).")
    return float(margin)


def summarize_and_write(rows: pd.DataFrame, table: pd.DataFrame, against: str | None, prefix: str | Path,
                        margin: float | None = None, design: stats.Design | None = None, family: str | None = None,
                        question: str = judgment.NEW_IMAGES):
    """The comparison of `rows` (each paired with its reference in the whole `table`), written to PREFIX.{md,csv,png};
    `margin`, `design` and `family` as in `judgment.summary.summarize`, recorded in the CSV and the footnotes."""
    check_folder(Path(prefix).parent, "--out")
    if rows.empty:
        raise ToolkitError("Nothing to compare: none of these runs has finished. `toolkit runs` lists the run folders "
                           "and their status; compare again once they have finished.")
    table = pair_against(table, against)
    summary = summarize(table.loc[rows.index], table, check_margin(margin), design, family, question)
    return summary, write_comparison(table.loc[rows.index], summary, prefix)


def write_comparison(rows: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """PREFIX.md (the table and its footnotes), PREFIX.csv (every number, unrounded) and PREFIX.png (the plot)."""
    prefix = Path(prefix)
    text, fig = tables.to_markdown(summary) + "\n", plots.plot(rows, summary)   # everything rendered, then written
    writers = {".md": lambda p: Path(p).write_text(text), ".csv": lambda p: summary.to_csv(p, index=False),
               ".png": lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png")}
    return [write_atomic(prefix.with_suffix(suffix), write) for suffix, write in writers.items()]


