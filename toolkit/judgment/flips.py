"""Which images changed: the validation images two rows get differently on most of their paired seeds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .evidence import _load


@dataclass(frozen=True)
class Flips:
    """The validation images a recipe (a) and another (b) get differently on most of their paired seeds, from the
    runs' predictions, in the canonical order of the validation files (sorted relative paths, `valid_hash`)."""
    seeds: list
    labels: np.ndarray          # each image's class index
    a_only: np.ndarray          # per image: seeds on which a is right and b wrong
    b_only: np.ndarray          # per image: seeds on which b is right and a wrong
    valid_hash: str

    @property
    def helped(self) -> np.ndarray:
        """Images a gets right and b wrong on most seeds."""
        return np.flatnonzero(self.a_only > len(self.seeds) / 2)

    @property
    def hurt(self) -> np.ndarray:
        return np.flatnonzero(self.b_only > len(self.seeds) / 2)


def flips(a_dirs, b_dirs, key: str = "plain") -> Flips:
    """The images two rows' models get differently, seed by seed (`a_dirs`, `b_dirs`: run folders by seed). A
    clear error where a run kept no predictions, a file is damaged, or the two were validated on other images."""
    from ..errors import ToolkitError
    seeds = sorted(set(a_dirs.index) & set(b_dirs.index))
    if not seeds:
        raise ToolkitError("--flips: the two rows have no seed in common to pair.")
    a_only = b_only = labels = None
    hashes = set()
    for seed in seeds:
        pair = []
        for dirs in (a_dirs, b_dirs):
            got, why = _load(str(dirs[seed]))
            if why:
                raise ToolkitError(f"--flips: {why}")
            if got is None or key not in got:
                raise ToolkitError(f"--flips: the run {dirs[seed]} kept no predictions (it was recorded before runs "
                                   f"kept them): run it again (`toolkit run --config {dirs[seed]}/recipe.json --rerun`).")
            pair.append(got)
        a, b = pair
        hashes |= {a["valid_hash"], b["valid_hash"]}
        if len(hashes) > 1 or not np.array_equal(a["labels"], b["labels"]):
            raise ToolkitError("--flips: the runs were validated on different images (another split or another "
                               "dataset), so no image can be paired.")
        right_a, right_b = a[key] == a["labels"], b[key] == b["labels"]
        labels = a["labels"]
        a_only = (right_a & ~right_b).astype(int) + (0 if a_only is None else a_only)
        b_only = (right_b & ~right_a).astype(int) + (0 if b_only is None else b_only)
    return Flips(seeds, labels, a_only, b_only, hashes.pop())
