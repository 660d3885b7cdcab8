import pandas as pd
import pytest

from toolkit import report


def _row(run_id, experiment, seed, acc, tta="", size=64):
    return {"run_id": run_id, "experiment": experiment, "dataset": "/data/nette", "size": size, "epochs": 5,
            "arch": "xresnet18", "loader": "packed", "bs": 64, "lr": 3e-3, "seed": seed, "accuracy": acc, "valid_loss": 1.0,
            "accuracy_tta": tta, "tta_seconds": "", "wall_seconds": 10.0, "images_per_second": 100.0,
            "finished_at": "", "run_dir": f"/nowhere/{run_id}"}


@pytest.fixture
def table(results):
    rows = [_row("a", "baseline", 0, 0.60), _row("b", "baseline", 1, 0.70), _row("c", "mixup", 0, 0.75),
            _row("d", "mixup", 1, 0.85), _row("e", "tta", 0, 0.70, tta=0.74), _row("f", "baseline", 0, 0.9, size=32)]
    for r in rows:
        report.append_result(results, r)
    return report.load_results(results)


def test_rows_append_under_one_header(table, results):
    assert table["run_id"].tolist() == list("abcdef")
    assert (results / "runs.csv").read_text().count("run_id") == 1


def test_a_table_from_before_the_loader_column_is_upgraded_in_place(results):
    old_columns = [c for c in report.COLUMNS if c != "loader"]
    results.mkdir(parents=True)
    old = pd.DataFrame([{k: v for k, v in _row(r, "baseline", i, 0.5 + i / 10).items() if k != "loader"}
                        for i, r in enumerate("xy")], columns=old_columns)
    old.to_csv(results / "runs.csv", index=False)
    report.append_result(results, _row("z", "baseline", 2, 0.9))
    t = report.load_results(results)
    assert list(t.columns) == report.COLUMNS and t["run_id"].tolist() == list("xyz")
    assert t["loader"].tolist() == ["folder", "folder", "packed"]  # old runs read the image folder
    assert t["accuracy"].tolist() == pytest.approx([0.5, 0.6, 0.9])


def test_summary_mean_std_and_delta_vs_matching_baseline(table):
    s = report.summarize(table).set_index(["experiment", "size"])
    assert s.loc[("baseline", 64), "accuracy_mean"] == pytest.approx(0.65)
    assert s.loc[("baseline", 64), "accuracy_std"] == pytest.approx(0.0707107, rel=1e-5)  # sample std of .6, .7
    assert s.loc[("mixup", 64), "delta_vs_baseline"] == pytest.approx(0.15)
    assert s.loc[("tta", 64), "accuracy_tta_mean"] == pytest.approx(0.74)
    assert s.loc[("baseline", 32), "delta_vs_baseline"] == pytest.approx(0.0)   # its own baseline, not the 64 px one
    assert s.loc[("mixup", 64), "seeds"] == 2


def test_summary_of_a_subset_uses_the_whole_table_for_the_baseline(table):
    s = report.summarize(table[table["experiment"] == "mixup"], reference=table)
    assert s["delta_vs_baseline"].iloc[0] == pytest.approx(0.15)


def test_markdown_and_files(table, tmp_path):
    md = report.to_markdown(report.summarize(table))
    assert "| mixup " in md and "80.0 ± 7.1" in md and "+15.0" in md and "74.0" in md
    outs = report.write_comparison(table, report.summarize(table), tmp_path / "cmp")
    assert [p.suffix for p in outs] == [".md", ".csv", ".png"] and all(p.stat().st_size > 0 for p in outs)
    assert outs[2].read_bytes()[:4] == b"\x89PNG"
    assert pd.read_csv(outs[1])["experiment"].tolist() == ["baseline", "mixup", "tta", "baseline"]
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind
