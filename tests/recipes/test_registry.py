import pytest

from toolkit.recipes import registry
from toolkit.errors import RegistryError
from toolkit.recipes.recipe import Recipe

CHAPTER7 = ["baseline", "normalize", "normalize_data", "progressive", "tta", "mixup", "label_smoothing", "mixup_ls"]


def test_chapter7_experiments_are_registered():
    assert set(CHAPTER7) <= set(registry.list_experiments())
    assert [r.name for r in registry.expand("chapter7")] == CHAPTER7


def test_wildcard_listing_is_sorted():
    assert registry.list_experiments("mixup*") == ["mixup", "mixup_cutmix", "mixup_cutmix_ls", "mixup_frac", "mixup_ls"]
    assert registry.list_experiments("normalize?data") == ["normalize_data"]
    assert registry.list_experiments("nothing*") == []


def test_variants_state_only_their_differences():
    base, mixup_ls = registry.get("baseline"), registry.get("mixup_ls")
    diff = {k for k, v in mixup_ls.to_dict().items() if base.to_dict()[k] != v}
    assert diff == {"name", "parent", "notes", "normalize", "mixup", "label_smoothing"}


def test_duplicate_names_are_errors():
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(Recipe(name="baseline"))
    with pytest.raises(RegistryError, match="already registered"):
        registry.register_suite("mixup", "baseline")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(RegistryError, match=r"Unknown experiment 'mixpu'\. Did you mean: mixup"):
        registry.get("mixpu")
    with pytest.raises(RegistryError, match="No experiment matches the pattern 'zzz\\*'"):
        registry.expand(["zzz*"])


def test_resolve_mixes_names_patterns_and_suites_without_repeats():
    names = [r.name for r in registry.expand(["tta", "mixup_ls", "mixup*", "chapter7"])]
    assert names[:3] == ["tta", "mixup_ls", "mixup"]
    assert sorted(names) == sorted(set(names))
    assert set(names) == set(CHAPTER7) | set(registry.list_experiments("mixup*"))


def test_recipes_name_their_parent_and_the_rest_compare_with_the_baseline():
    assert registry.get("mixup").parent == "normalize" and registry.get("mixup_ls").parent == "mixup"
    assert registry.get("randaugment").parent == "baseline" and registry.get("baseline").parent == ""
    assert registry.reference_name(registry.get("mixup")) == "normalize"
    assert registry.reference_name(registry.get("baseline")) == "baseline"
    assert registry.reference_name(registry.get("mixup"), against="baseline") == "baseline"
    assert registry.reference_name(Recipe(name="orphan")) == "baseline"


def test_derive_states_only_differences_and_drops_the_parents_notes():
    child = registry.derive(registry.get("normalize"), "child", lr=1e-4)
    assert (child.parent, child.lr, child.normalize, child.notes) == ("normalize", 1e-4, "imagenet", "")


def test_an_unregistered_parent_is_an_error():
    with pytest.raises(RegistryError, match="names the parent 'nope', which is not registered"):
        registry.register(Recipe(name="child_of_nothing"), parent="nope")
