"""A comparison: the finished runs of the results table (all, some names, or what a sweep involved), each row
labelled and paired with its reference, summarized (toolkit/report/tables.py) and written as PREFIX.{md,csv,png}."""
from __future__ import annotations

import fnmatch
import json
import warnings
from pathlib import Path

import pandas as pd

from ..atomic import check_folder, write_atomic
from ..errors import ToolkitError
from ..recipes import registry
from ..recipes.labels import label_changes
from ..recipes.recipe import config_id, label
from ..sweep import runs
from ..sweep.plan import reference_recipe
from . import plots, stats, tables


def compare(results: str | Path = "results", names=None, dataset: str | None = None, against: str | None = None,
            out: str | Path | None = None, budget: str | None = None,
            margin: float | None = None) -> tuple[pd.DataFrame, list[Path]]:
    """Compare finished runs in the results table (all, or those matching `names` / `dataset` / `budget`), with a
    margin of equivalence of `margin` accuracy points."""
    margin = check_margin(margin)
    table = runs.load_table(results)
    if table.empty:
        raise ToolkitError(f"No finished runs in {Path(results) / runs.TABLE}; `toolkit run NAME` makes some.")
    if against is not None:
        registry.get(against)
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
    unfinished = runs.list_runs(results)
    unfinished = unfinished[unfinished["status"] != "finished"] if len(unfinished) else unfinished
    if len(unfinished):
        counts = unfinished["status"].value_counts()
        warnings.warn(f"{len(unfinished)} unfinished run folder(s) left out of the comparison "
                      f"({', '.join(f'{n} {s}' for s, n in counts.items())}); `toolkit runs` lists them, and "
                      f"running the same command again resumes the killed and interrupted ones.", stacklevel=2)
    return summarize_and_write(rows, table, against, Path(out or Path(results) / "compare"), margin)


def check_margin(margin) -> float:
    """--margin: a number of points from 0 (no claim of equivalence is ever made) to 100; None: the default."""
    if margin is None:
        return stats.MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 100:
        raise ToolkitError(f"--margin is a number of accuracy points from 0 to 100, such as 1 or 0.5 (got {margin!r}).")
    return float(margin)


def summarize_and_write(rows: pd.DataFrame, table: pd.DataFrame, against: str | None, prefix: str | Path,
                        margin: float | None = None, design: stats.Design | None = None):
    """The comparison of `rows` (each paired with its reference in the whole `table`), written to PREFIX.{md,csv,png};
    `margin` and `design` as in `tables.summarize`, recorded in the CSV and the footnotes."""
    check_folder(Path(prefix).parent, "--out")
    if rows.empty:
        raise ToolkitError("Nothing to compare: none of these runs has finished. `toolkit runs` lists the run folders "
                           "and their status; compare again once they have finished.")
    table = annotate(table, against)
    summary = tables.summarize(table.loc[rows.index], table, check_margin(margin), design)
    return summary, write_comparison(table.loc[rows.index], summary, prefix)


def write_comparison(rows: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """PREFIX.md (the table and its footnotes), PREFIX.csv (every number, unrounded) and PREFIX.png (the plot)."""
    prefix = Path(prefix)
    outs = [prefix.with_suffix(".md"), prefix.with_suffix(".csv"), prefix.with_suffix(".png")]
    write_atomic(outs[0], lambda p: Path(p).write_text(tables.to_markdown(summary) + "\n"))
    write_atomic(outs[1], lambda p: summary.to_csv(p, index=False))
    fig = plots.plot(rows, summary)
    write_atomic(outs[2], lambda p: fig.savefig(p, dpi=110, bbox_inches="tight", format="png"))
    return outs


def annotate(table: pd.DataFrame, against: str | None = None) -> pd.DataFrame:
    """The table with what a report needs to label and pair each row: its label and label settings, and its
    reference's name, label settings and config_id (see `reference_recipe`)."""
    cols = ["label", "changes", "reference", "reference_name", "reference_changes", "reference_config_id"]
    if table.empty:
        return table.assign(**{c: [] for c in cols})
    out, missing = {c: [] for c in cols}, {}
    for _, row in table.iterrows():
        recipe = runs.row_recipe(row)
        context = json.loads(row["context"] or "{}")
        items = label_changes(recipe, context)
        out["label"].append(label(recipe.name, items))
        out["changes"].append(json.dumps(items))
        try:
            ref = reference_recipe(recipe, context, against, runs.row_auto(row))
            ref_items = label_changes(ref)
            values = [label(ref.name, ref_items), ref.name, json.dumps(ref_items), config_id(ref)]
        except (ToolkitError, ValueError) as e:  # the reference is no longer registered, or its data is gone
            missing[row["name"]] = str(e)
            values = ["", "", "{}", ""]
        for c, v in zip(cols[2:], values):
            out[c].append(v)
    for name, why in missing.items():
        warnings.warn(f"no reference for {name!r}, so no difference is shown for it: {why}", stacklevel=2)
    return table.assign(**out)


