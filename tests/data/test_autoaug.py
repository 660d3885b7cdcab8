"""Automatic augmentation drawn per sample on batches: per-sample changes, ranges, restricted and added operations."""
import pytest
import torch
from fastai.torch_core import TensorImage, set_seed

from toolkit.data import autoaug
from toolkit.data.autoaug import BatchPolicy
from toolkit.recipes.vocabulary import OPS, POLICIES, parse_ops


def _twins(n=8, size=24):
    set_seed(0)
    return TensorImage(torch.rand(1, 3, size, size).repeat(n, 1, 1, 1))  # n identical images


@pytest.mark.parametrize("policy", POLICIES)
def test_each_policy_changes_images_per_sample_and_keeps_shape_and_range(policy):
    x = _twins()
    set_seed(1)
    y = BatchPolicy(policy)(x, split_idx=0)
    assert y.shape == x.shape and y.dtype == x.dtype and y.min() >= 0 and y.max() <= 1
    distinct = {tuple(img.flatten()[:64].tolist()) for img in y}
    assert len(distinct) >= 4          # identical inputs, different outputs: the draws are per sample
    assert torch.equal(BatchPolicy(policy)(x, split_idx=1), x)  # validation is left alone


@pytest.mark.parametrize("op", OPS + ("cutout",))
def test_every_operation_changes_an_image(op):
    x = _twins(4)
    y = BatchPolicy("trivialaugment", ops=(op,))(x, split_idx=0)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    if op not in ("auto_contrast", "posterize"):  # those two may leave a random image (almost) as it is
        assert not torch.allclose(y, x)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_restricted_set_never_applies_an_excluded_operation(policy):
    allowed = ("brightness", "contrast", "equalize")
    aug = BatchPolicy(policy, ops=allowed)
    used = set()
    for seed in range(20):
        set_seed(seed)
        aug(_twins(16), split_idx=0)
        used |= {op for op, _ in aug.last}
    assert used and used <= set(allowed)


def test_rotation_is_capped_for_datasets_that_ask(monkeypatch):
    seen = []
    rotate = autoaug.APPLY["rotate"]
    monkeypatch.setitem(autoaug.APPLY, "rotate", lambda x, m: seen.append(m.clone()) or rotate(x, m))
    aug = BatchPolicy("trivialaugment", ops=("rotate",), max_rotate=10)  # trivialaugment rotates up to 135 degrees
    for seed in range(5):
        set_seed(seed)
        aug(_twins(16), split_idx=0)
    m = torch.cat(seen)
    assert m.abs().max() <= 10 and m.abs().max() > 5


def test_operation_sets_are_checked():
    assert parse_ops("rotate, color", "cutout") == ("rotate", "color", "cutout")
    assert parse_ops() == OPS
    with pytest.raises(ValueError, match="unknown augmentation operation"):
        parse_ops("flip")
