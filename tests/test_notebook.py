import re
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parents[1] / "nbs"


def execute(name: str, tmp_path, monkeypatch, **settings) -> list:
    """Run notebook `name` on a tiny setting (its TOOLKIT_NB_* variables); returns every code cell's outputs."""
    for key, value in settings.items():
        monkeypatch.setenv(f"TOOLKIT_NB_{key}", str(value))
    nb = nbformat.read(NBS / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def test_notebook_runs_and_shows_table_and_plot(tiny, tmp_path, monkeypatch):
    outputs = execute("01_compare_recipes.ipynb", tmp_path, monkeypatch, DATASET=tiny, SIZE=32, EPOCHS=1, SEEDS=1,
                      RESULTS=tmp_path / "results")
    texts = " ".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert re.search(r"\| label_smoothing +\| normalize +\|", texts)
    assert re.search(r"\| normalize_lr1e-2 +\| normalize +\|", texts)
    assert "need more seeds" in texts and "95% CI" in texts
    assert any("image/png" in o.get("data", {}) for o in outputs)
    names = pd.read_csv(tmp_path / "results" / "runs.csv")["name"].tolist()
    assert names == ["baseline", "normalize", "label_smoothing", "normalize_lr1e-2"]  # baseline: normalize's reference


def test_iterating_with_fastai_then_the_sweep(tiny, tmp_path, monkeypatch):
    """A packed recipe as a plain Learner: its batch, lr_find's curve, a fit by hand, a confusion matrix of classes x
    classes, results; then the recipe as a 3-seed sweep against its reference, with its verdict."""
    outputs = execute("02_iterate_with_fastai.ipynb", tmp_path, monkeypatch, DATASET=tiny, SIZE=32, EPOCHS=1, SEEDS=3,
                      LR_FIND_ITERS=5, RESULTS=tmp_path / "results")
    texts = " ".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "confusion matrix: (10, 10)" in texts and "SuggestedLRs(valley=" in texts
    assert "(32, 1, 0.003, 'one_cycle')" in texts  # the resolved stage plan at the tiny setting
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4   # batch, lr curve, matrix, results
    table = " ".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert re.search(r"\| mixup +\| normalize +\| +3 \|", table) and "95% CI" in table
    assert re.search(r"\| ((better|worse)(, within ±1)?|equivalent \(±1\)|inconclusive( \((~\d+|>50|images)\))?) +\|",
                     table)
    names = pd.read_csv(tmp_path / "results" / "runs.csv")["name"].tolist()
    assert sorted(names) == ["mixup"] * 3 + ["normalize"] * 3   # only the sweep was recorded, not the fit by hand


def test_your_own_callback_from_a_cell_compared_over_three_seeds(tiny, tmp_path, monkeypatch):
    """A callback defined and registered in a cell, named by a recipe, compared with its reference over 3 seeds;
    each run folder keeps the cell's code."""
    outputs = execute("03_your_own_idea.ipynb", tmp_path, monkeypatch, DATASET=tiny, SIZE=32, EPOCHS=1, SEEDS=3,
                      RESULTS=tmp_path / "results")
    texts = " ".join(o.get("text", "") for o in outputs)
    assert "code: callback:grad_noise=" in texts and "3 runs kept the callback's source" in texts
    assert "class GradientNoise(Callback)" in texts
    table = " ".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert re.search(r"\| grad_noise +\| normalize +\| +3 \|", table)
    assert re.search(r"\| ((better|worse)(, within ±1)?|equivalent \(±1\)|inconclusive( \((~\d+|>50|images)\))?) +\|",
                     table)
    runs = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert sorted(runs["name"]) == ["grad_noise"] * 3 + ["normalize"] * 3
    assert runs.loc[runs["name"] == "grad_noise", "code"].str.startswith("callback:grad_noise=").all()
