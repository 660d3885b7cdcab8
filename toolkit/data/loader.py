"""fastai DataLoaders that serve whole batches straight from a pack's memory map.

No per-item work: a batch is one fancy-indexed read of N x S x S x 3 uint8 rows, optionally prepared by a
background thread while the model trains on the previous one, then moved to the device (pinned first when it is a
GPU), where `BatchAugment` crops, flips and resizes every sample. The result is a fastai `TfmdDL`, so Learner,
MixUp, TTA (`set_split_idx`), `show_batch` and progressive resizing work on it unchanged.
"""
from __future__ import annotations

import contextlib
import copy
import queue
import threading

import numpy as np
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import Category, CategoryMap
from fastai.torch_core import TensorCategory, TensorImage, default_device
from fastcore.basics import chunked

from .pack import Pack


class PackedItems:
    """One split of a pack, seen as a dataset: (TensorImage uint8 3xSxS, TensorCategory) per index."""
    # Stated, so that fastai never runs a hidden augmentation pass to find it out (TfmdDL.n_inp -> _one_pass):
    # that pass draws random numbers on a DataLoader's first batch, which a resumed run would draw again.
    n_inp = 1

    def __init__(self, pack: Pack, split: str, split_idx: int):
        self.pack, self.split, self.split_idx = pack, split, split_idx
        self.images, self.labels = pack.images(split), pack.labels(split)
        self.vocab = CategoryMap(list(pack.vocab), sort=False)  # as a DataBlock's: interpretation reads o2i
        self.c = len(self.vocab)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return TensorImage(torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)), \
            TensorCategory(int(self.labels[i]))

    def batch(self, idxs) -> tuple[TensorImage, TensorCategory]:
        """Rows `idxs` in one read (sorted, so the memory map is read front to back), channels first."""
        idxs = np.sort(np.asarray(idxs, dtype=np.int64))
        x = torch.from_numpy(self.images[idxs]).permute(0, 3, 1, 2).contiguous()
        return TensorImage(x), TensorCategory(torch.from_numpy(self.labels[idxs]))

    @contextlib.contextmanager
    def set_split_idx(self, i: int):
        """What fastai's TTA uses to draw training augmentation on validation images."""
        old, self.split_idx = self.split_idx, i
        try:
            yield self
        finally:
            self.split_idx = old

    def decode(self, o, full=True):
        x, y = o
        return x, Category(self.vocab[int(y)])


class PackedDL(TfmdDL):
    """A TfmdDL whose batches are read whole from a `PackedItems`; `prefetch` > 0 reads ahead in a thread."""

    def __init__(self, dataset: PackedItems, bs: int = 64, prefetch: int = 0, **kwargs):
        kwargs.setdefault("num_workers", 0)  # a batch is one memory-map read: worker processes would only add copies
        self.prefetch = prefetch
        super().__init__(dataset, bs=bs, **kwargs)

    def create_batches(self, samps):
        reads = (self.dataset.batch(ix) for ix in chunked(samps, self.bs, self.drop_last))
        if not self.prefetch:
            yield from reads
            return
        yield from _read_ahead(reads, self.prefetch)

    def new(self, dataset=None, cls=None, **kwargs):
        kwargs.setdefault("prefetch", self.prefetch)
        return super().new(dataset, cls, **kwargs)


def _read_ahead(it, depth: int):
    """Run iterator `it` in a background thread, at most `depth` items ahead of the consumer.

    Hand-written because torch's prefetching lives in its worker processes, which a memory-map read does not need.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as e:  # re-raised in the consumer, with its traceback
            q.put(e)

    t = threading.Thread(target=work, daemon=True, name="packed-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def packed_dataloaders(pack: Pack, bs: int, tfms: list, prefetch: int | None = None, device=None) -> DataLoaders:
    """Train (shuffled, last partial batch dropped) and valid DataLoaders over `pack`, `tfms` after every batch.

    `tfms` must resize to the training size (a `BatchAugment` first; toolkit/data/pipeline.py builds them).
    `prefetch` None: read 2 batches ahead on a GPU, none on a CPU, where the thread only competes with the
    training step's own threads (measured by `toolkit bench data`: rows 3 and 4).
    """
    device = default_device() if device is None else torch.device(device)
    pin = device.type == "cuda"
    if prefetch is None:
        prefetch = 2 if pin else 0
    dls = []
    for split, split_idx, train in (("train", 0, True), ("val", 1, False)):
        items = PackedItems(pack, split, split_idx)
        dls.append(PackedDL(items, bs=bs, shuffle=train, drop_last=train, prefetch=prefetch, pin_memory=pin,
                            device=device, after_batch=tfms if train else copy.deepcopy(tfms)))
    return DataLoaders(*dls, device=device)
