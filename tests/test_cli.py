"""The launcher as a user meets it: real subprocesses, exit codes and messages."""
import re
import signal
import subprocess
import sys

import pandas as pd
import pytest

from conftest import epochs_logged, signal_when


def toolkit(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def test_list_with_wildcard():
    p = toolkit("list", "mixup*")
    assert p.returncode == 0 and p.stdout.split()[0] == "mixup" and "mixup_ls" in p.stdout
    assert "baseline" not in p.stdout


def test_show_resolves_overrides():
    p = toolkit("show", "progressive", "--size", "64", "--epochs", "5", "--set", "arch=xresnet18")
    assert p.returncode == 0
    assert "xresnet18" in p.stdout and "3 epoch(s) at 32px" in p.stdout and "2 epoch(s) at 64px" in p.stdout
    assert re.search(r"^compared with +normalize \(config [0-9a-f]{12}\)$", p.stdout, re.M)


def test_show_plans_at_the_size_a_run_uses():
    """imagenette-160 trains at 128 px by default: the plan says so, without downloading anything."""
    p = toolkit("show", "progressive")
    assert p.returncode == 0, p.stderr
    assert "3 epoch(s) at 64px" in p.stdout and "2 epoch(s) at 128px" in p.stdout and "size " in p.stdout
    assert [line.split()[-1] for line in p.stdout.splitlines() if line.startswith("size ")] == ["128"]


@pytest.mark.parametrize("args, message", [
    (["run", "basline"], "Unknown experiment 'basline'. Did you mean: baseline"),
    (["run", "nothing*"], "No experiment matches the pattern"),
    (["run", "baseline", "--set", "lr=fast"], "Bad value 'fast' for recipe key 'lr'"),
    (["run", "baseline", "--set", "wd=0.1"], "Unknown recipe key 'wd'"),
    (["run", "baseline", "--set", "arch=resnet9000"], "Unknown architecture 'resnet9000'"),
    (["run", "baseline", "--dataset", "/no/such/folder"], "is neither a known dataset name"),
    (["show", "mixpu"], "Did you mean: mixup"),
    (["compare", "--results", "/no/such/results"], "No finished runs"),
    (["run", "baseline", "--vary", "lr"], "not of the form key=value"),
    (["run", "baseline", "--against", "normalise"], "Unknown experiment 'normalise'. Did you mean: normalize"),
    (["run", "--config", "/no/such/recipe.json"], "Cannot replay /no/such/recipe.json"),
    (["run"], "Give experiment names"),
    (["show", "baseline", "--dataset", "/no/such/folder"], "is neither a known dataset name"),
])
def test_bad_input_is_one_clear_error(args, message):
    p = toolkit(*args)
    assert p.returncode == 2
    assert message in p.stderr and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


def test_run_then_compare(tiny, tmp_path):
    res = tmp_path / "results"
    ctx = ["--dataset", tiny, "--size", 32, "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16"]
    p = toolkit("run", "label_smoothing", *ctx, "--seeds", 2, "--results", res, "--quiet")
    assert p.returncode == 0, p.stderr
    assert "[1/4] normalize (reference)" in p.stdout and "[4/4] label_smoothing" in p.stdout
    assert "| label_smoothing | normalize " in p.stdout and "need more seeds" in p.stdout
    table = pd.read_csv(res / "runs.csv", dtype={"config_id": str})
    assert table["name"].tolist() == ["normalize", "label_smoothing"] * 2
    assert all((res / f"last_run{ext}").exists() for ext in (".md", ".csv", ".png"))
    shown = toolkit("show", "label_smoothing", *ctx)           # show and run agree on what runs
    assert re.search(rf"^config_id +{table['config_id'].iloc[1]}$", shown.stdout, re.M)
    p = toolkit("compare", "label*", "--results", res)
    rows = [line.split("|")[1].strip() for line in p.stdout.splitlines() if line.startswith("| ")]
    assert p.returncode == 0 and rows == ["experiment", "label_smoothing"]   # the header, then the one row asked for
    row = pd.read_csv(res / "compare.csv").iloc[0]
    assert row["n"] == 2 and row["delta_pairs"] == 2 and row["reference_name"] == "normalize"


def test_two_settings_stay_two_rows(tiny, tmp_path):
    res = tmp_path / "results"
    ctx = ["--dataset", tiny, "--size", 32, "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16",
           "--results", res, "--quiet"]
    assert toolkit("run", "baseline", *ctx).returncode == 0
    second = toolkit("run", "baseline", *ctx, "--set", "lr=1e-2")
    assert second.returncode == 0 and "lr=0.01" in second.stdout
    p = toolkit("compare", "--results", res)
    assert p.returncode == 0
    rows = [line.split("|")[1].strip() for line in p.stdout.splitlines() if line.startswith("| baseline")]
    assert rows == ["baseline", "baseline [lr=0.01]"]
    assert pd.read_csv(res / "compare.csv")["n"].tolist() == [1, 1]


def test_ctrl_c_keeps_finished_epochs_and_table(tiny, tmp_path):
    res = tmp_path / "results"
    args = ["run", "baseline", "--dataset", tiny, "--size", 32, "--set", "arch=xresnet18", "--set", "bs=16",
            "--results", res, "--quiet"]
    assert toolkit(*args, "--epochs", 1).returncode == 0
    table = (res / "runs.csv").read_bytes()
    code, err = signal_when([sys.executable, "-m", "toolkit", *args, "--epochs", 200],
                            lambda: epochs_logged(res, 2), signal.SIGINT)
    assert code == 130 and "Interrupted during 'baseline'" in err and "Traceback" not in err
    assert (res / "runs.csv").read_bytes() == table
    unfinished = [p for p in (res / "runs").iterdir() if not (p / "metrics.json").exists()]
    assert len(unfinished) == 1 and len(pd.read_csv(unfinished[0] / "epochs.csv")) >= 2
