"""Folders as users have them: class folders alone (split by valid_pct, drawn once with a generator of its own),
and train/ beside valid/ or test/."""
import shutil
from dataclasses import replace

import pytest
import torch

from conftest import resolved
from toolkit.data import datasets as data
from toolkit.data import pack as packs
from toolkit.data import pipeline
from toolkit.errors import DatasetError, RecipeError
from toolkit.recipes import registry
from toolkit.recipes.recipe import Recipe


@pytest.fixture(scope="module")
def class_folders(tiny, tmp_path_factory):
    """The tiny digits as one folder of class folders: its train and val images together, no split."""
    root = tmp_path_factory.mktemp("sources") / "digits-classes"
    for split in ("train", "val"):
        for d in (p for p in (tiny / split).iterdir() if p.is_dir()):
            (root / d.name).mkdir(parents=True, exist_ok=True)
            for f in d.iterdir():
                shutil.copy(f, root / d.name / f"{split}-{f.name}")
    shutil.copy(tiny / data.SETTINGS, root / data.SETTINGS)   # still digits: never mirrored
    return root


def test_class_folders_are_split_once_by_class_and_always_the_same_way(class_folders):
    rng = torch.get_rng_state()
    ds = data.load(class_folders)
    assert torch.equal(torch.get_rng_state(), rng)                 # the run's generators are never drawn from
    every = sorted(f for d in class_folders.iterdir() if d.is_dir() for f in d.iterdir())
    assert sorted(ds.files["train"] + ds.files["val"]) == every and not set(ds.files["train"]) & set(ds.files["val"])
    for cls in ds.classes:                                         # stratified: each class validates its share
        n = sum(f.parent.name == cls for f in every)
        assert sum(f.parent.name == cls for f in ds.files["val"]) == max(1, round(0.2 * n))
    assert data.load(class_folders).files == ds.files and ds.split == data.split_rule(0.2, 0)
    other = data.load(class_folders, split_seed=1)                 # another split is another dataset
    assert other.files["val"] != ds.files["val"] and other.fingerprint != ds.fingerprint
    assert packs.pack_dir(other, 32) != packs.pack_dir(ds, 32)
    assert data.load(class_folders, valid_pct=0.4).fingerprint not in (ds.fingerprint, other.fingerprint)


def test_every_recipe_and_seed_is_judged_on_the_same_images_and_starts_from_its_own_weights(class_folders):
    from toolkit.train.learner import fresh_learner

    def recipe(name, seed, loader="packed"):
        return resolved(replace(registry.get(name), dataset=str(class_folders), size=16, bs=8, arch="xresnet18",
                                seed=seed, loader=loader))
    a, b = (pipeline.prepare(recipe(n, s), progress="none") for n, s in (("baseline", 42), ("normalize", 43)))
    assert a.ds.files == b.ds.files
    for loader in ("packed", "folder"):   # the folder DataBlock splits by the dataset's own lists, drawing nothing
        first = [next(fresh_learner(recipe("baseline", s, loader), a, 16, num_workers=0).model.parameters())
                 .detach().clone() for s in (42, 43, 42)]
        assert not torch.equal(first[0], first[1]) and torch.equal(first[0], first[2]), loader
        dls = fresh_learner(recipe("baseline", 42, loader), a, 16, num_workers=0).dls
        assert len(dls.valid_ds) == len(a.ds.files["val"])


def test_a_run_on_class_folders_packs_and_validates_its_split(class_folders, tmp_path):
    from toolkit import api
    done = api.run("baseline", dataset=str(class_folders), size=16, epochs=1, arch="xresnet18", bs=8, seeds=2,
                   reference=False, results=tmp_path / "r", quiet=True, log=lambda *a: None)
    rows = done.sweep.rows
    assert len(rows) == 2 and (rows["n_valid"] == len(data.load(class_folders).files["val"])).all()
    assert rows["accuracy"].between(0, 1).all()


@pytest.mark.parametrize("name", ["valid", "test"])
def test_train_beside_valid_or_test_is_the_folders_own_split(tiny, tmp_path, name):
    root = tmp_path / "ds"
    shutil.copytree(tiny, root)
    (root / "val").rename(root / name)
    ds = data.load(root)
    assert ds.split == f"the folder's own: train/ and {name}/"
    assert ds.files["val"] and all(f.parent.parent.name == name for f in ds.files["val"])


def test_bad_splits_are_one_clear_error(class_folders, tmp_path):
    with pytest.raises(RecipeError, match=r"valid_pct must be in \(0, 1\)"):
        Recipe(valid_pct=1.5)
    lonely = tmp_path / "lonely"
    shutil.copytree(class_folders, lonely)
    for f in sorted((lonely / "3").iterdir())[1:]:
        f.unlink()
    with pytest.raises(DatasetError, match=r"class\(es\) 3 \(1 image\) have too few images for a split"):
        data.load(lonely)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no sub-folder of images"):
        data.load(tmp_path / "empty")
    with pytest.raises(RecipeError, match=r"split_seed must be a whole number >= 0"):
        Recipe(split_seed=-1)
    with pytest.raises(DatasetError, match=r"Cannot split dataset .*split_seed must be a whole number >= 0"):
        data.load(class_folders, split_seed=-1)


def test_a_dataset_with_its_own_split_ignores_valid_pct_and_split_seed(tiny, class_folders):
    """They do nothing there, so they neither change a run's id nor say what did not happen."""
    from toolkit.recipes.recipe import config_id
    base = replace(registry.get("baseline"), size=16, arch="xresnet18")
    for dataset in ("digits", str(tiny)):
        plain, other = (resolved(replace(base, dataset=dataset, **kw)) for kw in ({}, dict(valid_pct=0.5, split_seed=3)))
        assert (other.valid_pct, other.split_seed) == (0.2, 0) and config_id(other) == config_id(plain)
    drawn = resolved(replace(base, dataset=str(class_folders), valid_pct=0.5))
    assert drawn.valid_pct == 0.5 and config_id(drawn) != config_id(resolved(replace(base, dataset=str(class_folders))))
