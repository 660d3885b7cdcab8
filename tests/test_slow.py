import pytest

from toolkit.recipes import registry
from toolkit.recipes.overrides import apply_overrides
from toolkit.train.learner import fit_and_evaluate as run


@pytest.mark.slow
def test_baseline_learns_digits(tmp_path):
    """The baseline recipe on the embedded digits (16 px, xresnet18, 4 epochs): far above 10% chance."""
    recipe = apply_overrides(registry.get("baseline"), dict(dataset="digits", epochs="4", arch="xresnet18"))
    metrics = run(recipe, progress="none")
    assert metrics["accuracy"] > 0.9, metrics
