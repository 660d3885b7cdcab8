"""Checking a dataset before comparing on it: duplicates across splits (the same bytes, and the same picture
re-encoded at another size) are named, a class missing from validation is named before training, unreadable files
are counted, and only what makes a comparison meaningless is an error."""
import re
import shutil

import pytest
from PIL import Image

from toolkit.data import audit
from toolkit.data import datasets as data


@pytest.fixture
def planted(tiny, tmp_path):
    """The tiny digits with a training image copied into val/ as it is, another re-encoded at 48 px as JPEG, and
    one unreadable file."""
    root = tmp_path / "planted"
    shutil.copytree(tiny, root)
    same, other = sorted((root / "train" / "4").iterdir())[:2]
    shutil.copy(same, root / "val" / "4" / "copy.png")
    with Image.open(other) as im:
        im.convert("RGB").resize((48, 48), Image.BICUBIC).save(root / "val" / "4" / "resized.jpg", quality=95)
    (root / "train" / "7" / "broken.png").write_bytes(b"not an image")
    return root, same.name, other.name


def test_duplicates_across_splits_are_named_and_unreadable_files_counted(planted):
    root, same, other = planted
    with pytest.warns(UserWarning, match="Skipping 1 unreadable"):
        ds = data.load(root)
    dup = audit.duplicates(ds)
    assert [sorted(rel for _, rel, _ in g) for g in dup.exact] == [sorted([f"train/4/{same}", "val/4/copy.png"])]
    assert [sorted(rel for _, rel, _ in g) for g in dup.near] == [sorted([f"train/4/{other}", "val/4/resized.jpg"])]
    report = audit.check(ds)
    text = report.markdown()
    assert "unreadable files: 1 (skipped), e.g. train/7/broken.png" in text
    assert f"train/4/{same} (4) = val/4/copy.png (4)" in text or f"val/4/copy.png (4) = train/4/{same} (4)" in text
    assert "resized.jpg" in text and "2 of " in text and "have a copy in training" in text
    assert report.problems == []                                     # worth knowing, not meaningless
    assert dup.val_with_copy() == 2                                  # each validation image counted once
    assert any("have a copy in training" in line for line in audit.before_run(ds))


def test_a_class_missing_from_validation_is_named_before_training(tiny, tmp_path):
    from toolkit import api
    root = tmp_path / "no-val-3"
    shutil.copytree(tiny, root)
    shutil.rmtree(root / "val" / "3")
    said = []
    api.run("baseline", dataset=str(root), size=16, epochs=1, arch="xresnet18", bs=8, reference=False,
            results=tmp_path / "r", quiet=True, log=said.append)
    first_epoch = next(i for i, m in enumerate(said) if re.search(r"accuracy \d", m))
    named = [i for i, m in enumerate(said) if "validation has no image of 3" in m]
    assert named and named[0] < first_epoch and len(named) == 1, said


def test_only_what_makes_a_comparison_meaningless_exits_non_zero(tiny, tmp_path, capsys):
    from toolkit.cli import main
    assert main(["data", "check", str(tiny)]) == 0
    one = tmp_path / "one-val-class"
    shutil.copytree(tiny, one)
    for d in (one / "val").iterdir():
        if d.is_dir() and d.name != "0":
            shutil.rmtree(d)
    assert main(["data", "check", str(one)]) == 1
    out = capsys.readouterr().out
    assert "meaningless: validation holds 1 class" in out and "missing from validation: 1, 2, 3" in out
    assert main(["data", "show", str(one)]) == 0 and "split: the folder's own: train/ and val/" in capsys.readouterr().out
