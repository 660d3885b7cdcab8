"""Proxies: small, deterministic copies of any dataset, made by hand or by rule, and which one to use.

`make_proxy`: N images per class (of all classes, or of some), resized, with the source's split ratio, and a record
of what they were made from (proxy.json). Which N: `select="random"` draws them; `select="easy"` keeps the N with the
lowest loss under a short training run on the source (Shleifer & Prokop, 2019; `ranking` makes and caches that
run). Validation is drawn at random either way, so a proxy is judged on images like the source's. A folder source
(class folders, file names, a named download) gives a folder in Imagenette's layout. A CSV source gives a CSV of the
same columns, sampled by row, beside the images it names: so each of its label columns (say noisy_labels_0 and
noisy_labels_25) labels the same images in the proxy as in the source.

A proxy is also described by its rule, `per_class=100,size=80,select=easy,classes=5,seed=0`:

  per_class  training images per class (required)
  size       the shorter side of its images, px (default: presize x the training size, so it serves the same input)
  select     random (default), or easy (above), the ranking run made once and cached with how it was made
  classes    keep only K classes (drawn with `seed`), or those named, separated by '+'
  seed       the draw (default 0)

`build` makes the proxy a description names, once, under TOOLKIT_HOME/proxies, and reuses it after. `choice` puts
each proxy's cost of a verdict (as `toolkit noise` prices it) beside its fidelity, for the user to pick from.
"""
from __future__ import annotations

import os
import random
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .. import display, stats
from ..atomic import atomic_dir, check_folder, write_json
from ..data import sources
from ..data.datasets import DOWNLOADS, EMBEDDED, PROXY_INFO, SETTINGS, SPLITS, Dataset, load, readable
from ..data.images import to_8bit
from ..defaults import EASY_RANKING, NOISE_EFFECT, SELECT
from ..display import duration
from ..errors import DatasetError, ToolkitError



def make_proxy(src: str, dst: str | Path, per_class: int, size: int, seed: int = 0, progress: str | None = None,
               classes: int | str | list | None = None, select: str = "random", losses: dict | None = None,
               ranking: dict | None = None, **options) -> dict:
    """Copy `per_class` random training images per class from dataset `src` to `dst`, shorter side resized to `size`.

    Validation keeps the source's val/train ratio per class (at least one image). The same arguments always
    pick the same files. `classes`: keep only that many classes (drawn with `seed`), or those named (a list, or
    names separated by commas). `select`: one of SELECT; "easy" needs `losses`, {training file relative to the
    source: loss}, and `ranking`, how they were measured (kept in proxy.json). `options`: how `src` is read (toolkit/data/sources.py), e.g. `label_col`. `dst`
    appears only once complete (built under a temporary name, then renamed). `progress`: see toolkit/display.py.
    """
    if select == "easy" and not losses:
        raise DatasetError("select=easy needs the loss of each training image from a ranking run "
                           "(toolkit data proxy --select easy makes one).")
    dst = Path(dst)
    ds = check_request(src, dst, per_class, size, select, **options)
    rng = random.Random(seed)
    kept = _classes(ds, classes, rng)
    chosen = _choose(ds, per_class, rng, kept, losses if select == "easy" else None)  # unreadable: skipped in load
    table = sources.is_table(ds.path)
    picked = [(split, label, f) for label, per in chosen.items() for split in SPLITS for f in per[split]]
    todo = [(split, f, _written_name(ds, f, k) if table else f"{split}/{label}/{f.name}")
            for k, (split, label, f) in enumerate(picked)]
    with atomic_dir(dst) as tmp:
        if not ds.flips:   # a proxy of digits is digits still: mirroring changes its classes
            write_json(tmp / SETTINGS, {"flip": False, "why": f"a proxy of {src}, whose images change class when mirrored"})
        written, names, skipped = _copy_images(todo, tmp, size, progress, src)
        if table:
            _write_rows(ds, options, names, tmp / ds.path.name)
        write_json(tmp / PROXY_INFO, {
            "source": ds.name if ds.name in EMBEDDED or ds.name in DOWNLOADS else str(ds.path),
            "fingerprint": ds.fingerprint, "read": ds.read or "class folders", "split": ds.split,
            "options": {k: v for k, v in options.items() if v != sources.default_options().get(k)},
            "per_class": per_class, "size": size, "seed": seed, "classes": [readable(c) for c in kept],
            "of_classes": len(ds.classes), "select": select, **({"ranking": ranking} if select == "easy" else {})})
    out = dst / ds.path.name if table else dst
    return {"path": str(out), "classes": len(chosen), **written, "skipped": len(skipped)}


def _copy_images(todo, tmp: Path, size: int, progress, src) -> tuple[dict, dict, list]:
    """Each (split, source file, name) of `todo` resized into `tmp`: (images written per split, {source file: its
    name}, the unreadable ones skipped). A split left empty is an error: nothing is written."""
    skipped, written, names = [], {s: 0 for s in SPLITS}, {}
    mode, t0 = display.choose(progress), time.perf_counter()
    for split, f, name in display.bar(todo, mode, comment=f"proxy of {src}"):
        out = tmp / name
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            _resized_copy(f, out, size)
            written[split] += 1
            names[f] = name
        except (OSError, ValueError) as e:   # PIL: unreadable, or no format known for the name's suffix
            skipped.append(f"{f} ({e})")
    if mode == "lines":
        for split in SPLITS:
            display.line(f"proxy {split}: {written[split]:,} images at {size} px", mode)
        display.line(f"proxy written in {time.perf_counter() - t0:.1f}s", mode)
    if skipped:
        warnings.warn(f"Skipped {len(skipped)} unreadable source image(s):\n  " + "\n  ".join(skipped[:20]),
                      stacklevel=3)
    if not written["train"] or not written["val"]:
        raise DatasetError(f"Proxy of {src} would have an empty split (train: {written['train']}, "
                           f"val: {written['val']} images); nothing was written.")
    return written, names, skipped


def check_request(src: str, dst: str | Path, per_class: int, size: int, select: str = "random",
                  **options) -> Dataset:
    """The source dataset of a proxy asked for, after every check that can refuse it, before anything is written
    (a ranking run included): the numbers, the rule, and a destination that is new and neither inside its source
    (a proxy written into its source would change the dataset it is made from; a new folder cannot hold it)."""
    dst = Path(dst)
    if per_class < 1:
        raise DatasetError(f"--per-class must be at least 1 (got {per_class}).")
    if size < 8:
        raise DatasetError(f"--size must be at least 8 px (got {size}).")
    if select not in SELECT:
        raise DatasetError(f"select={select!r}: a proxy selects its training images by one of {', '.join(SELECT)}.")
    check_folder(dst.parent, "The proxy's destination")
    if dst.exists():
        raise DatasetError(f"Proxy destination {dst} already exists; remove it or choose another folder.")
    ds = load(src, **options)
    target = dst.expanduser().resolve()
    for root in _source_folders(ds):
        if target == root or root in target.parents:
            raise DatasetError(f"Proxy destination {dst} is inside its source's folder {root}: writing it there "
                               f"would add the proxy's images to the dataset it is made from (and change it). "
                               f"Choose a folder outside {root}; nothing was written.")
    return ds


def _source_folders(ds: Dataset) -> list[Path]:
    """The folders a proxy must not be written into: a folder dataset's own, and the folder holding every image a
    table names (unless that is a filesystem root or the home folder, as for a table of images from all over)."""
    files = [f for s in SPLITS for f in ds.files[s]]
    common = Path(os.path.commonpath(files)).resolve() if files else None
    home = Path.home().resolve()
    out = [] if sources.is_table(ds.path) else [ds.root.resolve()]
    if common is not None and common.parent != common and common != home and common not in home.parents:
        out.append(common)
    return list(dict.fromkeys(out))


def _classes(ds: Dataset, classes, rng: random.Random) -> list[str]:
    """The classes a proxy keeps: all, K drawn with the proxy's seed, or those named (raw or readable names)."""
    if classes in (None, "", 0):
        return list(ds.classes)
    if isinstance(classes, int) or (isinstance(classes, str) and classes.strip().isdigit()):
        k = int(classes)
        if not 2 <= k <= len(ds.classes):
            raise DatasetError(f"--classes {k}: a proxy keeps between 2 and {len(ds.classes)} of {ds.name}'s "
                               f"{len(ds.classes)} classes.")
        return sorted(rng.sample(list(ds.classes), k))
    names = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
    by_name = {**{readable(c): c for c in ds.classes}, **{c: c for c in ds.classes}}
    unknown = [n for n in names if n not in by_name]
    if unknown or len(set(names)) < 2:
        raise DatasetError(f"--classes: {', '.join(map(repr, unknown)) or 'fewer than two classes'} "
                           f"{'are not classes of ' + ds.name if unknown else ''}; its classes: "
                           f"{', '.join(readable(c) for c in ds.classes)}.")
    return sorted({by_name[n] for n in names})


def _choose(ds: Dataset, per_class: int, rng: random.Random, kept: list[str], losses: dict | None = None) -> dict:
    """{class: {"train": files, "val": files}}: `per_class` training images per class (random, or the lowest
    `losses`), validation drawn at random in the same ratio."""
    chosen = {}
    if losses is not None:
        missing = [f for f, c in ds.items("train") if c in kept and ds.relative(f) not in losses]
        if missing:
            raise DatasetError(f"The ranking run has no loss for {len(missing):,} training image(s) of {ds.name} "
                               f"(e.g. {ds.relative(missing[0])}): it was made from other data. Remove the ranking "
                               f"from the cache and make the proxy again.")
    for cls in kept:
        train = [f for f, c in ds.items("train") if c == cls]
        val = [f for f, c in ds.items("val") if c == cls]
        n_train = min(per_class, len(train))
        n_val = min(len(val), max(1, round(n_train * len(val) / len(train)))) if val else 0
        picked = (sorted(train, key=lambda f: (losses[ds.relative(f)], str(f)))[:n_train] if losses is not None
                  else rng.sample(train, n_train))
        chosen[cls] = {"train": picked, "val": rng.sample(val, n_val)}
    return chosen


def _written_name(ds: Dataset, f: Path, k: int) -> str:
    """Where a CSV proxy keeps an image: at its path relative to the source's folder, or, for one outside it,
    under images/ with its place among the proxy's images in its name (so that no two share one)."""
    rel = ds.relative(f)
    return rel if not rel.startswith("..") else f"images/{k}-{f.name}"


def _write_rows(ds: Dataset, options: dict, names: dict, dest: Path) -> None:
    """The source's rows of the written images, every column kept, so that the proxy read with no option reads what
    the source was read as: the file names first (relative to the proxy: no folder or suff needed), the labels
    second, and the split in a boolean is_valid column (a source's own is_valid, if it split by another column,
    is replaced by the split it was read with)."""
    df = sources._read_table(ds.path)
    opts = {**{k: "" for k in sources.CSV_OPTIONS}, **options}
    cols = sources.columns(ds.path, opts)
    files = sources.csv_files(ds.path, df, {**opts, **cols})
    val = set(ds.files["val"])
    rows = [i for i, f in enumerate(files) if f in names]
    out = df.iloc[rows].copy()
    out[cols["fn_col"]] = [names[files[i]] for i in rows]
    out[sources.VALID_COL] = [files[i] in val for i in rows]
    first = [cols["fn_col"], cols["label_col"]]
    out[first + [c for c in out.columns if c not in first]].to_csv(dest, index=False)


def _resized_copy(src: Path, out: Path, size: int) -> None:
    """`src` with its shorter side resized to `size`, as fastai's imagenette2-160/-320 are made, written to `out`."""
    from PIL import Image
    with Image.open(src) as im:
        im.load()
        im = to_8bit(im)   # deeper than 8 bits: rescaled, as the loaders read it
        im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
        im.save(out, quality=90) if out.suffix.lower() in (".jpg", ".jpeg") else im.save(out)


# --- proxies by rule -----------------------------------------------------------------------------------------

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
    """`toolkit data proxy`: `make_proxy`, after the ranking run that select=easy needs (at `rank_size`, default
    the dataset's size). `read`: how `src` is read (e.g. label_col)."""
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
