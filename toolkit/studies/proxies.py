"""Proxies by rule, and which one to use.

A proxy is described by its rule, `per_class=100,size=80,select=easy,classes=5,seed=0`:

  per_class  training images per class (required)
  size       the shorter side of its images, px (default: presize x the training size, so it serves the same input)
  select     random (default), or easy: the images of lowest loss under a short ranking run of `baseline` on the
             full data (Shleifer & Prokop, 2019), made once and cached with how it was made
  classes    keep only K classes (drawn with `seed`), or those named, separated by '+'
  seed       the draw (default 0)

`build` makes the proxy a description names, once, under TOOLKIT_HOME/proxies, and reuses it after. `choice` puts
each proxy's cost of a verdict (as `toolkit noise` prices it) beside its fidelity, for the user to pick from.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..display import duration
from ..defaults import EASY_RANKING, NOISE_EFFECT
from ..errors import ToolkitError

KEYS = ("per_class", "size", "select", "classes", "seed")


def is_description(text) -> bool:
    """Whether a --proxy names a rule (`per_class=100,...`) rather than a dataset."""
    return isinstance(text, str) and "=" in text and not Path(text).exists()


def parse(text: str) -> dict:
    """A description's settings, checked: {per_class, size (or None), select, classes (or None), seed}."""
    out = {"size": None, "select": "random", "classes": None, "seed": 0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key not in KEYS or not value:
            raise ToolkitError(f"--proxy {text!r}: {part!r} is not one of {', '.join(k + '=...' for k in KEYS)}. "
                               f"Example: per_class=100,size=80,select=easy.")
        if key in ("per_class", "size", "seed"):
            if not value.isdigit():
                raise ToolkitError(f"--proxy {text!r}: {key} is a whole number (got {value!r}).")
            value = int(value)
        out[key] = value.replace("+", ",") if key == "classes" else value
    if "per_class" not in out:
        raise ToolkitError(f"--proxy {text!r} does not say per_class=N: how many training images per class.")
    return out


def build(text: str, full: str, size: int, presize: float, log=print, progress: str | None = None,
          context: dict | None = None) -> str:
    """The folder of the proxy of `full` that `text` describes, made once under TOOLKIT_HOME/proxies (its images at
    presize x `size` unless the description says otherwise; an easy one ranked at `size`). `context`: what the
    ranking run shares with the comparison (arch, precision)."""
    from ..data.datasets import load, toolkit_home
    spec = parse(text)
    spec["size"] = spec["size"] or round(size * presize)
    name = "-".join(f"{k}{spec[k]}" for k in KEYS if spec[k] not in (None, "random", 0) or k == "per_class")
    dest = toolkit_home() / "proxies" / f"{load(full).fingerprint[:12]}-{re.sub(r'[^A-Za-z0-9_.+-]', '_', name)}"
    if not dest.exists():
        log(f"making the proxy {text} of {full} in {dest}")
        make(full, dest, spec["per_class"], spec["size"], spec["seed"], progress, spec["classes"], spec["select"],
             rank_size=size, context=context, log=log)
    return str(dest)


def make(src: str, dst, per_class: int, size: int, seed: int = 0, progress: str | None = None, classes=None,
         select: str = "random", rank_size: int | None = None, context: dict | None = None, log=print,
         **read) -> dict:
    """`toolkit data proxy`: data/proxy.py's make_proxy, after the ranking run that select=easy needs (at
    `rank_size`, default the dataset's size). `read`: how `src` is read (e.g. label_col)."""
    from ..data.proxy import check_request, make_proxy
    check_request(src, dst, per_class, size, select, **read)   # before the ranking run: nothing trains for nothing
    losses, about = ranking(src, rank_size, context or {}, log, progress, **read) if select == "easy" else (None, None)
    return make_proxy(src, dst, per_class, size, seed, progress, classes, select=select, losses=losses,
                      ranking=about, **read)


def ranking(full: str, size: int | None, context: dict, log=print, progress: str | None = None,
            **read) -> tuple[dict, dict]:
    """The loss of every training image of `full` under a short run of EASY_RANKING's recipe (toolkit/defaults.py)
    at `size` (default: the dataset's), with `context`'s arch and precision: ({file relative to the dataset: loss},
    how it was made). Made once per dataset and setting, cached under TOOLKIT_HOME/rankings."""
    from ..data.datasets import cache_json, load
    from ..recipes import registry
    from ..recipes.identity import config_id
    from ..recipes.overrides import apply_overrides
    from ..train.resolve import resolve_recipe
    keep = {k: context[k] for k in ("arch", "precision", "channels_last", "bs") if context.get(k) is not None}
    ctx = {k: str(v) for k, v in {**keep, **read, "dataset": full, "epochs": EASY_RANKING["epochs"],
                                  "seed": EASY_RANKING["seed"], "loader": "packed",
                                  **({"size": size} if size else {})}.items()}
    recipe = resolve_recipe(apply_overrides(registry.get(EASY_RANKING["recipe"]), ctx), ctx)

    def compute():
        log(f"ranking run: {recipe.name} on {full} at {recipe.size} px, {recipe.epochs} epoch(s), seed "
            f"{recipe.seed}, ranks its training images by loss (once, then cached)")
        losses, about = _rank(recipe, progress)
        return {"about": about, "losses": losses}
    made = cache_json("rankings", f"{load(full, **read).fingerprint}-{config_id(recipe)}", compute)
    return made["losses"], made["about"]


def _rank(recipe, progress) -> tuple[dict, dict]:
    """Train `recipe`, then the loss of each training image at its size, resized only (no augmentation)."""
    import torch
    import torch.nn.functional as F
    from fastai.callback.core import Callback
    from ..data.loader import PackedDL, PackedItems
    from ..data.pipeline import batch_tfms, prepare
    from ..train.learner import fit_and_evaluate

    class Keep(Callback):
        def after_fit(self):
            self.kept = self.learn.model
    keep, t0 = Keep(), time.perf_counter()
    data = prepare(recipe, progress=progress)
    metrics = fit_and_evaluate(recipe, data, progress=progress, cbs=[keep])
    model = keep.kept.eval()
    items = PackedItems(data.pack, "train", 1)
    dl = PackedDL(items, bs=256, shuffle=False, after_batch=batch_tfms(recipe, data.ds, recipe.size, augment=False))
    out = []
    with torch.no_grad():
        for xb, yb in dl:
            logits = model(xb).as_subclass(torch.Tensor).float()   # fastai's tensor types: plain for F
            out.append(F.cross_entropy(logits, yb.as_subclass(torch.Tensor), reduction="none").cpu())
    loss = torch.cat(out).tolist()
    files = data.pack.meta["splits"]["train"]["files"]
    about = {"recipe": recipe.name, "size": recipe.size, "epochs": recipe.epochs, "seed": recipe.seed,
             "arch": recipe.arch, "accuracy": round(float(metrics["accuracy"]), 4),
             "seconds": round(time.perf_counter() - t0, 1), "images": len(files)}
    return dict(zip(files, map(float, loss))), about


def choice(reports: dict, full_seconds: float, full_sd: float, effect: float = NOISE_EFFECT) -> pd.DataFrame:
    """Which proxy should I use: per proxy (and the full data), its rule, training images, seconds per run, the
    spread of its paired differences, what a verdict on `effect` points costs there (pairs at 80% power x 2 runs x
    seconds per run, as `toolkit noise` prices it), and its fidelity: recipes agreeing, in conflict, undecided, and
    Kendall's tau. `reports`: {proxy label: what studies/fidelity.py judged of it}."""
    rows = []
    for label, r in reports.items():
        counts = r["table"]["agreement"].value_counts()
        rows.append({"data": label, "rule": r["rule"], "train images": f"{r['n_train']:,}",
                     "s per run": f"{r['seconds']:.0f}", **_cost(r["pair_sd"], r["seconds"], effect),
                     "agree": str(counts.get("agree", 0)), "conflict": str(counts.get("conflict", 0)),
                     "one side only": str(counts.get("proxy only", 0) + counts.get("full only", 0)),
                     "undecided": str(counts.get("undecided", 0)), "tau [95% CI]": r["tau"]})
    if reports:
        n_full = next(iter(reports.values()))["n_train_full"]
        rows.append({"data": "full", "rule": "all images", "train images": f"{n_full:,}",
                     "s per run": f"{full_seconds:.0f}", **_cost(full_sd, full_seconds, effect)})
    return pd.DataFrame(rows).fillna("")


def _cost(sd: float, seconds: float, effect: float) -> dict:
    """The spread of paired differences (points) and the cost of a verdict on `effect` points with it."""
    if not np.isfinite(sd):
        return {"sd of paired Δ pts": "", f"pairs for {effect:g} pts": "", "time to a verdict": ""}
    n = stats.pairs_to_detect(effect / 100, sd / 100)
    time_ = (f"{duration(2 * n * seconds)}" if n else f"over {duration(2 * stats.MAX_NEEDED * seconds)}")
    return {"sd of paired Δ pts": f"{sd:.1f}", f"pairs for {effect:g} pts": str(n) if n else f">{stats.MAX_NEEDED}",
            "time to a verdict": time_}
