import json
import math
from pathlib import Path
from dataclasses import replace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.losses import LabelSmoothingCrossEntropy

from toolkit.data import datasets as data
from toolkit.recipes import registry
from toolkit.records import schema
from toolkit.records.table import load_table
from toolkit.errors import RecipeError, RunInterrupted
from toolkit.recipes import evaluations
from toolkit.train.models import create_model
from toolkit.recipes.identity import config_id
from toolkit.sweep.options import Options
from toolkit.sweep.jobs import run_job
from toolkit.sweep.plan import Job
from toolkit.train.learner import build_learner, fit_and_evaluate as run

from conftest import folder_dls, resolved


def tiny_recipe(name, tiny, **changes):
    """A registered recipe on the tiny dataset: 32 px, batches of 16, one epoch per stage."""
    r = registry.get(name)
    changes = {"dataset": str(tiny), "size": 32, "bs": 16, "epochs": max(1, len(r.stages)), **changes}
    return resolved(replace(r, **changes))


def record(recipe, results, **kw):
    """Run `recipe` as a sweep runs a job: a run folder, its files and a row in the results table."""
    row = run_job(Job(recipe, {}), Options(results=str(results), progress="none", workers=0), **kw)
    return row, Path(row["run_dir"]), json.loads((Path(row["run_dir"]) / "metrics.json").read_text())


def local_weights(recipe, folder: Path):
    """Recipes that fetch pretrained weights get a checkpoint written here instead (1000 classes: a new head)."""
    if recipe.weights != "timm":
        return recipe
    path = folder / f"{recipe.arch.replace(':', '_')}.pth"
    torch.save(create_model(recipe.arch, 1000).state_dict(), path)
    return replace(recipe, weights=str(path))


@pytest.mark.parametrize("name", registry.list_experiments())
def test_every_experiment_trains_and_records(name, tiny, tiny_flips, results, tmp_path):
    recipe = local_weights(tiny_recipe(name, tiny), tmp_path)
    if "flip" in recipe.tta.split(","):  # the tiny digits refuse a mirror, before anything trains...
        with pytest.raises(RecipeError, match=r"tta=flip on .*digits-4, where flipping an image changes its label"):
            record(recipe, results)
        assert not (results / "runs.csv").exists()
        recipe = tiny_recipe(name, tiny_flips)  # ...and a copy that may be mirrored evaluates it
    row, run_dir, m = record(recipe, results)
    assert math.isfinite(m["valid_loss"]) and 0.0 <= m["accuracy"] <= 1.0
    assert m["images_per_second"] > 0 and m["epochs_done"] == recipe.epochs
    for f in ("recipe.json", "env.json", "metrics.json", "epochs.csv", "status.json"):
        assert (run_dir / f).is_file(), f
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert len(epochs) == recipe.epochs and epochs["train_loss"].map(math.isfinite).all()
    table = load_table(results)
    assert table["run_id"].tolist() == [run_dir.name] and table["name"].iloc[0] == name
    assert table["config_id"].iloc[0] == config_id(recipe) and table["accuracy"].iloc[0] == m["accuracy"]
    assert schema.row_recipe(table.iloc[0]) == recipe            # the whole recipe, read back from the row
    saved = json.loads((run_dir / "recipe.json").read_text())   # it went through the packed path
    assert saved["config_id"] == config_id(recipe)
    assert saved["loader"] == table["loader"].iloc[0] == "packed" and (Path(saved["pack"]) / "meta.json").is_file()
    asked = [e.key for e in evaluations.asked(recipe)]
    assert [k for k in evaluations.KEYS if f"accuracy_{k}" in m] == asked
    for k in asked:                    # each evaluation: its accuracy and seconds, in metrics.json and the row
        assert 0.0 <= m[f"accuracy_{k}"] <= 1.0 and m[f"{k}_seconds"] > 0
        assert table[f"accuracy_{k}"].iloc[0] == pytest.approx(m[f"accuracy_{k}"])
    if "fastai" in recipe.tta:
        assert m["tta_n"] == 4 and m["tta_beta"] == 0.25


class Capture(Callback):
    order = 100  # after MixUp has mixed the batch and the loss has been computed

    def __init__(self):
        self.sizes, self.checks = [], []

    def before_batch(self):
        if self.training:
            self.sizes.append(tuple(self.x.shape[-2:]))

    def after_loss(self):
        if not self.training or not hasattr(self.learn, "mix_up"):
            return
        mix, pred, eps = self.learn.mix_up, self.pred.float(), self.learn.mix_up.old_lf.eps
        logp = F.log_softmax(pred, dim=-1)

        def ls(y):  # label-smoothed cross-entropy per sample, by hand
            return (1 - eps) * -logp.gather(1, y[:, None])[:, 0] + eps / pred.shape[-1] * -logp.sum(-1)
        expected = (mix.lam * ls(self.y) + (1 - mix.lam) * ls(mix.yb1[0])).mean()
        self.checks.append((float(self.learn.loss), float(expected), float(mix.lam.min())))


def test_mixup_and_label_smoothing_compose(tiny):
    recipe = tiny_recipe("mixup_ls", tiny)
    ds = data.load(recipe.dataset)
    cap = Capture()
    learn = build_learner(recipe, folder_dls(ds, 32, 16), cbs=[cap])
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
    assert cap.checks, "no training batch was seen"
    for loss, expected, lam in cap.checks:
        assert loss == pytest.approx(expected, rel=1e-5)
        assert lam >= 0.5  # fastai's MixUp keeps the larger weight on the batch's own labels
    assert isinstance(learn.loss_func, LabelSmoothingCrossEntropy)  # MixUp restored the loss after training


def test_progressive_stages_change_the_input_size(tiny, tmp_path):
    cap = Capture()
    m = run(tiny_recipe("progressive", tiny), log=tmp_path / "epochs.csv", progress="none", num_workers=0, cbs=[cap])
    assert cap.sizes[0] == (16, 16) and cap.sizes[-1] == (32, 32) and m["epochs_done"] == 2
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert epochs["size"].tolist() == [16, 32] and epochs["stage"].tolist() == [0, 1]


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.at = epoch

    def before_epoch(self):
        if self.epoch == self.at:
            raise KeyboardInterrupt


def test_interrupted_run_keeps_finished_epochs_and_table(tiny, results):
    _, first, _ = record(tiny_recipe("baseline", tiny, arch="xresnet18"), results)
    table_before = (results / "runs.csv").read_bytes()
    with pytest.raises(RunInterrupted, match="after 2 finished epoch"):
        record(tiny_recipe("baseline", tiny, arch="xresnet18", epochs=4), results, cbs=[InterruptAt(2)])
    assert (results / "runs.csv").read_bytes() == table_before
    others = sorted(p for p in (results / "runs").iterdir() if p != first)
    assert len(others) == 1
    assert len(pd.read_csv(others[0] / "epochs.csv")) == 2 and not (others[0] / "metrics.json").exists()
    assert json.loads((others[0] / "status.json").read_text())["status"] == "interrupted"


def test_folder_loader_still_trains(tiny, results):
    _, run_dir, m = record(tiny_recipe("normalize", tiny, loader="folder"), results)
    assert math.isfinite(m["valid_loss"]) and m["epochs_done"] == 1
    assert json.loads((run_dir / "recipe.json").read_text())["pack"] is None
    assert load_table(results)["loader"].tolist() == ["folder"]


def test_same_seed_same_result_and_evaluations_leave_training_alone(tiny):
    """The same run twice, the second with a weight average and more evaluations: its raw training is the same,
    bit for bit, and hires at eval_scale 1 is the plain evaluation again."""
    a = run(tiny_recipe("baseline", tiny, arch="xresnet18", epochs=2), progress="none", num_workers=0)
    b = run(tiny_recipe("baseline", tiny, arch="xresnet18", epochs=2, ema=0.9, tta="crops,hires", eval_scale=1.0),
            progress="none", num_workers=0)
    assert (a["valid_loss"], a["accuracy"]) == (b["valid_loss"], b["accuracy"])
    assert b["accuracy_hires"] == b["accuracy"] and 0 <= b["accuracy_crops"] <= 1 and 0 <= b["accuracy_ema"] <= 1


def test_timm_models_by_name(tiny):
    m = run(tiny_recipe("baseline", tiny, arch="timm:resnet10t"), progress="none", num_workers=0)
    assert math.isfinite(m["valid_loss"]) and m["epochs_done"] == 1
