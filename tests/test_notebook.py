import re
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "nbs" / "01_compare_recipes.ipynb"


def test_notebook_runs_and_shows_table_and_plot(tiny, tmp_path, monkeypatch):
    for key, value in dict(DATASET=tiny, SIZE=32, EPOCHS=1, SEEDS=1, RESULTS=tmp_path / "results").items():
        monkeypatch.setenv(f"TOOLKIT_NB_{key}", str(value))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    texts = " ".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert re.search(r"\| label_smoothing +\| normalize +\|", texts)
    assert re.search(r"\| normalize_lr1e-2 +\| normalize +\|", texts)
    assert "need more seeds" in texts and "95% CI" in texts
    assert any("image/png" in o.get("data", {}) for o in outputs)
    names = pd.read_csv(tmp_path / "results" / "runs.csv")["name"].tolist()
    assert names == ["baseline", "normalize", "label_smoothing", "normalize_lr1e-2"]  # baseline: normalize's reference
