from dataclasses import replace

import pytest

from toolkit.errors import RecipeError
from toolkit.recipes.recipe import Recipe
from toolkit.recipes.identity import config_id, effective
from toolkit.recipes.stages import pixel_plan, plan_pixels, stage_plan
from toolkit.recipes.overrides import apply_overrides


def test_overrides_are_parsed_by_field_type():
    r = apply_overrides(Recipe(), ["lr=1e-3", "epochs=7", "tta=true", "size=64", "arch=timm:resnet18",
                                   "stages=((0.5, 1, 1e-2, 'one_cycle'), (1, 1, 1e-3, 'fine_tune'))"])
    assert (r.lr, r.epochs, r.tta, r.size, r.arch) == (1e-3, 7, "fastai", 64, "timm:resnet18")
    assert r.stages == ((0.5, 1, 1e-2, "one_cycle"), (1, 1, 1e-3, "fine_tune"))
    assert apply_overrides(r, ["size=none"]).size is None


def test_unknown_key_suggests_close_match():
    with pytest.raises(RecipeError, match=r"Unknown recipe key 'mixpu'.*Did you mean: mixup"):
        apply_overrides(Recipe(), ["mixpu=0.4"])


@pytest.mark.parametrize("item, message", [
    ("lr=fast", r"Bad value 'fast' for recipe key 'lr' \(type float\)"),
    ("epochs=2.5", r"Bad value '2.5' for recipe key 'epochs' \(type int\)"),
    ("tta=maybe", r"tta takes one or more of fastai, flip, crops, hires"),
    ("ema=1", r"ema must be 0 \(off\) or a decay in \(0, 1\)"),
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


# --- what a run ran: effective settings and config ids ---------------------------------------------

def test_config_id_of_the_baseline_on_digits_is_pinned():
    """Changing how ids are computed (or the baseline) would orphan every recorded run: this must not move."""
    from toolkit.recipes import registry
    from toolkit.data.datasets import with_dataset
    r = with_dataset(replace(registry.get("baseline"), dataset="digits", precision="fp32", channels_last=False))
    assert effective(r) == {"dataset": "digits", "size": 16}
    assert config_id(r) == "49d538131212"


def test_config_id_ignores_metadata_defaults_and_settings_without_effect():
    r = Recipe(dataset="digits", size=16, precision="fp32", channels_last=False)
    assert config_id(replace(r, name="x", parent="y", notes="z", seed=7)) == config_id(r)
    assert config_id(replace(r, presize=2)) == config_id(r)                    # 2 and 2.0 are one presize
    assert config_id(replace(r, tta_n=8)) == config_id(r)                      # TTA is off: tta_n has no effect
    assert config_id(replace(r, tta=True, tta_n=8)) != config_id(replace(r, tta=True))
    assert config_id(replace(r, mix_switch=0.9, autoaug_m=3)) == config_id(r)
    assert config_id(replace(r, eval_scale=1.3)) == config_id(r)               # no hires: eval_scale has no effect
    stages = ((0.5, 0.5, 3e-3, "one_cycle"), (1.0, 0.5, 1e-3, "fine_tune"))
    assert config_id(replace(r, stages=stages, lr=1.0)) == config_id(replace(r, stages=stages))  # stages set the lr
    assert config_id(replace(r, lr=1e-2)) != config_id(r) and config_id(replace(r, size=32)) != config_id(r)
    with pytest.raises(ValueError, match="resolved"):
        config_id(Recipe())


def test_recipe_round_trips_through_json_with_extra_keys():
    import json
    r = Recipe(name="p", dataset="digits", size=32, precision="bf16", channels_last=True, stages=((0.5, 1, 1e-3, "one_cycle"), (1, 1, 1e-3, "fine_tune")))
    saved = json.loads(json.dumps({**r.to_dict(), "config_id": "abc", "stage_plan": [[16, 1]]}))
    assert Recipe.from_dict(saved) == r and config_id(Recipe.from_dict(saved)) == config_id(r)


# --- compute budgets ---------------------------------------------------------------------------------

PROGRESSIVE = ((0.5, 0.5, 3e-3, "one_cycle"), (1.0, 0.5, 1e-3, "fine_tune"))


def test_a_pixel_budget_gives_the_low_resolution_stage_the_pixels_it_saved():
    """The book's shape at 128 px, 5 epochs: 3 at 64 + 2 at 128 px spends 11 x 64^2 fewer pixels than 5 at 128."""
    nominal = stage_plan(Recipe(epochs=5, stages=PROGRESSIVE), 128)
    assert [(s, e) for s, e, _, _ in nominal] == [(64, 3), (128, 2)]
    assert plan_pixels(nominal) == 3 * 64 ** 2 + 2 * 128 ** 2
    budget = 5 * 128 ** 2                                       # the parent: 5 epochs at 128 px
    plan = stage_plan(Recipe(epochs=5, stages=PROGRESSIVE, budget="pixels", budget_pixels=budget), 128)
    assert [(s, e) for s, e, _, _ in plan] == [(64, 12), (128, 2)] and plan_pixels(plan) == budget
    assert [lr for _, _, lr, _ in plan] == [3e-3, 1e-3]         # the stages keep their schedules


def test_a_pixel_budget_rounds_down_to_within_one_epoch():
    plan = [(16, 1, 1e-3, "one_cycle"), (24, 1, 1e-3, "one_cycle"), (32, 1, 1e-3, "one_cycle")]
    budget = 4 * 32 ** 2 + 100
    out = pixel_plan(plan, budget)
    assert out[2][1] == 1                                       # the full-size stage keeps its epoch
    assert budget - 16 ** 2 < plan_pixels(out) <= budget        # spent to within one epoch of the smallest stage
    assert pixel_plan([(32, 5, 1e-3, "one_cycle")], 10 ** 9) == [(32, 5, 1e-3, "one_cycle")]  # one size: as is


def test_a_budget_too_small_for_the_full_size_stages_is_an_error():
    with pytest.raises(RecipeError, match="leaves too little for its lower-resolution stages"):
        stage_plan(Recipe(epochs=5, stages=PROGRESSIVE, budget="pixels", budget_pixels=2 * 128 ** 2), 128)
    with pytest.raises(RecipeError, match="budget=pixels but no budget_pixels"):
        stage_plan(Recipe(epochs=5, stages=PROGRESSIVE, budget="pixels"), 128)


def test_budgets_are_part_of_the_config():
    r = Recipe(dataset="digits", size=32, stages=PROGRESSIVE, precision="fp32", channels_last=False)
    assert config_id(replace(r, budget_pixels=999)) == config_id(r)         # no effect under budget=epochs
    assert config_id(replace(r, budget="pixels", budget_pixels=5 * 32 ** 2)) != config_id(r)


def test_tta_true_is_the_fastai_mode_and_keeps_its_id():
    r = Recipe(dataset="digits", size=16, precision="fp32", channels_last=False)
    fastai = replace(r, tta=True)
    assert fastai.tta == "fastai" and Recipe.from_dict({**r.to_dict(), "tta": True}).tta == "fastai"
    assert effective(fastai)["tta"] is True            # hashed as `true` was, before the other modes existed
    assert config_id(replace(r, tta="fastai")) == config_id(fastai) == "0be9ded8cb6b"  # its id before the modes
    assert replace(r, tta="hires, flip").tta == "flip,hires" == apply_overrides(r, ["tta=hires+flip"]).tta
    assert replace(r, tta="all").tta == "fastai,flip,crops,hires" and replace(r, tta=False).tta == ""
    assert config_id(replace(r, tta="flip")) != config_id(fastai) != config_id(replace(r, tta="fastai,flip"))
    assert config_id(replace(r, tta="hires", eval_scale=1.3)) != config_id(replace(r, tta="hires"))
    assert config_id(replace(r, ema=0.999)) != config_id(r)
