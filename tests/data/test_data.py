import json
import shutil
from pathlib import Path

import pytest
import torch

from toolkit.data import datasets as data
from toolkit.data import pipeline, sources
from toolkit.errors import DatasetError
from toolkit.recipes.recipe import Recipe

from conftest import folder_dls


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_digits_are_written_once_in_imagenette_layout():
    ds = data.load("digits")
    assert ds.classes == tuple(str(i) for i in range(10))
    assert len(ds.files["train"]) + len(ds.files["val"]) == 1797  # every digit scikit-learn ships
    assert 300 < len(ds.files["val"]) < 400
    assert ds.default_size == 16 and ds.aug["do_flip"] is False
    assert data.load("digits").fingerprint == ds.fingerprint  # second call reuses the cached folder


def test_dataloaders_batch_shape_and_vocab(tiny):
    ds = data.load(tiny)
    dls = folder_dls(ds, 32, 8)
    xb, yb = dls.one_batch()
    assert xb.shape == (8, 3, 32, 32) and yb.shape == (8,)
    assert list(dls.vocab) == [str(i) for i in range(10)]


def test_wnids_become_readable_class_names(tmp_path, tiny):
    root = _copy(tiny, tmp_path / "nette")
    for split in ("train", "val"):
        (root / split / "0").rename(root / split / "n01440764")
    dls = folder_dls(data.load(root), 32, 8)
    assert "tench" in dls.vocab and "n01440764" not in dls.vocab


def test_data_stats_are_cached_and_plausible(tiny, toolkit_home):
    ds = data.load(tiny)
    mean, std = pipeline.dataset_stats(ds, 32)
    assert len(mean) == len(std) == 3 and all(0 < m < 1 for m in mean) and all(0 < s < 1 for s in std)
    assert (toolkit_home / "stats" / f"{ds.fingerprint}-32.json").exists()
    assert pipeline.dataset_stats(ds, 32) == (mean, std)


@pytest.mark.parametrize("break_it, message", [
    (lambda r: shutil.rmtree(r), "is neither a known dataset name"),
    (lambda r: shutil.rmtree(r / "val"), r"has train/ but no val/, valid/, test/ beside it"),
    (lambda r: [shutil.rmtree(p) for p in (r / "val").iterdir()], r"no readable images in val/"),
    (lambda r: [shutil.rmtree(p) for p in (r / "train").iterdir() if p.name != "3"], r"1 class with images in train/"),
    (lambda r: (r / "val" / "extra").mkdir() or shutil.copy(next((r / "val" / "1").iterdir()), r / "val" / "extra"),
     r"classes in val/ that train/ lack \(extra\)"),
])
def test_bad_folders_are_clear_errors(tmp_path, tiny, break_it, message):
    root = _copy(tiny, tmp_path / "ds")
    break_it(root)
    with pytest.raises(DatasetError, match=message):
        data.load(root)


def test_corrupt_and_truncated_images_are_listed_and_skipped(tmp_path, tiny):
    root = _copy(tiny, tmp_path / "ds")
    victim = next((root / "train" / "2").iterdir())
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])  # truncated PNG
    (root / "train" / "5" / "notes.jpg").write_text("not an image")
    n_before = len(sources.read(root, data.options_of(Recipe())).files["train"])
    with pytest.warns(UserWarning, match=r"Skipping 2 unreadable or truncated image file\(s\)") as rec:
        ds = data.load(root)
    text = str(rec[0].message)
    assert victim.name in text and "notes.jpg" in text
    assert len(ds.files["train"]) == n_before - 2 and victim not in ds.files["train"]
    assert len(ds.bad_files) == 2
    # the training pipeline really works without them
    xb, _ = folder_dls(ds, 32, 4).one_batch()
    assert torch.isfinite(xb).all()


@pytest.fixture
def fastai_home(monkeypatch, tmp_path):
    """A private FASTAI_HOME (fastai caches its config per process, so the cache is cleared around the test)."""
    from fastai.data.external import fastai_cfg
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    fastai_cfg.cache_clear()
    yield tmp_path / "fastai"
    fastai_cfg.cache_clear()


@pytest.mark.parametrize("name, folder", [("imagenette-160", "imagenette2-160"), ("pets", "oxford-iiit-pet"),
                                          ("cifar10", "cifar10")])
def test_offline_download_error_says_where_to_put_the_data(monkeypatch, fastai_home, name, folder):
    def no_network(*a, **k):
        raise ConnectionError("Name or service not known")
    import fastai.data.external
    monkeypatch.setattr(fastai.data.external, "untar_data", no_network)
    with pytest.raises(DatasetError) as e:
        data.load(name)
    msg = str(e.value)
    assert f"Could not download dataset {name!r}" in msg
    assert str(fastai_home / "data" / folder) in msg and "--dataset /path/to/" in msg


def test_real_untar_data_path_offline(fastai_home, imagenette):
    """fastai's own untar_data finds a dataset already in FASTAI_HOME/data without any download."""
    for split in ("train", "val"):
        for cls in sorted((imagenette / split).iterdir()):
            dest = fastai_home / "data" / "imagenette2-160" / split / cls.name
            dest.mkdir(parents=True)
            for f in sorted(cls.iterdir())[:3]:
                shutil.copy(f, dest)
    ds = data.load("imagenette-160")
    assert ds.path == fastai_home / "data" / "imagenette2-160"
    assert len(ds.classes) == 10 and len(ds.files["train"]) == 30
    dls = folder_dls(ds, 32, 8)
    assert {"tench", "parachute", "golf ball"} <= set(dls.vocab)


def test_a_folder_says_flipping_changes_its_labels_in_dataset_json(tiny, tiny_flips, tmp_path):
    assert data.load("digits").flips is False and data.load(tiny_flips).flips is True
    assert json.loads((tiny / "dataset.json").read_text())["flip"] is False   # a proxy of digits carries it
    assert data.load(tiny).flips is False and data.load(tiny).aug == {"do_flip": False}
    bad = _copy(tiny, tmp_path / "bad")
    (bad / "dataset.json").write_text('{"flip": "sometimes"}')
    with pytest.raises(DatasetError, match=r"dataset.json cannot be used .* may hold only \"flip\""):
        data.load(bad)
