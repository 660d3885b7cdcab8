"""Evaluations of the same training: the weight average, and the views TTA averages."""
import pytest
import torch

from toolkit.data import datasets as data
from toolkit.train.callbacks import WeightEMA
from toolkit.train.evaluation import Views, _tiles
from toolkit.train.learner import build_learner

from conftest import folder_dls
from tests.train.test_train import tiny_recipe


def test_the_average_goes_on_across_fits_and_ignores_validate_get_preds_and_tta(tiny):
    recipe = tiny_recipe("normalize", tiny, arch="xresnet18", ema=0.9)
    learn = build_learner(recipe, folder_dls(data.load(recipe.dataset), 32, 16))
    ema = learn.weight_ema
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        steps = len(learn.dls.train)
        assert isinstance(ema, WeightEMA) and ema.step == steps
        before = {k: v.clone() for k, v in ema.model.state_dict().items()}
        learn.validate()
        learn.get_preds()
        learn.tta(n=1)
        assert ema.step == steps and all(torch.equal(before[k], v) for k, v in ema.model.state_dict().items())
        raw = learn.model.state_dict()
        assert any(not torch.equal(raw[k], v) for k, v in before.items() if v.is_floating_point())
        learn.fit(1, 1e-3)                  # a second fit (a progressive stage) goes on with the same average
        assert ema.step == 2 * steps
    restored = WeightEMA(0.9)
    restored.learn = learn
    restored.load(ema.state())              # what a checkpoint holds puts it back exactly, at the next fit
    restored.before_fit()
    assert restored.step == ema.step
    assert all(torch.equal(v, ema.model.state_dict()[k]) for k, v in restored.model.state_dict().items())


def test_views_of_the_same_image_change_nothing_and_tiles_cover_the_view(tiny):
    recipe = tiny_recipe("normalize", tiny, arch="xresnet18")
    learn = build_learner(recipe, folder_dls(data.load(recipe.dataset), 32, 16))
    with learn.no_bar(), learn.no_logging():
        plain = learn.validate()
        twice = learn.validate(cbs=[Views(lambda x: [x, x])])
    assert twice[1] == plain[1] and twice[0] == pytest.approx(plain[0], rel=1e-5)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    tiles = _tiles(x, 4)
    assert [t.shape[-2:] for t in tiles] == [(4, 4)] * 5
    assert torch.equal(tiles[0], x[..., :4, :4]) and torch.equal(tiles[3], x[..., 1:, 1:])
    assert torch.equal(tiles[4], x[..., :4, :4])          # the centre of 5 px by 4 px tiles starts at 0


def test_every_evaluation_is_one_spec_with_one_runner():
    """A spec without a runner (or a runner without a spec) fails here, not as a KeyError at the end of a run."""
    from dataclasses import replace

    from toolkit.recipes import evaluations
    from toolkit.recipes.recipe import Recipe
    from toolkit.recipes.identity import _inert
    from toolkit.records import schema
    from toolkit.train.evaluation import RUNNERS
    assert set(RUNNERS) == set(evaluations.BY_MODE)
    assert len(set(evaluations.KEYS)) == len(evaluations.SPECS)
    for e in evaluations.SPECS:
        recipe = replace(Recipe(), tta=e.mode) if e.via_tta else replace(Recipe(), **{e.mode: 0.99})
        assert evaluations.asked(recipe) == (e,) and not set(e.reads) & _inert(recipe)   # what it reads matters
        assert set(e.reads) <= _inert(Recipe())                                          # and nothing without it
        assert {f"accuracy_{e.key}", f"{e.key}_seconds"} <= set(schema.COLUMNS)
        assert e.line(recipe, 64) and e.shown and e.what
