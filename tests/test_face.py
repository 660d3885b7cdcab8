"""`import toolkit`: a recipe as plain fastai objects, resolved exactly as a sweep resolves it."""
import toolkit
from toolkit import api
from toolkit.recipes.identity import config_id
from toolkit.recipes.stages import stage_plan
from toolkit.sweep import plan


def test_the_learner_is_the_recipe_as_a_run_resolves_it(tiny):
    settings = dict(dataset=str(tiny), size=32, epochs=2, arch="xresnet18", bs=16)
    learn = toolkit.learner("progressive", progress="none", **settings)
    job, = plan.plan(["progressive"], plan.context_of(**settings), reference=False)
    assert learn.recipe == job.recipe and config_id(learn.recipe) == config_id(job.recipe)
    assert learn.stages == [(16, 1, 3e-3, "one_cycle"), (32, 1, 1e-3, "fine_tune")]   # it starts at the first stage
    xb, yb = learn.dls.one_batch()
    assert tuple(xb.shape) == (16, 3, 16, 16) and learn.dls.c == 10 and len(learn.dls.vocab) == 10
    pixels = api.resolved("progressive", budget="pixels", **settings)   # what learner() builds: needs its reference
    assert pixels.budget_pixels == 2 * 32 ** 2 and stage_plan(pixels, 32)[0][:2] == (16, 4)
    assert toolkit.dls("mixup", progress="none", **settings).one_batch()[0].shape[-1] == 32
