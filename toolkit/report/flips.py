"""Which images changed: where a recipe helps, not only whether. The validation images one recipe gets right and
the other wrong on most of their paired seeds (toolkit/judgment/ `flips`), counted by class, and a contact sheet of
the most consistent ones (`toolkit compare A B --flips`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_atomic
from ..errors import ToolkitError
from ..judgment import Flips

SHEET = 24   # images on the contact sheet, the most consistent flips first


def by_class(f: Flips, classes: list[str], a: str, b: str) -> pd.DataFrame:
    """Per class: its validation images, and how many of them each recipe alone gets right on most seeds."""
    rows = []
    for k, name in enumerate(classes):
        mine = f.labels == k
        rows.append({"class": name, "images": int(mine.sum()), f"{a} right, {b} wrong": int(mine[f.helped].sum()),
                     f"{b} right, {a} wrong": int(mine[f.hurt].sum())})
    rows.append({"class": "all", "images": len(f.labels), f"{a} right, {b} wrong": len(f.helped),
                 f"{b} right, {a} wrong": len(f.hurt)})
    return pd.DataFrame(rows)


def markdown(f: Flips, classes: list[str], a: str, b: str, png: Path | None) -> str:
    n = len(f.seeds)
    table = by_class(f, classes, a, b).to_markdown(index=False)
    return (f"Which images changed, {a} against {b}, over {n} paired seeds ({', '.join(map(str, f.seeds))}): an image "
            f"counts when one gets it right and the other wrong on more than half of them.\n\n{table}"
            + (f"\n\nThe most consistent flips: {png}" if png else ""))


def contact_sheet(f: Flips, files: list[Path], classes: list[str], a: str, b: str, path: Path) -> Path | None:
    """The most consistent flips as a grid of images, each titled with its class and its count of seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from ..data.images import open_rgb
    n = len(f.seeds)
    shown = sorted([(int(f.a_only[i]), i, a) for i in f.helped] + [(int(f.b_only[i]), i, b) for i in f.hurt],
                   key=lambda t: -t[0])[:SHEET]
    if not shown:
        return None
    cols = min(6, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (count, i, winner) in zip(axes.ravel(), shown):
        ax.imshow(open_rgb(files[i]).resize((128, 128), Image.BILINEAR))
        colour = "tab:green" if winner == a else "tab:red"
        ax.set_title(f"{classes[f.labels[i]]}\nonly {winner} right: {count}/{n}", fontsize=7, color=colour)
    fig.suptitle(f"Images {a} gets right and {b} wrong (green), and the other way round (red), on most seeds",
                 fontsize=9)
    fig.tight_layout()
    out = write_atomic(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)
    return out


def validation_files(row) -> tuple[list[Path], list[str], str]:
    """The validation images of a table row's dataset in the canonical order predictions keep (sorted relative
    paths), the readable class names, and the hash of those paths."""
    from ..data import datasets
    from ..records.schema import row_recipe
    ds = datasets.of_recipe(row_recipe(row))
    rel = sorted(ds.relative(f) for f in ds.files["val"])
    return ([ds.root / r for r in rel], [datasets.readable(c) for c in ds.classes],
            datasets.files_hash(rel))


def check_files(f: Flips, digest: str, where) -> None:
    if digest != f.valid_hash:
        raise ToolkitError(f"--flips: the dataset {where} does not list the validation images the runs were judged on "
                           f"(its files changed since, or the runs' pack skipped an image it could not decode), so "
                           f"the images cannot be shown; the counts need the same images on both sides.")


def of_comparison(table: pd.DataFrame, summary: pd.DataFrame, names: list[str], prefix: Path) -> tuple[str, list]:
    """`toolkit compare A B --flips`: A's row against B's (or, with one name, against its reference), from the
    results table's run folders; the markdown and the files written (PREFIX-flips.png)."""
    from ..judgment import flips
    if not names or len(names) > 2:
        raise ToolkitError("--flips compares two rows: give one experiment (against its reference) or two.")
    mine = summary[summary["name"] == names[0]]
    if mine.empty:
        raise ToolkitError(f"--flips: no row of {names[0]!r} in this comparison.")
    a = mine.iloc[0]
    if len(names) == 2:
        theirs = summary[summary["name"] == names[1]]
        if theirs.empty:
            raise ToolkitError(f"--flips: no row of {names[1]!r} in this comparison.")
        b_id, b_label = theirs.iloc[0]["config_id"], str(theirs.iloc[0]["label"])
    else:
        b_id, b_label = a["reference_config_id"], str(a["reference"])
        if not b_id or pd.isna(b_id):
            raise ToolkitError(f"--flips: {names[0]!r} has no reference to compare with; name the other row.")
    runs = table.groupby(["config_id", "seed"])["run_dir"].last()
    a_dirs, b_dirs = runs.get(a["config_id"]), runs.get(b_id)
    if b_dirs is None:
        raise ToolkitError(f"--flips: no finished runs of {b_label} in the results table.")
    f = flips(a_dirs, b_dirs)
    first = table[table["config_id"] == a["config_id"]].iloc[0]
    files, classes, digest = validation_files(first)
    check_files(f, digest, first["dataset"])
    a_label = str(a["label"])
    png = contact_sheet(f, files, classes, a_label, b_label, Path(f"{prefix}-flips.png"))
    return markdown(f, classes, a_label, b_label, png), [png] if png else []
