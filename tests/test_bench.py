"""`toolkit bench data` on the tiny dataset: every row runs and the table is written (speed is not asserted here)."""
import pandas as pd
import pytest

from toolkit.train.throughput import bench_data
from toolkit.errors import ToolkitError


def test_data_benchmark_writes_one_row_per_pipeline(tiny, tmp_path, capsys):
    rows = [1, 3, 5, 6, 9, 11]   # the folder, packed, the fp32 limit, bf16, both, as shipped
    table = bench_data(dataset=str(tiny), size=16, arch="xresnet18", bs=8, out=tmp_path / "bench", loader_batches=3,
                       quiet=True, policy_batches=2, rows=rows)
    assert table["row"].tolist() == rows
    on_disk = pd.read_csv(tmp_path / "bench" / "data.csv")
    assert on_disk["row"].tolist() == rows and (tmp_path / "bench" / "data.md").is_file()
    t = table.set_index("row")
    assert (t.loc[[1, 3, 11], "loader_images_per_s"] > 0).all() and t.loc[[5, 6, 9], "loader_images_per_s"].isna().all()
    assert t.loc[1, "loader_x_folder"] == 1.0 and t.loc[5, "epoch_x_limit"] == 1.0
    assert t.loc[[5, 6, 9], "precision"].tolist() == ["fp32", "bf16", "bf16"]
    assert t.loc[[5, 6, 9], "channels_last"].tolist() == [False, False, True]
    assert (table["epoch_seconds"] > 0).all() and (table["train_images_per_s"] > 0).all()
    assert (table["n_train"] == 40).all()  # 4 per class, 10 classes: every row trained on the same data
    out = capsys.readouterr().out
    assert "limit: training step on one pre-made batch" in out and "per sample on the batch" in out
    policies = pd.read_csv(tmp_path / "bench" / "data_policies.csv")
    assert policies["policy"].tolist() == ["randaugment", "trivialaugment", "autoaugment"]
    assert (policies["per_item_images_per_s"] > 0).all() and (policies["batch_images_per_s"] > 0).all()


def test_unknown_rows_are_an_error(tiny, tmp_path):
    with pytest.raises(ToolkitError, match="Unknown benchmark row"):
        bench_data(dataset=str(tiny), rows="1,99", out=tmp_path)
