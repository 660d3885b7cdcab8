"""Run folders, the results table (one row per run), comparisons (mean +- std, delta vs baseline) and plots."""
from __future__ import annotations

import csv
import fcntl
import os
import platform
import re
import secrets
import subprocess
import time
from pathlib import Path

import pandas as pd

from .atomic import write_atomic
from .data import Dataset
from .recipe import Recipe

TABLE = "runs.csv"
COLUMNS = ["run_id", "experiment", "dataset", "size", "epochs", "arch", "loader", "bs", "lr", "seed",
           "accuracy", "valid_loss", "accuracy_tta", "tta_seconds", "wall_seconds", "images_per_second",
           "finished_at", "run_dir"]
GROUP = ["experiment", "dataset", "size", "epochs", "arch", "loader"]  # runs that differ only in seed are pooled
MATCH = ["dataset", "size", "epochs", "arch", "loader"]                # what a baseline must share


def new_run_dir(results: str | Path, recipe: Recipe, ds: Dataset) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{recipe.name}-{Path(ds.name).name}-s{recipe.seed}")
    run_dir = Path(results) / "runs" / f"{stamp}-{slug}-{secrets.token_hex(2)}"
    run_dir.mkdir(parents=True)
    return run_dir


def environment() -> dict:
    """Versions, device and the toolkit's commit, written next to every run."""
    import fastai
    import timm
    import torch
    import torchvision
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "fastai": fastai.__version__, "timm": timm.__version__, "device": device,
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


def result_row(recipe: Recipe, run_dir: Path, metrics: dict) -> dict:
    r = recipe
    return {"run_id": run_dir.name, "experiment": r.name, "dataset": r.dataset, "size": r.size,
            "epochs": r.epochs, "arch": r.arch, "loader": r.loader, "bs": r.bs, "lr": r.lr, "seed": r.seed,
            "accuracy": metrics["accuracy"], "valid_loss": metrics["valid_loss"],
            "accuracy_tta": metrics.get("accuracy_tta", ""), "tta_seconds": metrics.get("tta_seconds", ""),
            "wall_seconds": metrics["wall_seconds"], "images_per_second": metrics["images_per_second"],
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": str(run_dir)}


def append_result(results: str | Path, row: dict) -> None:
    """Append one row to results/runs.csv under an exclusive lock, so concurrent runs never interleave.

    A table written by an older version (fewer columns) is first rewritten with today's columns, atomically.
    """
    path = Path(results) / TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(TABLE + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.exists() and path.stat().st_size:
                with path.open(newline="") as fh:
                    header = next(csv.reader(fh), [])
                if header != COLUMNS:
                    old = load_results(results)
                    write_atomic(path, lambda p: old.reindex(columns=COLUMNS).to_csv(p, index=False))
            with path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=COLUMNS)
                if fh.tell() == 0:
                    w.writeheader()
                w.writerow(row)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_results(results: str | Path) -> pd.DataFrame:
    path = Path(results) / TABLE
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    runs = pd.read_csv(path)
    if "loader" not in runs:   # tables from before the packed loader: every run read the image folder
        runs.insert(COLUMNS.index("loader"), "loader", "folder")
    return runs


def summarize(runs: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per recipe setting: seeds, accuracy mean and std, TTA accuracy, difference to the baseline, time.

    The baseline for the difference is looked up in `reference` (default: `runs`) among runs with the same
    dataset, size, epochs and architecture.
    """
    reference = runs if reference is None else reference
    if runs.empty:
        return pd.DataFrame()
    g = runs.groupby(GROUP, sort=False, dropna=False)
    out = g.agg(seeds=("seed", "nunique"), runs=("run_id", "count"), accuracy_mean=("accuracy", "mean"),
                accuracy_std=("accuracy", "std"), wall_seconds=("wall_seconds", "mean")).reset_index()
    tta = pd.to_numeric(runs["accuracy_tta"], errors="coerce")
    out["accuracy_tta_mean"] = runs.assign(_t=tta).groupby(GROUP, sort=False, dropna=False)["_t"].mean().values
    out["accuracy_std"] = out["accuracy_std"].fillna(0.0)
    base = (reference[reference["experiment"] == "baseline"].groupby(MATCH, dropna=False)["accuracy"].mean()
            .rename("baseline_accuracy").reset_index())
    out = out.merge(base, on=MATCH, how="left")
    out["delta_vs_baseline"] = out["accuracy_mean"] - out["baseline_accuracy"]
    return out.drop(columns="baseline_accuracy")


def to_markdown(summary: pd.DataFrame) -> str:
    """The comparison as a markdown table, accuracies in percent."""
    if summary.empty:
        return "(no finished runs to compare)"
    pct = lambda v: "" if pd.isna(v) else f"{100 * v:.1f}"  # noqa: E731
    table = pd.DataFrame({
        "experiment": summary["experiment"], "dataset": summary["dataset"].map(lambda d: Path(str(d)).name),
        "arch": summary["arch"], "loader": summary["loader"], "size": summary["size"], "epochs": summary["epochs"], "seeds": summary["seeds"],
        "accuracy % (mean ± std)": [f"{100 * m:.1f} ± {100 * s:.1f}"
                                    for m, s in zip(summary["accuracy_mean"], summary["accuracy_std"])],
        "accuracy TTA %": summary["accuracy_tta_mean"].map(pct),
        "Δ vs baseline (pts)": summary["delta_vs_baseline"].map(lambda v: "" if pd.isna(v) else f"{100 * v:+.1f}"),
        "time (s)": summary["wall_seconds"].map(lambda v: f"{v:.0f}"),
    })
    align = ["left"] * 4 + ["right"] * (len(table.columns) - 4)
    return table.to_markdown(index=False, disable_numparse=True, colalign=align)


def write_comparison(runs: pd.DataFrame, summary: pd.DataFrame, prefix: str | Path) -> list[Path]:
    """Write PREFIX.md, PREFIX.csv and PREFIX.png (per-epoch validation accuracy, final accuracy bars)."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    outs = [prefix.with_suffix(".md"), prefix.with_suffix(".csv"), prefix.with_suffix(".png")]
    write_atomic(outs[0], lambda p: Path(p).write_text(to_markdown(summary) + "\n"))
    write_atomic(outs[1], lambda p: summary.to_csv(p, index=False))
    write_atomic(outs[2], lambda p: plot(runs, summary).savefig(p, dpi=110, bbox_inches="tight", format="png"))
    return outs


def epoch_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch validation accuracy of every run, read back from the run folders' epochs.csv."""
    frames = []
    for _, r in runs.iterrows():
        path = Path(r["run_dir"]) / "epochs.csv"
        if path.exists():
            frames.append(pd.read_csv(path).assign(**{k: r[k] for k in GROUP}, run_id=r["run_id"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot(runs: pd.DataFrame, summary: pd.DataFrame):
    import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep their inline backend

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = epoch_curves(runs)
    detailed = summary[MATCH].nunique().max() > 1  # settings differ between rows: say which is which
    labels = [f"{e} ({Path(str(d)).name}, {s}px, {a}, {ld})" if detailed else e
              for e, d, s, a, ld in zip(summary["experiment"], summary["dataset"], summary["size"], summary["arch"],
                                        summary["loader"])]
    if not curves.empty:
        for label, (_, row) in zip(labels, summary.iterrows()):
            sel = curves
            for k in GROUP:
                sel = sel[sel[k] == row[k]]
            mean = sel.groupby("epoch")["accuracy"].mean()
            ax1.plot(mean.index + 1, 100 * mean.values, marker="o", label=label)
        ax1.legend(fontsize=8)
    ax1.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax1.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy per epoch (mean over seeds)")
    ax1.grid(alpha=0.3)
    ax2.bar(range(len(summary)), 100 * summary["accuracy_mean"], yerr=100 * summary["accuracy_std"], capsize=4,
            color="tab:blue", alpha=0.8)
    ax2.set_xticks(range(len(summary)), labels, rotation=30, ha="right", fontsize=8)
    lo = 100 * (summary["accuracy_mean"] - summary["accuracy_std"]).min()
    ax2.set_ylim(max(0, lo - 10), min(100, 100 * (summary["accuracy_mean"] + summary["accuracy_std"]).max() + 3))
    ax2.set(ylabel="final accuracy (%)", title="Final accuracy (mean ± std over seeds)")
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)  # the caller saves or displays it; closing avoids a second copy in notebooks
    return fig
