import pytest

from toolkit.errors import RecipeError
from toolkit.recipe import Recipe, apply_overrides, stage_plan


def test_overrides_are_parsed_by_field_type():
    r = apply_overrides(Recipe(), ["lr=1e-3", "epochs=7", "tta=true", "size=64", "arch=timm:resnet18",
                                   "stages=((0.5, 1, 1e-2, 'one_cycle'), (1, 1, 1e-3, 'fine_tune'))"])
    assert (r.lr, r.epochs, r.tta, r.size, r.arch) == (1e-3, 7, True, 64, "timm:resnet18")
    assert r.stages == ((0.5, 1, 1e-2, "one_cycle"), (1, 1, 1e-3, "fine_tune"))
    assert apply_overrides(r, ["size=none"]).size is None


def test_unknown_key_suggests_close_match():
    with pytest.raises(RecipeError, match=r"Unknown recipe key 'mixpu'.*Did you mean: mixup"):
        apply_overrides(Recipe(), ["mixpu=0.4"])


@pytest.mark.parametrize("item, message", [
    ("lr=fast", r"Bad value 'fast' for recipe key 'lr' \(type float\)"),
    ("epochs=2.5", r"Bad value '2.5' for recipe key 'epochs' \(type int\)"),
    ("tta=maybe", r"expected true or false"),
    ("epochs=0", r"epochs must be >= 1"),
    ("normalize=zscore", r"normalize must be one of none, imagenet, data"),
    ("label_smoothing=1.5", r"label_smoothing must be in \[0, 1\)"),
    ("stages=((0.5, 1, 1e-3, 'sgd'),)", r"how must be one of one_cycle, fine_tune"),
    ("lr", r"not of the form key=value"),
])
def test_bad_overrides_are_clear_errors(item, message):
    with pytest.raises(RecipeError, match=message):
        apply_overrides(Recipe(), [item])


def test_recipe_is_frozen_plain_data():
    r = Recipe()
    with pytest.raises(Exception):
        r.lr = 1.0
    assert all(isinstance(v, (int, float, str, bool, tuple, type(None))) for v in r.to_dict().values())


@pytest.mark.parametrize("epochs", [2, 3, 5, 9])
def test_stage_plan_spends_exactly_the_epochs(epochs):
    r = Recipe(epochs=epochs, stages=((0.5, 0.5, 3e-3, "one_cycle"), (1.0, 0.5, 1e-3, "fine_tune")))
    plan = stage_plan(r, 64)
    assert sum(n for _, n, _, _ in plan) == epochs
    assert [s for s, _, _, _ in plan] == [32, 64]
    assert all(n >= 1 for _, n, _, _ in plan)


def test_single_stage_default_plan():
    assert stage_plan(Recipe(epochs=4, lr=1e-2), 128) == [(128, 4, 1e-2, "one_cycle")]


def test_more_stages_than_epochs_is_an_error():
    r = Recipe(epochs=1, stages=((0.5, 1, 1e-3, "one_cycle"), (1, 1, 1e-3, "one_cycle")))
    with pytest.raises(RecipeError, match="2 stages but only 1 epochs"):
        stage_plan(r, 64)
