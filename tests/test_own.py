"""Your own idea in a comparison: components registered by name in your own file, named by recipes, loaded by the
launcher (--experiments), their code part of the config id, kept in the run folder and checked on replay."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolkit.errors import RecipeError, ToolkitError
from toolkit.recipes import components
from toolkit.recipes.recipe import Recipe
from toolkit.recipes.identity import config_id
from toolkit.recipes.overrides import apply_overrides
from toolkit.records import schema

from conftest import launch

IDEAS = '''
"""A user's own ideas: a callback that counts batches, a focal loss, and a recipe that names both."""
from pathlib import Path

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

import toolkit

with open("imported.txt", "a") as fh:   # how often this file was run
    fh.write("imported\\n")


class CountBatches(Callback):
    """Counts the training batches of a fit and appends the count to a file."""
    def __init__(self, out: str):
        self.out = out

    def before_fit(self):
        self.n = 0

    def after_batch(self):
        if self.training:
            self.n += 1

    def after_fit(self):
        with open(self.out, "a") as fh:
            fh.write(f"{self.n}\\n")


@toolkit.register_callback("count_batches")
def count_batches(out: str = "batches.txt"):
    return CountBatches(str(Path(out).resolve()))


class FocalLoss(torch.nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p)^gamma."""
    def __init__(self, gamma: float):
        super().__init__()
        self.gamma, self.reduction = gamma, "mean"

    def forward(self, pred, target):
        ce = F.cross_entropy(pred.float(), target, reduction="none")
        loss = (1 - torch.exp(-ce)) ** self.gamma * ce
        return loss.mean() if self.reduction == "mean" else loss


@toolkit.register_loss("focal")
def focal(gamma: float = 2.0):
    return FocalLoss(gamma)


toolkit.register(toolkit.derive(toolkit.get("normalize"), "focal_counted", callbacks=("count_batches",),
                                loss="focal(gamma=2.0)", notes="focal loss, batches counted"))
'''


def toolkit_cli(folder: Path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "toolkit", *map(str, args)], cwd=folder, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


def config_line(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.startswith("config_id"))


def test_your_callback_and_loss_from_your_file_compared_with_their_reference(tiny, tmp_path, capsys):
    """In a folder that also holds an `experiments/` of the user's: list, run over 3 seeds with a verdict, the
    callback really ran; an edit of the loss's code is another config id, an unrelated edit is not; a replay
    without the file is a clear error; reading the records never runs the file."""
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("raise RuntimeError('the user folder was imported')\n")
    ideas = tmp_path / "ideas.py"
    ideas.write_text(IDEAS)
    listed = toolkit_cli(tmp_path, "list", "--experiments", ideas)
    assert listed.returncode == 0, listed.stderr
    assert any(line.startswith("focal_counted") and f"[yours: {ideas}]" in line for line in listed.stdout.splitlines())
    assert any(line.startswith("normalize ") for line in listed.stdout.splitlines())   # the shipped ones are there

    run = toolkit_cli(tmp_path, "run", "focal_counted", "--experiments", ideas, "--dataset", tiny, "--size", 16,
                      "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16", "--seeds", 3, "--results", "r",
                      "--quiet")
    assert run.returncode == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| focal_counted"))
    assert "| normalize " in row and any(v in row for v in ("better", "worse", "equivalent", "inconclusive"))
    assert [int(n) for n in (tmp_path / "batches.txt").read_text().split()] == [2, 2, 2]  # 40 images, bs 16: 2 full batches
    run_dir = next((tmp_path / "r" / "runs").glob("*focal_counted*"))
    kept = (run_dir / "code-loss-focal.py").read_text()
    assert "class FocalLoss" in kept and "def focal" in kept
    saved = json.loads((run_dir / "recipe.json").read_text())
    assert saved["loss"] == "focal(gamma=2.0)" and saved["callbacks"] == ["count_batches"]
    assert "loss:focal=" in saved["code"] and saved["code_from"]["loss:focal"] == str(ideas)

    ideas.write_text(IDEAS + "\n\ndef unrelated():   # an edit elsewhere in the file\n    return 1\n")
    same = ["--dataset", tiny, "--size", 16, "--epochs", 1, "--set", "arch=xresnet18", "--set", "bs=16"]   # as run
    unrelated = toolkit_cli(tmp_path, "show", "focal_counted", "--experiments", ideas, *same)
    ideas.write_text(IDEAS.replace("** self.gamma * ce", "** (self.gamma / 2) * ce"))
    edited = toolkit_cli(tmp_path, "show", "focal_counted", "--experiments", ideas, *same)
    assert saved["config_id"] == config_line(unrelated.stdout) != config_line(edited.stdout)

    imported = (tmp_path / "imported.txt").read_text().count("imported")
    replay = toolkit_cli(tmp_path, "run", "--config", run_dir / "recipe.json", "--results", "r2")
    assert replay.returncode == 2 and "Traceback" not in replay.stderr
    assert "'count_batches'" in replay.stderr and f"--experiments {ideas}" in replay.stderr
    other = toolkit_cli(tmp_path, "run", "--config", run_dir / "recipe.json", "--results", "r2",
                        "--experiments", ideas)   # the loss's code was edited since
    assert other.returncode == 2 and "'focal'" in other.stderr and "code-loss-focal.py" in other.stderr
    code, out, _ = launch(["compare", "--results", tmp_path / "r", "--out", tmp_path / "r" / "compare"], capsys)
    assert code == 0 and "focal_counted" in out
    assert (tmp_path / "imported.txt").read_text().count("imported") == imported + 1   # only --experiments ran it
    assert not (tmp_path / "r2").exists() or not list((tmp_path / "r2").glob("runs/*"))


def _module(path: Path, source: str, name: str):
    """A module of the user's, from a file (so that its source can be read), without the launcher."""
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


LOSS = '''
import torch

SCALE = 2.0


def helper(x):
    return x * SCALE


class Smoothed(torch.nn.Module):
    def forward(self, pred, target):
        return helper(torch.nn.functional.cross_entropy(pred, target))


def factory(gamma: float = 1.0):
    return Smoothed()
'''


@pytest.mark.parametrize("edit, changes", [
    (lambda s: s.replace("def factory", "# a comment\n\n\ndef factory"), False),
    (lambda s: s + "\n\ndef other():\n    return 3\n", False),
    (lambda s: s.replace("SCALE = 2.0", "SCALE = 3.0"), True),        # a constant it uses
    (lambda s: s.replace("return x * SCALE", "return x * SCALE + 0"), True),   # a function it calls
    (lambda s: s.replace("cross_entropy(pred, target)", "cross_entropy(pred, target, label_smoothing=0.1)"), True),
])
def test_the_identity_follows_the_code_a_factory_uses_and_nothing_else(tmp_path, edit, changes):
    a = _module(tmp_path / "a.py", LOSS, "user_loss_a")
    b = _module(tmp_path / "b.py", edit(LOSS), "user_loss_b")
    same = components.code_text(a.factory) == components.code_text(b.factory)
    assert same != changes
    assert "torch.nn.modules.module.Module@" in components.code_text(a.factory)   # a library class: name@version


def test_a_name_in_a_recipe_is_parsed_canonically_and_never_evaluated():
    r = apply_overrides(Recipe(), ["callbacks=count, clip( max_norm = 0.5, every=2 )", "loss=focal( gamma=2 )"])
    assert r.callbacks == ("count", "clip(every=2, max_norm=0.5)") and r.loss == "focal(gamma=2)"
    for bad in ["clip(0.5)", "clip(max_norm=__import__('os'))", "clip(**kw)", "a.b", "clip(max_norm=x)"]:
        with pytest.raises(RecipeError, match="callbacks"):
            apply_overrides(Recipe(), [f"callbacks={bad}"])


def test_registering_again_same_code_is_quiet_other_code_says_so_two_files_are_an_error(tmp_path, capsys):
    made = []

    def factory(max_norm: float = 1.0):
        made.append(max_norm)

    components.register_callback("again_cb")(factory)
    components.register_callback("again_cb")(factory)
    assert capsys.readouterr().err == ""

    def factory(max_norm: float = 1.0):   # noqa: F811  (an edited notebook cell)
        made.append(-max_norm)
    components.register_callback("again_cb")(factory)
    assert "registered again with other code" in capsys.readouterr().err
    assert components.get("callback", "again_cb").factory is factory

    one, two = tmp_path / "one.py", tmp_path / "two.py"
    for f, v in ((one, 1), (two, 2)):
        f.write_text(f"import toolkit\n\n@toolkit.register_loss('twice_loss')\ndef f():\n    return {v}\n")
    components.load(str(one))
    components.load(str(one))   # the same file again: nothing happens
    with pytest.raises(ToolkitError, match="registered by two files"):
        components.load(str(two))


def test_unknown_names_and_arguments_are_clear_errors_before_anything_trains(tiny, capsys, tmp_path):
    components.register_callback("clip_here")(lambda max_norm=1.0: None)
    code, _, err = launch(["show", "normalize", "--set", "callbacks=clip_hre"], capsys)
    assert code == 2 and "Unknown callback 'clip_hre'" in err and "clip_here" in err
    code, _, err = launch(["show", "normalize", "--set", "callbacks=clip_here(max_nrm=0.5)"], capsys)
    assert code == 2 and "cannot take" in err and "max_nrm" in err
    code, _, err = launch(["show", "normalize", "--set", "opt=nosuchopt"], capsys)
    assert code == 2 and "Unknown optimizer 'nosuchopt'" in err and "sgd" in err
    base = ["run", "normalize", "--no-reference", "--dataset", tiny, "--size", 16, "--epochs", 1, "--results", tmp_path]
    code, _, err = launch([*base, "--set", "opt=sgd", "--set", "sqr_mom=0.9"], capsys)
    assert code == 2 and "opt=sgd takes no sqr_mom" in err
    components.register_loss("plain_fn")(lambda: (lambda pred, target: (pred - pred).sum()))
    code, _, err = launch([*base, "--set", "loss=plain_fn", "--set", "label_smoothing=0.1"], capsys)
    assert code == 2 and "label smoothing is a loss of its own" in err
    code, _, err = launch([*base, "--set", "loss=plain_fn", "--set", "mixup=0.4"], capsys)
    assert code == 2 and "cannot be mixed" in err
    assert not list(tmp_path.glob("runs/*"))


def test_fastais_training_options_run_as_recipe_fields(tiny, capsys, tmp_path):
    """opt, wd, mom, act and sa reach the Learner as fastai has them, and a run with them trains."""
    import toolkit
    from fastai.layers import SimpleSelfAttention
    from torch import nn
    settings = dict(opt="sgd", wd=1e-4, mom=0.9, act="mish", sa=True, schedule="flat_cos", arch="xresnet18",
                    clip=1.0, sh=0.3, bs=16)
    learn = toolkit.learner("normalize", dataset=str(tiny), size=16, **settings)
    learn.create_opt()
    assert type(learn.opt).__name__ == "Optimizer" and learn.opt.hypers[0]["mom"] == 0.9
    assert learn.opt.hypers[0]["wd"] == 1e-4 and "sqr_mom" not in learn.opt.hypers[0]   # SGD's own hypers
    assert any(isinstance(m, nn.Mish) for m in learn.model.modules())
    assert any(isinstance(m, SimpleSelfAttention) for m in learn.model.modules())
    assert "RandomErasing" in str(learn.dls.after_batch) and "GradientClip" in str(learn.cbs)
    code, out, err = launch(["run", "normalize", "--no-reference", "--dataset", tiny, "--size", 16, "--epochs", 1,
                             "--results", tmp_path, "--quiet", *(x for k, v in settings.items()
                                                                  for x in ("--set", f"{k}={v}"))], capsys)
    assert code == 0, err
    row = schema.row_recipe(__import__("toolkit.records.table", fromlist=["x"]).load_table(tmp_path).iloc[0])
    assert (row.opt, row.wd, row.mom, row.act, row.sa) == ("sgd", 1e-4, 0.9, "mish", True)


def test_numeric_columns_are_derived_from_the_recipes_type_hints():
    numbers = {k for k in schema.RECIPE_FIELDS if schema.field_type(k) in (int, float)}
    assert numbers <= set(schema.NUMERIC)
    assert {"valid_pct", "split_seed", "wd", "mom", "clip", "sh", "size", "lr"} <= set(schema.NUMERIC)
    assert not {"opt", "loss", "callbacks", "act", "sa", "code"} & set(schema.NUMERIC)
    r = Recipe(name="x", callbacks=("a(b=1)",), wd=1e-3, size=32, precision="fp32", channels_last=False,
               code="callback:a=0123456789ab")
    cells = {k: ("" if v is None else json.dumps(v) if isinstance(v, (tuple, list)) else str(v))
             for k, v in schema.result_row(r, {}, Path("runs/x"), {}).items()}   # as a CSV read as text holds them
    assert schema.row_recipe(cells) == r and config_id(schema.row_recipe(cells)) == config_id(r)


def test_every_existing_config_id_stays():
    """Fields at their defaults (the optimizer's own settings, no components) leave the id of older runs alone."""
    resolved = Recipe(name="normalize", normalize="imagenet", size=224, precision="fp32", channels_last=False)
    assert config_id(resolved) == config_id(apply_overrides(resolved, ["opt=adam", "act=relu", "callbacks="]))
    assert config_id(apply_overrides(resolved, ["mom=0.9"])) == config_id(resolved)   # one_cycle cycles momentum
    assert config_id(apply_overrides(resolved, ["mom=0.9", "schedule=flat_cos"])) != \
        config_id(apply_overrides(resolved, ["schedule=flat_cos"]))


def test_the_demos_recorded_config_ids_are_computed_again():
    """The config ids docs/demo.csv recorded before these fields existed come out the same today."""
    import pandas as pd

    from toolkit.api import resolved
    demo = pd.read_csv(Path(__file__).parents[1] / "docs" / "demo.csv")
    for _, row in demo.iterrows():
        r = resolved(row["name"], dataset=row["dataset"], size=int(row["size"]), epochs=int(row["epochs"]),
                     arch=row["arch"], precision=row["precision"], channels_last=bool(row["channels_last"]))
        assert config_id(r) == row["config_id"], row["name"]


def test_your_files_from_the_environment_and_from_installed_entry_points(tmp_path, monkeypatch):
    import importlib.metadata
    env_file, pkg = tmp_path / "from_env.py", tmp_path / "pkg"
    env_file.write_text("import toolkit\n\n@toolkit.register_batch_tfm('env_flip')\ndef env_flip():\n"
                        "    return lambda x: x.flip(-1)\n")
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import toolkit\n\n@toolkit.register_optimizer('ep_sgd')\n"
                                     "def ep_sgd(params, lr, mom=0.0):\n    from fastai.optimizer import SGD\n"
                                     "    return SGD(params, lr, mom=mom)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(components.ENV, os.pathsep.join([str(env_file)]))
    point = importlib.metadata.EntryPoint(name="mine", value="pkg", group=components.ENTRY_POINTS)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [point] if group == components.ENTRY_POINTS else [])
    components.load_installed()
    assert components.get("batch_tfm", "env_flip").origin == str(env_file.resolve())
    assert components.get("optimizer", "ep_sgd") is not None
    r = apply_overrides(Recipe(), ["opt=ep_sgd(mom=0.5)", "batch_tfms=env_flip"])
    assert [c.name for c, _ in components.used(r)] == ["env_flip", "ep_sgd"]


def test_an_error_in_your_file_or_factory_shows_its_traceback_framed_by_one_line(tmp_path, capsys, tiny):
    broken = tmp_path / "broken.py"
    broken.write_text("import toolkit\n\n\ndef helper():\n    return 1 / 0\n\n\nhelper()\n")
    code, _, err = launch(["list", "--experiments", broken], capsys)
    assert code == 2 and "Traceback" in err and "ZeroDivisionError" in err and 'broken.py", line 8' in err
    assert err.strip().splitlines()[-1].startswith(f"error: Loading {broken} failed: ZeroDivisionError")
    faulty = tmp_path / "faulty.py"
    faulty.write_text("import toolkit\n\n@toolkit.register_callback('faulty_cb')\ndef faulty_cb(level: int = 1):\n"
                      "    raise ValueError(f'no level {level}')\n")
    code, _, err = launch(["run", "normalize", "--no-reference", "--experiments", faulty, "--dataset", tiny,
                           "--size", 16, "--epochs", 1, "--set", "bs=16", "--set", "callbacks=faulty_cb(level=3)",
                           "--results", tmp_path / "r"], capsys)
    assert code == 2 and "Traceback" in err and "ValueError: no level 3" in err
    assert f"error: The callback 'faulty_cb' (from {faulty}) failed when built" in err
    assert not list((tmp_path / "r").glob("runs/*"))   # before anything trained


NESTED = '''
import functools

SCALE = 2.0


def helper(x):
    return x * SCALE


def other(x):
    return x - 1


first, second = helper, helper


def factory(level: int = 1):
    g = first
    h = second
    return lambda x: g(h(helper(x)))
'''


@pytest.mark.parametrize("edit, changes", [
    (lambda s: s.replace("return x * SCALE", "return x * SCALE * 1"), True),   # called inside a nested lambda
    (lambda s: s.replace("first, second = helper, helper", "first, second = helper, other"), True),  # aliases
    (lambda s: s.replace("return x - 1", "return x - 2"), False),          # a function it does not use
])
def test_the_identity_follows_nested_code_and_names_not_objects_alone(tmp_path, edit, changes):
    a = _module(tmp_path / "na.py", NESTED, "user_nested_a")
    b = _module(tmp_path / "nb.py", edit(NESTED), "user_nested_b")
    assert (components.code_text(a.factory) != components.code_text(b.factory)) == changes


def test_the_identity_is_the_same_in_every_process_and_while_the_file_is_edited(tmp_path):
    source = ("KEYS = frozenset({'alpha', 'beta', 'gamma', 'delta'})\nCFG = {'b': 2.0, 'a': {1, 2, 3}}\n\n\n"
              "def factory(s=1):\n    return sorted(KEYS), CFG\n")
    (tmp_path / "hashed.py").write_text(source)
    show = ("import sys; sys.path.insert(0, sys.argv[1]); import hashed; from toolkit.recipes import components; "
            "print(components.Component('callback', 'c', hashed.factory, 'x').identity(), "
            "components.canonical(\"cb(s={'b', 'a', 'c'}, d={'z': 1, 'y': 2})\", 'callbacks'))")
    seen = {subprocess.run([sys.executable, "-c", show, str(tmp_path)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(seen) == 1 and "cb(d={'y': 2, 'z': 1}, s={'a', 'b', 'c'})" in seen.pop()
    module = _module(tmp_path / "edited.py", LOSS, "user_edited")
    comp = components.Component("loss", "edited", module.factory, str(tmp_path / "edited.py"))
    before = comp.identity()
    (tmp_path / "edited.py").write_text("# a line on top moves every line\n" + LOSS.replace("2.0", "3.0"))
    assert comp.identity() == before and "SCALE = 2.0" not in comp.source()   # the code that runs, not the file
    again = _module(tmp_path / "edited.py", (tmp_path / "edited.py").read_text(), "user_edited")
    assert components.Component("loss", "edited", again.factory, "x").identity() != before   # run again: read again


def test_fastais_names_are_not_taken_and_a_file_that_failed_loads_again_once_fixed(tmp_path):
    with pytest.raises(ToolkitError, match="the toolkit's own optimizer"):
        components.register_optimizer("adam")(lambda params, lr: None)
    with pytest.raises(ToolkitError, match="the toolkit's own model"):
        components.register_model("xresnet18")(lambda n_out: None)
    ideas = tmp_path / "half.py"
    ideas.write_text("import toolkit\n\n@toolkit.register_loss('half_loss')\ndef half():\n    return 1\n\n1 / 0\n")
    with pytest.raises(ToolkitError, match="ZeroDivisionError"):
        components.load(str(ideas))
    assert components.get("loss", "half_loss") is None                 # nothing of the failed file stays
    ideas.write_text("import toolkit\n\n@toolkit.register_loss('half_loss')\ndef half():\n    return 1\n")
    components.load(str(ideas))
    assert components.get("loss", "half_loss") is not None
