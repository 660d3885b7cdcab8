"""The packed image cache: round trip, labels, staleness, killed and failed builds, corrupt files."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from toolkit.data import datasets as data
from toolkit.data import pack
from toolkit.errors import DatasetError

SIDE = 24


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _reference(path: Path, side: int) -> np.ndarray:
    """Decode and resize independently of the pack code: PIL, centre square, bilinear."""
    im = Image.open(path).convert("RGB")
    w, h = im.size
    m = min(w, h)
    im = im.crop(((w - m) // 2, (h - m) // 2, (w - m) // 2 + m, (h - m) // 2 + m))
    return np.asarray(im.resize((side, side), Image.BILINEAR))


def test_round_trip_labels_and_vocab(tiny, tmp_path):
    root = _copy(tiny, tmp_path / "ds")
    wide = next((root / "train" / "3").iterdir())            # one non-square image: the centre crop is exercised
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 40, 3), dtype=np.uint8)).save(wide)
    (root / "train" / "0").rename(root / "train" / "n01440764")  # a wnid folder gets its readable name
    (root / "val" / "0").rename(root / "val" / "n01440764")
    ds = data.load(root)
    p = pack.ensure_pack(ds, SIDE, progress="none")
    assert p.vocab == [data.readable(c) for c in ds.classes] and "tench" in p.vocab
    for split in data.SPLITS:
        imgs, labels, files = p.images(split), p.labels(split), p.meta["splits"][split]["files"]
        assert imgs.shape == (len(ds.files[split]), SIDE, SIDE, 3) and imgs.dtype == np.uint8
        assert files == [str(f.relative_to(root)) for f in ds.files[split]]
        for i, rel in enumerate(files):
            np.testing.assert_array_equal(imgs[i], _reference(root / rel, SIDE))
            assert ds.classes[labels[i]] == Path(rel).parent.name
    assert p.meta["fingerprint"] == ds.fingerprint and p.meta["n_skipped"] == 0
    assert p.meta["pack_bytes"] == (len(ds.files["train"]) + len(ds.files["val"])) * SIDE * SIDE * 3
    assert p.meta["source_bytes"] == sum(f.stat().st_size for s in data.SPLITS for f in ds.files[s])


def test_existing_pack_is_reused_and_stale_pack_rebuilt(tiny, tmp_path, capsys):
    root = _copy(tiny, tmp_path / "ds")
    ds = data.load(root)
    first = pack.ensure_pack(ds, SIDE, progress="none")
    built_at = (first.path / "meta.json").stat().st_mtime_ns
    assert pack.ensure_pack(data.load(root), SIDE, progress="none").path == first.path
    assert (first.path / "meta.json").stat().st_mtime_ns == built_at  # reused, not rebuilt

    shutil.copy(next((root / "train" / "5").iterdir()), root / "train" / "5" / "extra.png")  # the source changes
    changed = data.load(root)
    assert pack.open_pack(first.path, changed, SIDE) is None  # the old pack no longer counts as this dataset's
    second = pack.ensure_pack(changed, SIDE, progress="lines")
    assert "stale" in capsys.readouterr().out
    assert second.meta["fingerprint"] == changed.fingerprint != ds.fingerprint
    assert second.images("train").shape[0] == len(ds.files["train"]) + 1
    assert "train/5/extra.png" in second.meta["splits"]["train"]["files"]


def test_a_pack_killed_half_way_is_never_used(tiny, tmp_path):
    root = _copy(tiny, tmp_path / "ds")
    ds = data.load(root)
    dest = pack.pack_dir(ds, SIDE)
    script = (
        "import sys, time, toolkit.data.pack as P\n"
        "from toolkit.data import datasets as data\n"
        "decode = P._decode_chunk\n"
        "def slow(task):\n"
        "    time.sleep(0.5)\n"
        "    return decode(task)\n"
        "P._decode_chunk = slow\n"
        f"P.ensure_pack(data.load(sys.argv[1]), {SIDE}, workers=1, progress='none')\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], env=os.environ.copy())
    def written():  # the build's temporary train.u8, once it holds something
        return [f for f in dest.parent.glob(f".{dest.name}.tmp-{proc.pid}-*/train.u8") if f.stat().st_size > 0]
    deadline = time.time() + 60
    while not written() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert written(), "the build never started writing"
    assert proc.returncode == -signal.SIGKILL
    assert not dest.exists() and pack.open_pack(dest) is None  # nothing half-written under the real name

    p = pack.ensure_pack(ds, SIDE, progress="none")  # the next use builds a complete pack
    assert p.images("train").shape[0] == len(ds.files["train"])
    assert not list(dest.parent.glob(f".{dest.name}.tmp-*"))          # and clears the leftover


def test_disk_full_is_a_clear_error_and_leaves_nothing(tiny, tmp_path, monkeypatch):
    root = _copy(tiny, tmp_path / "ds")
    ds = data.load(root)
    dest = pack.pack_dir(ds, SIDE)
    calls = []

    def full(fd, nbytes):  # the second split finds the disk full, after the first was written
        calls.append(nbytes)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pack, "_reserve", full)
    with pytest.raises(DatasetError, match="Ran out of disk space while packing"):
        pack.ensure_pack(ds, SIDE, progress="none")
    assert len(calls) == 2
    assert not dest.exists() and not list(dest.parent.glob(f".{dest.name}.*"))


def test_corrupt_jpeg_is_listed_skipped_and_counted(tiny, tmp_path):
    root = _copy(tiny, tmp_path / "ds")
    good = root / "train" / "7" / "good.jpg"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(good, quality=95)
    bad = root / "train" / "7" / "broken.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # a truncated JPEG
    with pytest.warns(UserWarning, match="Skipping 1 unreadable"):
        ds = data.load(root)
    p = pack.ensure_pack(ds, SIDE, progress="none")
    assert p.meta["n_skipped"] == 1 and p.meta["skipped"][0]["file"] == "train/7/broken.jpg"
    assert "train/7/broken.jpg" not in p.meta["splits"]["train"]["files"]
    assert "train/7/good.jpg" in p.meta["splits"]["train"]["files"]
    assert json.loads((p.path / "meta.json").read_text())["n_skipped"] == 1


def test_pack_command_prints_sizes_and_reuses(tiny, tmp_path):
    root = _copy(tiny, tmp_path / "ds")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "toolkit", "data", "pack", str(root), "--size", "12", "-q"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "at 24 px" in first.stdout and "on disk vs" in first.stdout and "of source files" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and again.stdout.startswith("Up to date.")
    missing = subprocess.run([*cmd[:5], str(tmp_path / "nope"), "--size", "12"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr


def test_a_pack_stores_at_most_the_sources_own_side(tiny, tmp_path, capsys):
    """The 32 px proxy packed for 32 px training stores 32 px, not presize x 32 = 64; a folder of mixed sizes is
    capped at its largest shorter side; `toolkit data pack --plan` says so and builds nothing."""
    ds = data.load(str(tiny))
    assert pack.stored_size(32, 2.0) == 64 and data.source_side(ds) == 32 and pack.pack_side(ds, 32) == 32
    assert pack.ensure_pack(ds, pack.pack_side(ds, 32), progress="none").images("train").shape[1:] == (32, 32, 3)
    assert pack.pack_side(ds, 8) == 16                       # below the source's side: presize x size, as before
    mixed = tmp_path / "mixed"
    for split in ("train", "val"):
        for c, (w, h) in enumerate([(40, 30), (20, 50)]):
            (mixed / split / f"c{c}").mkdir(parents=True)
            Image.new("RGB", (w, h), (c * 100, 0, 0)).save(mixed / split / f"c{c}" / "a.png")
    assert data.source_side(data.load(str(mixed))) == 30
    assert pack.pack(str(mixed), size=64, plan=True) is None and not list((data.toolkit_home() / "packs").glob("mixed-*"))
    out = capsys.readouterr().out
    assert "4 images at 30 px" in out and "presize x size alone would store 128 px" in out
