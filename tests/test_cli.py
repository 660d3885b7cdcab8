"""The launcher as a user meets it: real subprocesses, exit codes and messages."""
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch

from tests.conftest import resolved as resolve
from toolkit.recipes import registry
from toolkit.records import folders, schema
from toolkit.records.table import TABLE, append_row, load_table
from toolkit.sweep import plan

from conftest import epochs_logged, launch, signal_when


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
    (["run", "baseline", "--set", "weight_decay=0.1"], "Unknown recipe key 'weight_decay'"),
    (["run", "baseline", "--set", "arch=resnet9000"], "Unknown architecture 'resnet9000'"),
    (["run", "baseline", "--dataset", "/no/such/folder"], "is neither a known dataset name"),
    (["show", "mixpu"], "Did you mean: mixup"),
    (["compare", "--results", "/no/such/results"], "No finished runs"),
    (["run", "baseline", "--vary", "lr"], "not of the form key=value"),
    (["run", "baseline", "--against", "normalise"], "Unknown experiment 'normalise'. Did you mean: normalize"),
    (["run", "--config", "/no/such/recipe.json"], "Cannot replay /no/such/recipe.json"),
    (["run"], "Give experiment names"),
    (["show", "baseline", "--dataset", "/no/such/folder"], "is neither a known dataset name"),
    (["run", "tta_flip", "--dataset", "digits"], "asks for tta=flip on digits, where flipping an image changes its label"),
    (["run", "baseline", "--set", "tta=mirror"], "tta takes one or more of fastai, flip, crops, hires"),
])
def test_bad_input_is_one_clear_error(args, message, capsys):
    code, _, err = launch(args, capsys)   # in this process: an exception would fail the test as a traceback
    assert code == 2
    assert message in err and err.startswith("error: ")


def test_bad_numbers_are_one_clear_error(capsys):
    for args, message in [
        (["run", "baseline", "--set", "lr=inf"], "lr must be a finite number (got inf)"),
        (["run", "baseline", "--set", "mixup=nan"], "mixup must be a finite number (got nan)"),
        (["run", "baseline", "--set", "stages=((0.5, 1, 1e999, 'one_cycle'),)"], "must be finite numbers"),
        (["run", "baseline", "--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be a number of at least 1"),
        (["run", "baseline", "--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be a number of at least 0"),
        (["run", "baseline", "--checkpoint-every", "-5"], "--checkpoint-every must be a number of at least 0"),
        (["run", "baseline", "--workers", "-1"], "--workers must be a number of at least 0"),
        (["run", "baseline", "--executor", "ray", "--address", "localhost"], "is not of the form HOST:PORT"),
        (["run", "baseline", "--progress", "lines", "--seeds", "0"], "--seeds must be a whole number of at least 1"),
        (["run", "baseline", "--seeds", "auto", "--max-seeds", "2"], "--max-seeds must be a whole number of at least 3"),
        (["run", "baseline", "--margin", "-1"], "--margin is a number of accuracy points"),
        (["compare", "--margin", "nan"], "--margin is a number of accuracy points"),
        (["noise", "baseline", "--dataset", "digits", "--k", "1"], "--k must be a whole number of at least 2"),
        (["noise", "baseline", "--k", "1", "--set", "name=x"], "--k must be a whole number of at least 2"),
        (["run", "baseline", "--set", "split_seed=-1"], "split_seed must be a whole number >= 0"),
        (["data", "pack", "digits", "--set", "valid_pct=2", "--plan"], "valid_pct must be in (0, 1)"),
        (["data", "pack", "digits", "--set", "lr=1"], "--set lr: not a dataset option"),
        (["data", "pack", "digits", "--size", 4], "--size must be at least 8"),
    ]:
        code, _, err = launch(args, capsys)
        assert code == 2 and message in err and err.startswith("error: "), (args, err)


def test_bad_paths_are_one_clear_error(tmp_path, capsys):
    """A file where a folder belongs, a replayed file that is no run's recipe, and a cluster nobody listens on: each
    a clear error within seconds, before anything trains."""
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    (tmp_path / "array.json").write_text("[1, 2]")
    finished = tmp_path / "finished"   # a table with one finished run, written directly
    recipe = resolve(replace(registry.get("baseline"), dataset="digits"))
    append_row(finished, schema.result_row(recipe, {}, finished / "runs" / "x", {"accuracy": 0.5, "n_valid": 359}))
    for args, message in [
        (["run", "baseline", "--results", a_file], f"--results {a_file} cannot be used: {a_file} is a file"),
        (["run", "baseline", "--results", a_file / "deeper"], f"{a_file} is a file, not a folder"),
        (["compare", "--results", a_file], "is a file, not a folder"),
        (["runs", "--results", a_file], "is a file, not a folder"),
        (["compare", "--results", finished, "--out", a_file / "cmp"], f"--out {a_file} cannot be used"),
        (["data", "proxy", "digits", a_file / "proxy", "--per-class", 2, "--size", 16], f"{a_file} is a file"),
        (["run", "--config", tmp_path / "array.json"], "holds a JSON list, not a run's recipe"),
        (["run", "--config", tmp_path], "Cannot replay"),
        (["run", "baseline", "--executor", "ray", "--address", "127.0.0.1:1"], "cannot be reached"),
    ]:
        t0 = time.monotonic()
        code, _, err = launch(args, capsys)
        assert code == 2 and message in err and err.startswith("error: "), (args, err)
        assert time.monotonic() - t0 < 30, args


def test_inputs_that_once_slipped_through_are_one_clear_error(tiny, tmp_path, monkeypatch, capsys):
    """An empty results table, a replayed file with a key nothing reads, TOOLKIT_HOME naming a file, and a batch
    size no training set fills: each a clear error before anything trains, with nothing written or lost."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / TABLE).write_bytes(b"")
    saved = {**resolve(replace(registry.get("baseline"), dataset=str(tiny))).to_dict(),
             **{k: None for k in folders.RUN_INFO}, "context": {}, "label_smothing": 0.1}   # every key a run writes, and a typo
    (tmp_path / "typo.json").write_text(json.dumps(saved))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    res = tmp_path / "results"
    for args, env, message in [
        (["compare", "--results", empty], {}, f"No finished runs in {empty / TABLE}"),
        (["run", "--config", tmp_path / "typo.json", "--results", res], {},
         "holds 1 key(s) that are neither recipe fields nor what a run's recipe.json holds: 'label_smothing' (did you mean 'label_smoothing'?)"),
        (["run", "baseline", "--dataset", "digits", "--results", res], {"TOOLKIT_HOME": str(a_file)},
         f"The cache folder TOOLKIT_HOME {a_file} cannot be used: {a_file} is a file, not a folder"),
        (["run", "baseline", "--dataset", tiny, "--set", "bs=100000", "--results", res], {},
         f"has bs=100,000, but {tiny} has only 40 training images: not one full batch"),
    ]:
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            code, _, err = launch(args, capsys)
        assert code == 2 and message in err and err.startswith("error: "), (args, err)
        assert len(err.strip().splitlines()) == 1, err   # one paragraph, no traceback
    assert (empty / TABLE).read_bytes() == b"" and not res.exists()


def test_a_sweep_whose_runs_are_all_running_elsewhere_says_so(tiny, tmp_path, capsys):
    """Its only run is running in another (live) process: it is left alone, and there is nothing to compare yet."""
    res = tmp_path / "results"
    job, = plan.plan(["baseline"], plan.context_of(dataset=str(tiny), epochs=1), reference=False)
    folders.start(folders.new_run_dir(res, job.recipe), job.recipe, job.context)   # this test's own pid: alive
    code, out, err = launch(["run", "baseline", "--dataset", tiny, "--epochs", 1, "--no-reference", "--results", res],
                            capsys)
    assert code == 2 and "left alone" in out, out + err
    assert "Nothing to compare: none of these runs has finished" in err


def test_run_then_compare(tiny, tmp_path, capsys):
    """A run whose output goes to a file: one plain line per epoch, no carriage return (no bar is ever drawn)."""
    res = tmp_path / "results"
    ctx = ["--dataset", tiny, "--size", 32, "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16"]
    with (tmp_path / "out.txt").open("w") as out:
        p = subprocess.run([sys.executable, "-m", "toolkit", "run", "label_smoothing", *map(str, ctx), "--seeds", "2",
                            "--results", str(res)], stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    p.stdout = (tmp_path / "out.txt").read_text()
    assert "\r" not in p.stdout and "\r" not in p.stderr
    epochs = [line for line in p.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 4 and all(re.fullmatch(r"epoch 1/1  stage 1  32px  train_loss \d+\.\d{4}  valid_loss "
                                                 r"\d+\.\d{4}  accuracy \d+\.\d%  \d+\.\ds", e) for e in epochs)
    assert len(re.findall(r"^    accuracy \d+\.\d% in \d+s -> ", p.stdout, re.M)) == 4
    assert "[1/4] normalize (reference)" in p.stdout and "[4/4] label_smoothing" in p.stdout
    assert "| label_smoothing | normalize " in p.stdout and "need more seeds" in p.stdout
    table = pd.read_csv(res / "runs.csv", dtype={"config_id": str})
    assert table["name"].tolist() == ["normalize", "label_smoothing"] * 2
    assert all((res / f"last_run{ext}").exists() for ext in (".md", ".csv", ".png"))
    _, shown, _ = launch(["show", "label_smoothing", *ctx], capsys)        # show and run agree on what runs
    assert re.search(rf"^config_id +{table['config_id'].iloc[1]}$", shown, re.M)
    code, out, _ = launch(["compare", "label*", "--results", res], capsys)
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert code == 0 and rows == ["experiment", "label_smoothing"]   # the header, then the one row asked for
    row = pd.read_csv(res / "compare.csv").iloc[0]
    assert row["n"] == 2 and row["delta_pairs"] == 2 and row["reference_name"] == "normalize"


def test_two_settings_stay_two_rows(tiny, tmp_path, capsys):
    res = tmp_path / "results"
    ctx = ["--dataset", tiny, "--size", 32, "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16",
           "--results", res, "--quiet"]
    assert launch(["run", "baseline", *ctx], capsys)[0] == 0
    code, out, _ = launch(["run", "baseline", *ctx, "--set", "lr=1e-2"], capsys)
    assert code == 0 and "lr=0.01" in out
    code, out, _ = launch(["compare", "--results", res], capsys)
    assert code == 0
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| baseline")]
    assert rows == ["baseline", "baseline [lr=0.01]"]
    assert pd.read_csv(res / "compare.csv")["n"].tolist() == [1, 1]


def test_ctrl_c_keeps_finished_epochs_and_table(tiny, tmp_path, capsys):
    res = tmp_path / "results"
    args = ["run", "baseline", "--dataset", tiny, "--size", 32, "--set", "arch=xresnet18", "--set", "bs=16",
            "--results", res, "--quiet"]
    assert launch([*args, "--epochs", 1], capsys)[0] == 0   # a finished run first, in this process
    table = (res / "runs.csv").read_bytes()
    code, err = signal_when([sys.executable, "-m", "toolkit", *args, "--epochs", 200],
                            lambda: epochs_logged(res, 2), signal.SIGINT)
    assert code == 130 and "Interrupted during 'baseline'" in err and "Traceback" not in err
    assert (res / "runs.csv").read_bytes() == table
    unfinished = [p for p in (res / "runs").iterdir() if not (p / "metrics.json").exists()]
    assert len(unfinished) == 1 and len(pd.read_csv(unfinished[0] / "epochs.csv")) >= 2


def test_a_saved_model_exports_to_a_learner_that_predicts_its_accuracy_back(tmp_path, capsys):
    import warnings as w
    from fastai.learner import load_learner
    from toolkit.data.datasets import load
    results = tmp_path / "r"
    code, out, err = launch(["run", "baseline", "--dataset", "digits", "--epochs", 1, "--set", "arch=xresnet18",
                             "--set", "ema=0.9", "--no-reference", "--quiet", "--save-model", "--results", results],
                            capsys)
    assert code == 0, err
    run_dir = next((results / "runs").iterdir())
    weights = torch.load(run_dir / "model.pth", weights_only=True)          # plain tensors, both sets named
    assert sorted(weights) == ["ema", "model"] and all(isinstance(v, torch.Tensor) for v in weights["model"].values())
    assert f"{run_dir / 'model.pth'}" in (results / "last_run.md").read_text()  # the comparison says where
    code, out, err = launch(["export", run_dir, tmp_path / "digits.pkl"], capsys)
    assert code == 0, err
    with w.catch_warnings():
        w.simplefilter("ignore")
        learn = load_learner(tmp_path / "digits.pkl")
    files = list(load("digits").files["val"])
    with learn.no_bar(), learn.no_logging():
        acc = float(learn.validate(dl=learn.dls.test_dl(files, with_labels=True))[1])
        label = learn.predict(files[0])[0]
    row = load_table(results).iloc[0]
    # the folder pipeline resamples the images once more than the pack did: within 5 of 359 images
    assert abs(acc - row["accuracy"]) <= 5 / 359 and label in learn.dls.vocab
    (run_dir / "model.pth").unlink()
    code, _, err = launch(["export", run_dir, tmp_path / "x.pkl"], capsys)
    assert code == 2 and "only a run made with --save-model keeps its weights" in err
