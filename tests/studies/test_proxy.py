import pytest
from PIL import Image

from toolkit.data import datasets as data
from toolkit.errors import DatasetError
from toolkit.studies.proxies import make_proxy


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_proxy_is_deterministic_sized_and_keeps_layout(tmp_path):
    a = make_proxy("digits", tmp_path / "a", per_class=5, size=20, seed=3, progress="none")
    make_proxy("digits", tmp_path / "b", per_class=5, size=20, seed=3, progress="none")
    make_proxy("digits", tmp_path / "c", per_class=5, size=20, seed=4, progress="none")
    assert _listing(tmp_path / "a") == _listing(tmp_path / "b") != _listing(tmp_path / "c")
    assert (a["classes"], a["train"]) == (10, 50) and 10 <= a["val"] <= 20  # digits' val/train ratio ~ 1/4
    ds = data.load(tmp_path / "a")
    assert len(ds.classes) == 10 and all(Image.open(f).size == (20, 20) for f in ds.files["train"][:5])


def test_proxy_never_overwrites_and_checks_arguments(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(DatasetError, match="already exists"):
        make_proxy("digits", tmp_path / "taken", per_class=2, size=16, progress="none")
    with pytest.raises(DatasetError, match="--per-class must be at least 1"):
        make_proxy("digits", tmp_path / "x", per_class=0, size=16, progress="none")
    assert not (tmp_path / "x").exists()
    with pytest.raises(DatasetError, match="select='hard'"):
        make_proxy("digits", tmp_path / "x", per_class=2, size=16, select="hard", progress="none")
    with pytest.raises(DatasetError, match="needs the loss of each training image"):
        make_proxy("digits", tmp_path / "x", per_class=2, size=16, select="easy", progress="none")
    with pytest.raises(DatasetError, match="ranking run has no loss for 1,438 training"):   # a ranking of other data
        make_proxy("digits", tmp_path / "x", per_class=2, size=16, select="easy", losses={"other.png": 0.1},
                   progress="none")
    assert not (tmp_path / "x").exists()
