"""Batches served from a pack: determinism, prefetch, per-sample augmentation, fastai integration."""
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from fastai.torch_core import TensorImage, set_seed

from toolkit.data import datasets as data
from toolkit.data import pack
from toolkit.data import pipeline
from toolkit.data.augment import BatchAugment
from toolkit.data.loader import _read_ahead

from conftest import packed_dls


@pytest.fixture(scope="module")
def tiny_pack(tiny):
    ds = data.load(tiny)
    return ds, pack.ensure_pack(ds, 32, progress="none")


def _batches(ds, p, seed, n=3, **kw):
    set_seed(seed, reproducible=True)
    dls = packed_dls(ds, p, 16, bs=8, **kw)
    out = []
    for i, (xb, yb) in enumerate(dls.train):
        out.append((xb.clone(), yb.clone()))
        if i + 1 == n:
            break
    return out


@pytest.mark.slow   # 15 s; `make test-all` runs it
def test_same_seed_same_batches_with_or_without_prefetch(tiny_pack):
    ds, p = tiny_pack
    a, b = _batches(ds, p, 1, prefetch=2), _batches(ds, p, 1, prefetch=2)
    c = _batches(ds, p, 1, prefetch=0)
    for (xa, ya), (xb, yb), (xc, yc) in zip(a, b, c):
        assert xa.shape == (8, 3, 16, 16) and xa.dtype == torch.float32
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa, xc) and torch.equal(ya, yc)  # the read-ahead thread changes nothing but timing
    d = _batches(ds, p, 2, prefetch=2)
    assert not all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, d))


def test_an_epoch_serves_every_training_image_once(tiny_pack):
    ds, p = tiny_pack
    dl = packed_dls(ds, p, 16, bs=8).train
    seen = torch.cat([yb for _, yb in dl])
    n = len(ds.files["train"])
    assert len(seen) == n - n % 8  # shuffled, last partial batch dropped, as fastai's training DataLoader
    left = Counter(p.labels("train").tolist())
    left.subtract(Counter(seen.tolist()))
    assert all(v >= 0 for v in left.values()) and sum(left.values()) == n % 8  # no image twice
    valid = torch.cat([yb for _, yb in packed_dls(ds, p, 16, bs=8).valid])
    assert valid.tolist() == p.labels("val").tolist()  # every validation image, in order


def test_augmentation_is_per_sample_and_keeps_shapes_and_range():
    img = torch.rand(1, 3, 40, 40).mul(255).to(torch.uint8)
    batch = TensorImage(img.repeat(6, 1, 1, 1))            # six identical images
    torch.manual_seed(0)
    out = BatchAugment(20, presize=2.0)(batch, split_idx=0)
    assert out.shape == (6, 3, 20, 20) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert all(not torch.allclose(out[0], out[i], atol=1e-3) for i in range(1, 6))  # each drew its own changes


def test_validation_is_a_plain_resize():
    batch = TensorImage(torch.rand(4, 3, 40, 40).mul(255).to(torch.uint8))
    out = BatchAugment(20, presize=2.0)(batch, split_idx=1)
    ref = F.interpolate(batch.as_subclass(torch.Tensor).float() / 255, size=(20, 20), mode="bilinear",
                        align_corners=True)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), ref, atol=1e-5, rtol=0)


def test_large_inputs_are_first_resized_with_antialiasing():
    """A progressive stage at half size: stored images above presize x size shrink first, as item Resize would."""
    batch = TensorImage(torch.rand(2, 3, 64, 64).mul(255).to(torch.uint8))
    out = BatchAugment(16, presize=2.0)(batch, split_idx=1)
    mid = F.interpolate(batch.as_subclass(torch.Tensor).float(), size=(32, 32), mode="bilinear", antialias=True)
    ref = F.interpolate(mid, size=(16, 16), mode="bilinear", align_corners=True) / 255
    torch.testing.assert_close(out.as_subclass(torch.Tensor), ref, atol=1e-5, rtol=0)


def test_no_flip_datasets_are_never_mirrored():
    """digits: do_flip=False and no other change: the output is the input, never its mirror image."""
    img = torch.zeros(8, 3, 16, 16, dtype=torch.uint8)
    img[..., :, :4] = 255                                    # a bright left edge
    aug = BatchAugment(16, min_scale=1.0, do_flip=False, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0)
    out = aug(TensorImage(img), split_idx=0)
    assert (out[..., :, :3] > 0.9).all() and (out[..., :, -3:] < 0.1).all()


def test_tta_draws_training_augmentation_on_validation_images(tiny_pack):
    ds, p = tiny_pack
    dl = packed_dls(ds, p, 16, bs=8).valid
    plain = [xb.clone() for xb, _ in dl]
    assert torch.equal(plain[0], next(iter(dl))[0])          # validation is deterministic
    with dl.dataset.set_split_idx(0):
        augmented = next(iter(dl))[0]
    assert not torch.allclose(plain[0], augmented)
    assert dl.dataset.split_idx == 1                          # and restored afterwards


def test_errors_in_the_read_ahead_thread_reach_the_caller():
    def reads():
        yield 1
        raise ValueError("bad read")
    it = _read_ahead(reads(), 2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad read"):
        next(it)


def test_normalize_data_stats_from_the_pack_match_the_folder_pipeline(tiny_pack):
    """The same images, resized by different code: channel means and stds agree closely."""
    ds, p = tiny_pack
    mean_p, std_p = pipeline.pack_stats(p, 16)
    mean_f, std_f = pipeline.dataset_stats(ds, 16)
    assert mean_p == pytest.approx(mean_f, abs=0.02) and std_p == pytest.approx(std_f, abs=0.02)
    assert pipeline.pack_stats(p, 16) == (mean_p, std_p)  # cached
