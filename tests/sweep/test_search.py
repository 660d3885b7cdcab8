"""toolkit search: Optuna proposes, every trial an ordinary run, a killed search goes on, pruned trials never enter
a comparison, and the best settings are confirmed on fresh seeds beside what the search scored them."""
import os
import subprocess
import sys

import pandas as pd
import pytest

from toolkit.errors import ToolkitError
from toolkit.sweep import search as searching

from conftest import launch

# The launcher, SIGKILLed right after its k-th checkpoint is on disk.
KILLER = """
import os, signal, sys
from toolkit.records import artifacts
from toolkit.cli import main
k, saved, save = int(os.environ["KILL_AFTER_CHECKPOINT"]), [], artifacts.save_checkpoint
def save_then_die(run_dir, state):
    out = save(run_dir, state)
    saved.append(1)
    if len(saved) == k:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
artifacts.save_checkpoint = save_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("space, sampler, says", [
    (["lrr=log(1e-4,1e-1)"], "tpe", "lr"),                            # unknown key, with its close match
    (["lr=log(1e-1,1e-4)"], "tpe", "lower bound must be below"),      # bounds reversed
    (["wd=log(0,1e-1)"], "tpe", "log scale needs bounds above 0"),    # log of a non-positive bound
    (["tta=uniform(0,1)"], "tpe", "is a text field"),                 # a text field given a range
    (["mixup="], "tpe", "empty choice"),                              # an empty choice
    (["lr=log(1e-4,1e-1)"], "grid", "grid sampler"),                  # a range under the grid sampler
    (["lr=0.1,abc"], "tpe", "lr"),                                    # a choice that is no number
    ([], "tpe", "needs a space"),
    (["lr=log(1e-4,1e-1)"], "cmaes", "--sampler must be one of"),
    (["lr=LOG(1e-4,1e-1)"], "tpe", "is no range"),                    # a range misspelt
    (["lr=log(1e-4,1e-1,2)"], "tpe", "is no range"),
    (["bs=log(0.5,4)"], "tpe", "whole number"),                       # an int field given fractional bounds
])
def test_bad_spaces_are_clear_errors(space, sampler, says):
    with pytest.raises(ToolkitError, match=says):
        searching.parse_space(space, sampler)


def test_a_space_as_the_launcher_gives_it_and_as_python_gives_it():
    dims = searching.parse_space(["lr=log(1e-4,1e-1)", "mixup=0,0.2,0.4", "tta=flip", "tta=crops", "epochs=uniform(2,6)"])
    assert dims["lr"].scale == "log" and (dims["lr"].low, dims["lr"].high) == (1e-4, 1e-1)
    assert dims["mixup"].choices == (0.0, 0.2, 0.4) and dims["tta"].choices == ("flip", "crops")
    assert dims["epochs"].integer and dims["epochs"].distribution().__class__.__name__ == "IntDistribution"
    same = searching.parse_space({"lr": "log(1e-4,1e-1)", "mixup": [0, 0.2, 0.4], "tta": ["flip", "crops"],
                                  "epochs": "uniform(2,6)"})
    assert searching.canonical(same) == searching.canonical(dims)


def test_a_bad_space_from_the_launcher_exits_2_with_one_paragraph(tiny, tmp_path, capsys):
    code, out, err = launch(["search", "normalize", "--space", "lr=log(1e-1,1e-4)", "--trials", "2",
                             "--dataset", str(tiny), "--results", str(tmp_path / "r")], capsys)
    assert code == 2 and "lower bound must be below" in err and not (tmp_path / "r" / "search.db").exists()


def test_a_killed_search_goes_on_and_its_best_are_confirmed_on_fresh_seeds(tiny, tmp_path, capsys):
    results = tmp_path / "r"
    args = ["search", "normalize", "--space", "lr=log(1e-3,1e-1)", "--space", "wd=log(1e-4,1e-1)", "--trials", "3", "--top", "2", "--seeds", "3",
            "--dataset", str(tiny), "--size", "16", "--epochs", "1", "--set", "arch=xresnet18", "--set", "bs=16",
            "--results", str(results), "--checkpoint-every", "0", "--quiet"]
    # killed for real in the second trial, once its one epoch's checkpoint is on disk, before it is recorded
    killed = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "KILL_AFTER_CHECKPOINT": "2"})
    assert killed.returncode == -9
    first = pd.read_csv(results / "runs.csv")
    assert len(first) == 1 and (results / "search.db").exists()

    code, out, err = launch(args, capsys)   # the same command again
    assert code == 0, err
    table = pd.read_csv(results / "runs.csv")
    trials = table[table["confirm"].astype(str) != "True"]
    assert len(trials) == 3 and trials["config_id"].nunique() == 3 and set(trials["seed"]) == {42}
    assert first["run_id"].iloc[0] in set(trials["run_id"])                # the finished trial was not run again
    assert int(trials.set_index("run_id").drop(first["run_id"].iloc[0])["attempts"].max()) == 2   # resumed
    assert "left running by a stopped search" in out

    import optuna
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{results / 'search.db'}")[0],
                              storage=f"sqlite:///{results / 'search.db'}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1

    confirm = table[table["confirm"].astype(str) == "True"]
    assert set(confirm["seed"]) == {43, 44, 45}                                # fresh: not the search's 42
    assert set(confirm["name"]) >= {"normalize"} and confirm["config_id"].nunique() == 3   # 2 settings + the recipe
    report = (results / "search-normalize.md").read_text()
    assert "## Confirmation" in report and "optimism" in report and "pruner none" in report
    confirmed = pd.read_csv(results / "search-normalize-confirm.csv")
    assert len(confirmed[confirmed["delta_mean"].notna()]) == 2 and confirmed["delta_pairs"].max() == 3
    lines = [line for line in report.splitlines() if line.startswith("| lr=")]   # each setting: search score beside fresh seeds
    assert len(lines) == 2 and all(line.count("|") == 8 for line in lines)
    trials_csv = pd.read_csv(results / "search-normalize-trials.csv")
    assert set(trials_csv["state"]) == {"complete", "fail"} and trials_csv["lr"].between(1e-3, 1e-1).all() \
        and trials_csv["wd"].between(1e-4, 1e-1).all()

    from PIL import Image
    assert not (results / "search-normalize-importance.png").exists() and "No importance" in report   # 3 trials
    for what in ("history", "slice", "confirm"):
        with Image.open(results / f"search-normalize-{what}.png") as im:
            assert im.size[0] > 300

    code, again, err = launch(args, capsys)   # finished: nothing runs again, the same trials
    assert code == 0 and len(pd.read_csv(results / "runs.csv")) == len(table)
    assert "left running" not in again


def test_a_pruned_trial_is_marked_never_resumed_and_never_in_the_table(tiny, tmp_path):
    import optuna
    from toolkit import api
    from toolkit.records import folders
    from toolkit.records.table import load_table
    from toolkit.sweep.jobs import triage
    from toolkit.sweep.options import Options
    from toolkit.sweep.plan import Plan

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    results = tmp_path / "r"
    options = Options(results=str(results), progress="none")
    ctx = api.context(dataset=str(tiny), size=16, epochs=2, arch="xresnet18", bs=16)
    dims = searching.parse_space(["lr=log(1e-3,1e-1)"])
    study = optuna.create_study(direction="maximize", pruner=Always())
    trial = study.ask({k: d.distribution() for k, d in dims.items()})
    said = []
    searching._run_trial(study, trial, "normalize", ctx, options, said.append, 1, 1)
    assert study.trials[0].state.name == "PRUNED" and any("pruned after 1 epoch" in s for s in said)
    (run,) = folders.find_runs(results).values()
    status = folders.read_status(run[-1])
    assert status["status"] == "pruned" and status["epochs_done"] == 1                 # never at its last epoch
    assert load_table(results).empty                                          # never a finished result
    jobs = Plan.of(["normalize"], ctx, grid=[searching.setting(trial.params)]).jobs(1, reference=False)
    assert triage(jobs, results, load_table(results), log=said.append, keep_pruned=True) == []   # never resumed
    assert triage(jobs, results, load_table(results), log=said.append) == [(jobs[0], None)]   # a sweep: afresh
    assert not (run[-1] / "checkpoint.pt").exists()
    with pytest.raises(ToolkitError, match="never resumed"):
        api.resume(run[-1], quiet=True)

    one = api.context(dataset=str(tiny), size=16, epochs=1, arch="xresnet18", bs=16)   # at its last epoch: finished
    trial = study.ask({k: d.distribution() for k, d in dims.items()})
    searching._run_trial(study, trial, "normalize", one, options, said.append, 2, 2)
    assert study.trials[1].state.name == "COMPLETE" and len(load_table(results)) == 1


def test_a_study_opened_with_another_space_is_refused_and_a_second_driver_too(tmp_path):
    from filelock import FileLock
    from toolkit.sweep.plan import Plan
    recipe = Plan.of(["normalize"], {"dataset": "digits"}).rows[0].recipe
    lr = searching.parse_space(["lr=log(1e-4,1e-1)"])
    searching.open_study(tmp_path, "mine", lr, "tpe", "none", recipe, 42)
    searching.open_study(tmp_path, "mine", lr, "tpe", "none", recipe, 42)          # the same search: opened again
    with pytest.raises(ToolkitError, match="was opened with another search .*space"):
        searching.open_study(tmp_path, "mine", searching.parse_space(["wd=log(1e-6,1e-1)"]), "tpe", "none", recipe, 42)
    with pytest.raises(ToolkitError, match="sampler"):
        searching.open_study(tmp_path, "mine", lr, "random", "none", recipe, 42)
    assert searching.study_name(recipe, lr, "tpe") != searching.study_name(recipe, lr, "random")
    with FileLock(str(tmp_path / ".search-mine.lock")):   # another driver holds the study
        with pytest.raises(ToolkitError, match="Another search is driving the study 'mine'"):
            searching.search("normalize", {"dataset": "digits"}, ["lr=log(1e-4,1e-1)"], 2, study="mine",
                             options=searching.Options(results=str(tmp_path), progress="none"))


@pytest.mark.slow
def test_the_confirmed_pick_also_runs_on_the_full_data(tiny, tmp_path):
    from toolkit import api
    done = api.search("normalize", {"lr": "log(1e-3,1e-1)"}, trials=2, top=1, seeds=3, full="digits",
                      dataset=str(tiny), size=16, epochs=1, arch="xresnet18", bs=16, results=tmp_path / "r",
                      quiet=True, log=lambda m: None)
    full = done.full.summary
    assert set(full["dataset"]) == {"digits"} and len(full) == 2 and full["delta_pairs"].max() == 3
    assert "## On the full data" in done.markdown and (tmp_path / "r" / "search-normalize-full.md").exists()


def test_the_grid_sampler_proposes_every_setting_once():
    import optuna
    dims = searching.parse_space(["mixup=0,0.2,0.4", "tta=flip", "tta=crops"], "grid")
    study = optuna.create_study(direction="maximize", sampler=searching._sampler("grid", dims, 0))
    asked = []
    for _ in range(6):   # told its last setting, the grid asks Optuna to stop: the search ends there
        trial = study.ask({k: d.distribution() for k, d in dims.items()})
        asked.append(tuple(sorted(trial.params.items())))
        searching._tell(study, trial, 0.5)
    assert len(set(asked)) == 6 and {t.state.name for t in study.trials} == {"COMPLETE"}


def test_a_pruner_under_ray_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ToolkitError, match="--pruner stops trials from the epochs this process sees"):
        searching.search("normalize", {"dataset": "digits"}, ["lr=log(1e-4,1e-1)"], 2, pruner="halving",
                         options=searching.Options(results=str(tmp_path), executor="ray", progress="none"))
    assert not (tmp_path / "search.db").exists()


def test_a_trial_at_the_recipes_own_setting_is_the_recipe_itself(tiny, tmp_path):
    from toolkit import api
    from toolkit.records.table import load_table
    ctx = api.context(dataset=str(tiny), size=16, epochs=1, arch="xresnet18", bs=16)
    options = searching.Options(results=str(tmp_path), progress="none")
    done = searching.search("normalize", ctx, ["mixup=0,0.2"], 2, sampler="grid", options=options, log=lambda m: None)
    assert list(done.trials["state"]) == ["complete", "complete"]           # mixup=0 is normalize's own
    assert set(load_table(tmp_path)["name"]) == {"normalize", "normalize [mixup=0.2]"}
    with pytest.raises(ToolkitError, match="a study's name is letters"):
        searching.search("normalize", ctx, ["mixup=0,0.2"], 2, study="a/b", options=options)
