"""Architectures by name, the SqueezeNet, and loading pretrained weights (never silently random)."""
import pytest
import torch
from torch import nn

from toolkit.train import models
from toolkit.errors import RecipeError


def test_squeezenet_shape_and_batchnorm_after_every_conv():
    m = models.create_model("squeezenet", 5)
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 5)  # small images too: global average pooling
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    bns = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    fires = [x for x in m.modules() if isinstance(x, models.Fire)]
    assert len(fires) == 5 and len(convs) == len(bns) == 1 + 3 * len(fires)
    assert sum(isinstance(x, nn.MaxPool2d) for x in m.modules()) == len(fires) - 1
    f = fires[0]
    out = f(torch.randn(1, 32, 8, 8))
    assert out.shape[1] == f.e1[0].out_channels + f.e3[0].out_channels  # 1x1 and 3x3 expands, concatenated


def test_checkpoint_loads_everything_but_the_new_head(tmp_path):
    src = models.create_model("xresnet18", 1000)
    with torch.no_grad():
        for p in src.parameters():
            p.fill_(0.5)
    path = tmp_path / "w.pth"
    torch.save({"model": src.state_dict()}, path)
    m = models.create_model("xresnet18", 10, weights=str(path))
    head = m[-1]
    assert isinstance(head, nn.Linear) and head.out_features == 10
    body = [p for n, p in m.named_parameters() if not n.startswith(f"{len(m) - 1}.")]
    assert all(torch.all(p == 0.5) for p in body)
    assert not torch.all(head.weight == 0.5)  # the new head keeps its random init


def test_bad_weights_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(RecipeError, match="does not exist"):
        models.create_model("xresnet18", 10, weights=str(tmp_path / "missing.pth"))
    other = tmp_path / "other.pth"
    torch.save(models.create_model("squeezenet", 10).state_dict(), other)
    with pytest.raises(RecipeError, match="saved from another architecture"):
        models.create_model("xresnet18", 10, weights=str(other))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(RecipeError, match="Could not read"):
        models.create_model("xresnet18", 10, weights=str(junk))
    with pytest.raises(RecipeError, match="needs|timm:NAME"):
        models.create_model("xresnet18", 10, weights="timm")


def test_offline_pretrained_weights_fail_instead_of_falling_back(monkeypatch):
    import timm

    def offline(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        raise AssertionError("must not build a random model instead")
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RecipeError, match="never falls back to random weights"):
        models.create_model("timm:resnet18", 10, weights="timm")
