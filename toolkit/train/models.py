"""Architectures by name: fastai's xresnets, a SqueezeNet for small images, any timm model as `timm:NAME`."""
from __future__ import annotations

import difflib
from pathlib import Path

import torch
from fastai.layers import AvgPool, MaxPool
from fastai.vision.models import xresnet
from torch import nn

from ..errors import RecipeError
from ..recipes import components
from ..recipes.recipe import Recipe

TIMM_PREFIX = "timm:"
XRESNETS = tuple(n for n in xresnet.__all__ if n.startswith("xresnet") or n.startswith("xse_resnext"))
LOCAL = ("squeezenet",)
# A recipe's `act` and `pool` (toolkit/recipes/vocabulary.py: ACTIVATIONS, POOLS) as fastai's xresnet takes them.
ACTS = {"relu": nn.ReLU, "mish": nn.Mish, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU,
        "leaky_relu": nn.LeakyReLU}
POOLS = {"avg": AvgPool, "max": MaxPool}


def conv_bn(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(inplace=True), nn.BatchNorm2d(c_out))


class Fire(nn.Module):
    """A fire module: 1x1 squeeze, then 1x1 and 3x3 expands in parallel, concatenated (BatchNorm after each conv)."""
    def __init__(self, c_in: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = conv_bn(c_in, squeeze, 1)
        self.e1, self.e3 = conv_bn(squeeze, expand // 2, 1), conv_bn(squeeze, expand - expand // 2, 3)

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.e1(x), self.e3(x)], dim=1)


def squeezenet(n_out: int, widths=((24, 48), (48, 96), (64, 128), (48, 96), (24, 48))) -> nn.Sequential:
    """A SqueezeNet for small images: stem conv, fire modules with max-pooling between them, average pool, linear.

    The shape of the Keras TPU flowers tutorial's model (about 80% on 5 flower classes in 35 epochs there).
    Hand-written because torchvision's SqueezeNet has no BatchNorm and expects 224 px ImageNet inputs.
    """
    layers, c = [conv_bn(3, 32, 3)], 32
    for i, (sq, ex) in enumerate(widths):
        if i:
            layers.append(nn.MaxPool2d(2))
        layers.append(Fire(c, sq, ex))
        c = ex
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_out))


def registered(arch: str):
    """(component, keyword arguments) of a registered model that `arch` names, or None."""
    try:
        name = components.parse(arch, "arch")[0]
    except ValueError:
        return None
    return components.lookup("model", arch) if components.get("model", name) else None


def check_arch(arch: str, own=None) -> None:
    """Raise a clear RecipeError for an architecture name nobody can build (`own`: the registered model it names,
    when the caller has it)."""
    if own or registered(arch):
        return
    if arch.startswith(TIMM_PREFIX):
        import timm
        name = arch[len(TIMM_PREFIX):]
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f" Did you mean: {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
            raise RecipeError(f"Unknown timm model {name!r}.{hint} `python -c \"import timm; print(timm.list_models('resnet*'))\"` lists them.")
    elif arch not in XRESNETS and arch not in LOCAL:
        close = difflib.get_close_matches(arch, [*XRESNETS, *LOCAL], n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise RecipeError(f"Unknown architecture {arch!r}.{hint} Use a fastai xresnet ({', '.join(XRESNETS[:4])}, ...), "
                          f"{', '.join(LOCAL)}, any timm model as timm:NAME (e.g. timm:resnet18), or a model of "
                          f"your own registered with @toolkit.register_model(\"name\") (registered: "
                          f"{', '.join(components.registered('model')) or 'none'}).")


def check_weights(arch: str, weights: str) -> None:
    """Raise a clear RecipeError for weights that cannot be loaded, before any data work."""
    if not weights:
        return
    if weights == "timm":
        if not arch.startswith(TIMM_PREFIX):
            raise RecipeError(f"weights=timm fetches a timm model's pretrained weights, but arch is {arch!r}. Use a "
                              f"timm:NAME arch, or pass a local checkpoint with --set weights=PATH.")
        return
    if not Path(weights).expanduser().is_file():
        raise RecipeError(f"Weights file {weights!r} does not exist. Pass the path of a PyTorch checkpoint (a saved "
                          f"state_dict) for {arch}, weights=timm for timm's pretrained weights, or leave weights "
                          f"empty to start from random weights.")


def model_of(recipe: Recipe, n_out: int, own=None):
    """The recipe's model with `n_out` outputs (see `create_model`), shaped by its act, sa, sym and pool; `own`: the
    registered model it names (component, keyword arguments), if any."""
    shape = dict(act_cls=ACTS[recipe.act], sa=recipe.sa, sym=recipe.sym, pool=POOLS[recipe.pool])
    return create_model(recipe.arch, n_out, recipe.weights, shape, own)


def create_model(arch: str, n_out: int, weights: str = "", shape: dict | None = None, own=None):
    """A model with `n_out` outputs: random init, timm's pretrained weights (weights="timm"), or a checkpoint file.
    `shape`: keyword arguments of fastai's xresnets (act_cls, sa, sym, pool); a registered model is built by its
    factory with the recipe's keyword arguments.

    With pretrained weights the head is new: its tensors (whose shapes differ) keep their random init.
    Never falls back to random weights when the requested ones cannot be had.
    """
    own = own or registered(arch)
    check_arch(arch, own)
    check_weights(arch, weights)
    if own:
        model = components.build(own[0], own[1], n_out)
        if not isinstance(model, nn.Module):
            raise RecipeError(f"The model {own[0].name!r} (from {own[0].origin}) returned a {type(model).__name__}, "
                              f"not a torch nn.Module.")
    elif arch.startswith(TIMM_PREFIX):
        import timm
        name = arch[len(TIMM_PREFIX):]
        if weights == "timm":
            try:
                return timm.create_model(name, pretrained=True, num_classes=n_out)
            except Exception as e:  # hub, network and file errors all mean "no weights here"
                raise RecipeError(
                    f"Could not get timm's pretrained weights for {name!r} ({type(e).__name__}: {e}). Without "
                    f"network access, fetch the checkpoint elsewhere and pass --set weights=PATH. The toolkit never "
                    f"falls back to random weights.") from None
        model = timm.create_model(name, pretrained=False, num_classes=n_out)
    elif arch == "squeezenet":
        model = squeezenet(n_out)
    else:
        model = getattr(xresnet, arch)(n_out=n_out, **(shape or {}))
    if weights:
        load_weights(model, Path(weights).expanduser(), arch)
    return model


def load_weights(model: nn.Module, path: Path, arch: str = "") -> list[str]:
    """Load a checkpoint into `model`, skipping tensors whose shapes differ (the head); returns the skipped names."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RecipeError(f"Could not read {path} as a PyTorch checkpoint ({type(e).__name__}: {e}).") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(usable) < len(own) / 2:
        raise RecipeError(f"Checkpoint {path} fits only {len(usable)} of the {len(own)} tensors of {arch or 'the model'}"
                          f": it was saved from another architecture. Pick the matching arch.")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
