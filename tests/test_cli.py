"""The launcher as a user meets it: real subprocesses, exit codes and messages."""
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest


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


@pytest.mark.parametrize("args, message", [
    (["run", "basline"], "Unknown experiment 'basline'. Did you mean: baseline"),
    (["run", "nothing*"], "No experiment matches the pattern"),
    (["run", "baseline", "--set", "lr=fast"], "Bad value 'fast' for recipe key 'lr'"),
    (["run", "baseline", "--set", "wd=0.1"], "Unknown recipe key 'wd'"),
    (["run", "baseline", "--set", "arch=resnet9000"], "Unknown architecture 'resnet9000'"),
    (["run", "baseline", "--dataset", "/no/such/folder"], "is neither a known dataset name"),
    (["show", "mixpu"], "Did you mean: mixup"),
    (["compare", "--results", "/no/such/results"], "No finished runs"),
])
def test_bad_input_is_one_clear_error(args, message):
    p = toolkit(*args)
    assert p.returncode == 2
    assert message in p.stderr and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


def test_run_then_compare(tiny, tmp_path):
    res = tmp_path / "results"
    p = toolkit("run", "baseline", "label_smoothing", "--dataset", tiny, "--size", 32, "--epochs", 1,
                "--set", "arch=xresnet18", "--set", "bs=16", "--seeds", 2, "--results", res, "--quiet")
    assert p.returncode == 0, p.stderr
    assert "| label_smoothing" in p.stdout and "[4/4]" in p.stdout
    assert len(pd.read_csv(res / "runs.csv")) == 4
    assert all((res / f"last_run{ext}").exists() for ext in (".md", ".csv", ".png"))
    p = toolkit("compare", "label*", "--results", res)
    assert p.returncode == 0 and "| label_smoothing" in p.stdout and "| baseline " not in p.stdout
    row = pd.read_csv(res / "compare.csv").iloc[0]
    assert row["seeds"] == 2 and row["runs"] == 2


def test_ctrl_c_keeps_finished_epochs_and_table(tiny, tmp_path):
    res = tmp_path / "results"
    args = ["run", "baseline", "--dataset", tiny, "--size", 32, "--set", "arch=xresnet18", "--set", "bs=16",
            "--results", res, "--quiet"]
    assert toolkit(*args, "--epochs", 1).returncode == 0
    table = (res / "runs.csv").read_bytes()
    # A shell starts background jobs with SIGINT ignored; give the child the default, as a terminal would.
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", *map(str, args), "--epochs", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, logs = time.time() + 240, []
        while time.time() < deadline and proc.poll() is None:
            logs = [p / "epochs.csv" for p in (res / "runs").iterdir() if not (p / "metrics.json").exists()]
            if logs and logs[0].exists() and len(logs[0].read_text().splitlines()) >= 3:  # header + 2 epochs
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Interrupted during 'baseline'" in err and "Traceback" not in err
    assert (res / "runs.csv").read_bytes() == table
    assert len(pd.read_csv(logs[0])) >= 2
