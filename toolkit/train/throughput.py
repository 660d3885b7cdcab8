"""`toolkit bench data`: the same recipe fed by each data pipeline, against the no-loading limit.

Rows (the same model, batch size, seed and one-cycle epoch; only the data path changes):
  1  fastai's folder DataLoaders: PIL decode, item Resize, batch aug_transforms, in the main process
  2  the same with worker processes (one per core)
  3  the packed cache, read by the batch, with per-sample batch augmentation on the device
  4  the same, with the next batch read ahead by a background thread
  5  the limit: the training step fed one pre-made (already augmented) batch over and over
  6-11  rows 5 and 3 again in bf16 autocast, in channels_last and in both; 11 is the packed loader as shipped
        (precision, channels_last and read-ahead decided for this device: what a run here trains with)
Rows 1-5 train in fp32, contiguous (what every run did before precision was a setting); every epoch is also
given as a ratio to the fp32 limit (5).
A second table times each automatic-augmentation policy alone: torchvision's, one image at a time as a loader's
item pipeline applies it, against the toolkit's per-sample draws on whole batches.
Columns: loader-only images/s (iterating the train DataLoader, augmentation included, first batch excluded as
warm-up) and the training epoch (train phase only; validation is skipped), as medians over --repeats rounds.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from fastai.callback.core import Callback, CancelValidException
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor
from fastai.torch_core import default_device, set_seed

from ..data import datasets
from . import precision, schedule
from ..atomic import write_atomic
from ..defaults import BENCH_DATA
from ..data.loader import PackedDL, PackedItems
from ..data.pack import ensure_pack, pack_side
from ..data.pipeline import RunData, dataloaders
from ..recipes.recipe import Recipe
from .learner import build_learner

ROWS = {
    1: "fastai folder DataLoaders (PIL decode, item Resize, batch aug_transforms), no workers",
    2: "fastai folder DataLoaders, {workers} worker processes",
    3: "packed cache + per-sample batch augmentation on the device",
    4: "packed cache + batch augmentation + prefetch thread",
    5: "limit: training step on one pre-made batch (no loading)",
    6: "limit, bf16 autocast",
    7: "packed + bf16 autocast",
    8: "limit, channels_last",
    9: "limit, bf16 + channels_last",
    10: "packed + bf16 + channels_last",
    11: "packed, as shipped (auto: {auto})",
}
# row -> (the row whose data path it uses, precision, channels_last); None: auto
SETTINGS = {1: (1, "fp32", False), 2: (2, "fp32", False), 3: (3, "fp32", False), 4: (4, "fp32", False),
            5: (5, "fp32", False), 6: (5, "bf16", False), 7: (3, "bf16", False), 8: (5, "fp32", True),
            9: (5, "bf16", True), 10: (3, "bf16", True), 11: (3, "auto", None)}


class TrainTimer(Callback):
    """Time the train phase of each epoch and skip validation (it is not what this benchmark measures)."""
    def before_fit(self):
        self.seconds, self.images = [], 0

    def before_train(self):
        self._t = time.perf_counter()

    def after_batch(self):
        if self.training:
            self.images += len(self.learn.xb[0])

    def after_train(self):
        self.seconds.append(time.perf_counter() - self._t)

    def before_validate(self):
        raise CancelValidException


class RepeatedBatch(PackedDL):
    """As many steps as a real epoch, every one fed the same batch: the no-loading limit."""
    def __init__(self, dataset, batch=None, **kwargs):
        self.batch = batch
        super().__init__(dataset, **kwargs)

    def create_batches(self, samps):
        for _ in range(len(self)):
            yield self.batch


def row_recipe(row: int, recipe: Recipe) -> Recipe:
    """The recipe with the precision and memory format of `row` (resolved on this device)."""
    _, prec, cl = SETTINGS[row]
    return precision.decide(replace(recipe, precision=prec, channels_last=cl))


def _dataloaders(row: int, recipe: Recipe, ds, pack, workers: int):
    """The recipe's own DataLoaders (toolkit/data/pipeline.py), with the loader, workers and read-ahead of `row`."""
    prefetch = {4: 2, 11: None}.get(row, 0)   # None: read ahead where a run would (on a GPU)
    row = SETTINGS[row][0]
    if row in (1, 2):
        folder = RunData(ds, [], None)
        return dataloaders(replace(recipe, loader="folder"), folder, recipe.size, num_workers=0 if row == 1 else workers)
    dls = dataloaders(recipe, RunData(ds, [], pack), recipe.size, prefetch=prefetch)
    if row == 5:
        batch = dls.train.one_batch()  # augmented once, already on the device
        train = RepeatedBatch(PackedItems(pack, "train", 0), batch=batch, bs=recipe.bs, shuffle=False,
                              drop_last=True, prefetch=0, device=dls.device)
        dls = DataLoaders(train, dls.valid, device=dls.device)
    return dls


def reading_only(dl):
    """The same DataLoader without its augmentation: images read (and resized per item, for a folder) to floats."""
    return dl.new(after_batch=[IntToFloatTensor()], shuffle=True, drop_last=True)


def loader_rate(dl, n_batches: int) -> float:
    """Images/s of iterating `dl` alone (its batch transforms included); the first batch is warm-up."""
    it = iter(dl)
    next(it)
    t, n = time.perf_counter(), 0
    for i, (xb, _) in enumerate(it):
        n += len(xb)
        if i + 2 >= n_batches:
            break
    dt = time.perf_counter() - t
    del it
    return n / dt


def epoch_seconds(recipe: Recipe, dls) -> tuple[float, int]:
    """One one-cycle epoch of the recipe on `dls`: train-phase seconds and images seen."""
    set_seed(recipe.seed, reproducible=True)
    timer = TrainTimer()
    learn = build_learner(recipe, dls, cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        schedule.fit(learn, 1, recipe.lr, "one_cycle", recipe)
    return timer.seconds[0], timer.images


def bench_data(dataset: str = BENCH_DATA["dataset"], size: int = BENCH_DATA["size"], arch: str = BENCH_DATA["arch"],
               bs: int = BENCH_DATA["bs"], out: str | Path = BENCH_DATA["out"],
               loader_batches: int = BENCH_DATA["loader_batches"], rows: str | list | None = None,
               repeats: int = BENCH_DATA["repeats"], quiet: bool = False, policies: bool = True,
               policy_batches: int = 5, train: bool = True) -> pd.DataFrame:
    """Run the data benchmark, print its table, write OUT/data.md and OUT/data.csv; returns the table."""
    rows = ROWS if rows is None else rows   # None: every row
    wanted = sorted({int(r) for r in str(rows).split(",")} if isinstance(rows, str) else set(rows))
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        from ..errors import ToolkitError
        raise ToolkitError(f"Unknown benchmark row(s) {unknown}; the rows are {', '.join(map(str, ROWS))}.")
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    recipe = Recipe(name="bench", dataset=dataset, arch=arch, size=size, bs=bs, epochs=1)  # the baseline otherwise
    ds = datasets.load(dataset)
    mode = "none" if quiet else None
    pack = ensure_pack(ds, pack_side(ds, size, recipe.presize), progress=mode) if set(wanted) & {3, 4, 5} else None
    workers = os.cpu_count() or 1
    if not train:
        wanted = [r for r in wanted if SETTINGS[r][0] != 5]  # a limit row is a training epoch and nothing else
    per_row = {r: {"loader": [], "reading": [], "epoch": [], "images": 0} for r in wanted}
    for rep in range(repeats):
        for r in wanted:
            say(f"[round {rep + 1}/{repeats}] row {r}: {_name(r, workers)}")
            dls = _dataloaders(r, recipe, ds, pack, workers)
            if SETTINGS[r][0] != 5 and (r < 6 or r == 11):  # the other rows read as row 4 does
                set_seed(recipe.seed)
                per_row[r]["loader"].append(loader_rate(dls.train, loader_batches))
                per_row[r]["reading"].append(loader_rate(reading_only(dls.train), loader_batches))
                say(f"    loader {per_row[r]['loader'][-1]:,.0f} images/s "
                    f"(reading only {per_row[r]['reading'][-1]:,.0f} images/s)")
            if train:
                secs, imgs = epoch_seconds(row_recipe(r, recipe), dls)
                per_row[r]["epoch"].append(secs)
                per_row[r]["images"] = imgs
                say(f"    epoch {secs:.1f} s ({imgs / secs:.1f} images/s)")
    table = _table(per_row, workers, recipe, ds, repeats, loader_batches)
    md = _markdown(table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "data.md", out / "data.csv"]
    if policies:
        pol = policy_table(pack or ensure_pack(ds, pack_side(ds, size, recipe.presize), progress=mode), ds,
                           recipe, n_batches=policy_batches, say=say)
        md += "\n\n" + _policy_markdown(pol, recipe)
        write_atomic(out / "data_policies.csv", lambda p: pol.to_csv(p, index=False))
        written.append(out / "data_policies.csv")
    write_atomic(out / "data.csv", lambda p: table.to_csv(p, index=False))
    write_atomic(out / "data.md", lambda p: Path(p).write_text(md + "\n"))
    print(md)
    print(f"\nWritten: {', '.join(map(str, written))}")
    return table


def policy_table(pack, ds, recipe: Recipe, n_batches: int = 5, say=print) -> pd.DataFrame:
    """Images/s of each automatic-augmentation policy: torchvision's, one image at a time as in a loader's item
    pipeline, against the toolkit's per-sample draws on whole batches (same batches, same size, same device)."""
    import torch
    from ..data.autoaug import BatchPolicy, per_item_policy
    from ..recipes.vocabulary import POLICIES
    dl = dataloaders(recipe, RunData(ds, [], pack), recipe.size, prefetch=0, augment=False).train
    batches = []
    for xb, _ in dl:
        batches.append(xb)
        if len(batches) == n_batches:
            break
    rows = []
    for name in POLICIES:
        set_seed(recipe.seed)
        batch_policy, item_policy = BatchPolicy(name), per_item_policy(name)
        batch_policy(batches[0], split_idx=0)                       # warm-up
        t = time.perf_counter()
        for xb in batches:
            batch_policy(xb, split_idx=0)
        batch_rate = sum(map(len, batches)) / (time.perf_counter() - t)
        u8 = [(xb.as_subclass(torch.Tensor) * 255).round().to(torch.uint8) for xb in batches]
        t = time.perf_counter()
        for xb in u8:
            torch.stack([item_policy(img) for img in xb]).float().div_(255)
        item_rate = sum(map(len, u8)) / (time.perf_counter() - t)
        say(f"    {name}: per item {item_rate:,.0f} images/s, per sample on the batch {batch_rate:,.0f} images/s")
        rows.append({"policy": name, "per_item_images_per_s": round(item_rate, 1),
                     "batch_images_per_s": round(batch_rate, 1), "speedup": round(batch_rate / item_rate, 2),
                     "size": recipe.size, "bs": recipe.bs, "batches": len(batches), "device": str(default_device())})
    return pd.DataFrame(rows)


def _policy_markdown(t: pd.DataFrame, recipe: Recipe) -> str:
    shown = pd.DataFrame({
        "policy": t["policy"],
        "per item, torchvision v2 (images/s)": [f"{v:,.0f}" for v in t["per_item_images_per_s"]],
        "per sample on the batch, toolkit (images/s)": [f"{v:,.0f}" for v in t["batch_images_per_s"]],
        "speed-up": [f"{v:.1f}x" for v in t["speedup"]],
    })
    r = t.iloc[0]
    return (shown.to_markdown(index=False, disable_numparse=True, colalign=["left", "right", "right", "right"]) +
            f"\n\nAugmentation policies alone (no training) on {r['batches']} batches of {r['bs']} images at "
            f"{r['size']} px, device {r['device']}; randaugment is n=2, m=9.")


def _table(per_row: dict, workers: int, recipe: Recipe, ds, repeats: int, loader_batches: int) -> pd.DataFrame:
    nan = float("nan")
    med = lambda v: statistics.median(v) if v else nan  # noqa: E731
    m = {r: {k: med(v[k]) for k in ("loader", "reading", "epoch")} | {"images": v["images"]}
         for r, v in per_row.items()}
    folder, folder_reading = m.get(1, {}).get("loader", nan), m.get(1, {}).get("reading", nan)
    limit = m.get(5, {}).get("epoch", nan)
    device = str(default_device())
    rows = []
    for r, v in m.items():
        rows.append({"row": r, "pipeline": _name(r, workers),
                     "precision": row_recipe(r, recipe).precision, "channels_last": row_recipe(r, recipe).channels_last,
                     "loader_images_per_s": round(v["loader"], 1), "loader_x_folder": round(v["loader"] / folder, 2),
                     "reading_images_per_s": round(v["reading"], 1),
                     "reading_x_folder": round(v["reading"] / folder_reading, 2),
                     "epoch_seconds": round(v["epoch"], 2),
                     "train_images_per_s": round(v["images"] / v["epoch"], 1) if v["images"] else nan,
                     "epoch_x_limit": round(v["epoch"] / limit, 3),
                     "dataset": Path(str(ds.path)).name, "n_train": ds.n_train, "size": recipe.size,
                     "arch": recipe.arch, "bs": recipe.bs, "device": device, "cores": os.cpu_count(),
                     "repeats": repeats, "loader_batches": loader_batches})
    return pd.DataFrame(rows)


def _name(row: int, workers: int) -> str:
    auto = precision.choice()
    return ROWS[row].format(workers=workers, auto=f"{auto['precision']}" + (" + channels_last" if auto["channels_last"]
                                                                              else ""))


def _markdown(t: pd.DataFrame) -> str:
    num = lambda v, f: "" if pd.isna(v) else format(v, f)  # noqa: E731
    shown = pd.DataFrame({
        "#": t["row"], "pipeline": t["pipeline"],
        "loader images/s": [num(v, ",.0f") for v in t["loader_images_per_s"]],
        "× folder (1)": [num(v, ".1f") for v in t["loader_x_folder"]],
        "reading only, images/s": [num(v, ",.0f") for v in t["reading_images_per_s"]],
        "reading × folder (1)": [num(v, ".1f") for v in t["reading_x_folder"]],
        "epoch (s)": [num(v, ".1f") for v in t["epoch_seconds"]],
        "train images/s": [num(v, ".1f") for v in t["train_images_per_s"]],
        "epoch ÷ limit (5)": [num(v, ".3f") for v in t["epoch_x_limit"]],
    })
    r = t.iloc[0]
    note = (f"{r['dataset']} ({r['n_train']:,} training images), {r['size']} px, {r['arch']}, bs {r['bs']}, "
            f"one one-cycle epoch per row, device {r['device']} ({r['cores']} cores), medians of {r['repeats']} "
            f"round(s), loader columns over {r['loader_batches']} batches. The loader column includes the batch "
            f"augmentation; reading only is the same DataLoader without it.")
    return shown.to_markdown(index=False, disable_numparse=True,
                             colalign=["right", "left"] + ["right"] * 7) + "\n\n" + note
