"""What a dataset holds, and whether it is sound before anything is compared on it: what `toolkit data show` and
`toolkit data check` print, and the line or two a run says before it trains (`warnings`).

Everything here reads the loaded dataset and the cached decode pass of its files (toolkit/data/scan.py): nothing
is decoded again.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .datasets import SPLITS, Dataset, cache_json, readable, scan_of

SHOWN = 5   # duplicates and files named in full; the rest counted


@dataclass
class DataReport:
    """A dataset's report as markdown; `problems`: what makes a comparison on it meaningless (a non-zero exit)."""
    title: str
    parts: list[str]
    problems: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        return "\n\n".join([f"## {self.title}", *self.parts])

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.markdown()


def counts(ds: Dataset):
    """Images per class and split, with each class's share of validation images, as a DataFrame."""
    import pandas as pd
    per = {s: Counter(ds.labels[s]) for s in SPLITS}
    rows = [{"class": readable(c), "train": per["train"][c], "val": per["val"][c],
             "val share": f"{per['val'][c] / max(1, per['train'][c] + per['val'][c]):.0%}"} for c in ds.classes]
    rows.append({"class": "all", "train": sum(per["train"].values()), "val": sum(per["val"].values()),
                 "val share": f"{len(ds.files['val']) / max(1, len(ds.files['train']) + len(ds.files['val'])):.0%}"})
    return pd.DataFrame(rows)


def _about(ds: Dataset) -> list[str]:
    """How the toolkit read the dataset, in words."""
    described = ds.describe()
    lines = [f"- source: {ds.path}", f"- labels: {described['read']}", f"- split: {described['split']}",
             f"- {len(ds.classes)} classes; {len(ds.files['train']):,} training and {len(ds.files['val']):,} "
             f"validation images; default size {ds.default_size} px"]
    proxy = described.get("proxy_of")
    if proxy:
        lines.append(f"- a proxy of {proxy.get('source')} ({proxy.get('read')}; split: {proxy.get('split')}): "
                     f"{proxy.get('per_class')} training images per class of {len(proxy.get('classes', []))} of its "
                     f"{proxy.get('of_classes')} classes, {proxy.get('size')} px, seed {proxy.get('seed')}")
    return lines


def show(ds: Dataset) -> DataReport:
    """What the toolkit resolved: the source, how labels and split were decided, the classes and their counts."""
    return DataReport(f"Dataset {ds.name}", ["\n".join(_about(ds)),
                                              counts(ds).to_markdown(index=False)])


# --- soundness ---------------------------------------------------------------------------------------------------

@dataclass
class Duplicates:
    """Groups of files holding the same image: the same bytes (`exact`), or other bytes with the same pixels at a
    small size (`near`: re-encoded or resized). Each group: [(split, relative path, label)]."""
    exact: list[list[tuple]]
    near: list[list[tuple]]

    def across(self) -> list[list[tuple]]:
        """The groups found in training and in validation alike."""
        return [g for g in self.exact + self.near if {s for s, _, _ in g} == set(SPLITS)]

    def val_with_copy(self) -> int:
        """Validation images with a copy in training (each counted once, in however many groups)."""
        return len({rel for g in self.across() for s, rel, _ in g if s == "val"})


NEAR_GREY = 2.0   # near duplicates: grey thumbnails at most this many levels apart on average. Measured with
# bench/near_duplicates.py (docs/datasets.md): re-encoded and resized copies of real photos come within it 99.98% of
# the time, distinct photos of one class no closer than 6.5, distinct scikit-learn digits no closer than 3.7. A
# difference hash, also required before, missed 15% of the copies (a flat region flips its bits).
BLOCK = 4         # the candidate search compares thumbnails summed in BLOCK x BLOCK px blocks first


def duplicates(ds: Dataset) -> Duplicates:
    found = scan_of(ds)
    items = [(s, ds.relative(f), c) for s in SPLITS for f, c in ds.items(s) if "bytes" in found.get(ds.relative(f), {})]
    by_bytes = defaultdict(list)
    for item in items:
        by_bytes[found[item[1]]["bytes"]].append(item)
    exact = [g for g in by_bytes.values() if len(g) > 1]
    contents = sorted(by_bytes)   # one entry per content: near duplicates are other bytes
    groups = cache_json("duplicates", f"{ds.scan_key}-grey{NEAR_GREY:g}-{len(contents)}", lambda: _near_groups(
        [found[by_bytes[b][0][1]]["thumb"] for b in contents]))
    near = [[x for i in g for x in by_bytes[contents[i]]] for g in groups]
    return Duplicates(exact, near)


def _near_groups(thumbs: list[str]) -> list[list[int]]:
    """Indices of near-identical pictures, grouped (a group links pictures each near another in it).

    The search misses no pair: two thumbnails within NEAR_GREY levels on average are within NEAR_GREY x pixels in
    L1 distance, and so are their sums over blocks (the triangle inequality), so scipy's KD-tree finds every such
    pair among the block sums (16 numbers, where a tree prunes well), and each candidate is then tested whole. A
    flat thumbnail (one grey level) is no picture to match: without that, a dataset of blank frames would pair them
    all."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    if len(thumbs) < 2:
        return []
    grey = np.array([np.frombuffer(bytes.fromhex(t), np.uint8) for t in thumbs], dtype=np.int32)
    keep = np.flatnonzero(grey.min(axis=1) != grey.max(axis=1))
    if len(keep) < 2:
        return []
    side = int(round(grey.shape[1] ** 0.5))
    blocks = grey[keep].reshape(len(keep), side // BLOCK, BLOCK, side // BLOCK, BLOCK).sum(axis=(2, 4))
    limit = NEAR_GREY * grey.shape[1]
    pairs = cKDTree(blocks.reshape(len(keep), -1)).query_pairs(limit, p=1, output_type="ndarray")
    if not len(pairs):
        return []
    a, b = keep[pairs[:, 0]], keep[pairs[:, 1]]
    close = np.abs(grey[a] - grey[b]).sum(axis=1) <= limit
    a, b = a[close], b[close]
    n, label = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(len(thumbs),) * 2), directed=False)
    out = defaultdict(list)
    for i in np.unique(np.concatenate([a, b])):
        out[label[i]].append(int(i))
    return [sorted(g) for g in out.values() if len(g) > 1]


def _group(g: list[tuple]) -> str:
    return " = ".join(f"{rel} ({readable(c)})" for _, rel, c in g[:4]) + (f" and {len(g) - 4} more" if len(g) > 4 else "")


def missing(ds: Dataset) -> list[str]:
    """Training classes without a single validation image."""
    return [c for c in ds.classes if c not in set(ds.labels["val"])]


def check(ds: Dataset) -> DataReport:
    """Images per class and split with the imbalance, classes missing from a split, unreadable files, exact and
    near duplicates within and across splits, image sizes and modes; and what makes a comparison meaningless."""
    found = scan_of(ds)
    parts = ["\n".join(_about(ds)), counts(ds).to_markdown(index=False)]
    problems = []
    findings = []
    per = Counter(ds.labels["train"])
    if per:
        big, small = max(per.values()), min(per.values())
        findings.append(f"- imbalance: the largest training class has {big / small:.1f} times the images of the "
                        f"smallest ({big:,} against {small:,})")
    lacking = missing(ds)
    if lacking:
        findings.append(f"- missing from validation: {', '.join(map(readable, lacking))}: the accuracy says "
                        f"nothing about {'this class' if len(lacking) == 1 else 'these classes'}")
    val_classes = set(ds.labels["val"])
    if len(val_classes) < 2:
        problems.append(f"validation holds {len(val_classes)} class: its accuracy cannot tell one model's "
                        f"classification from another's")
    findings.append(f"- unreadable files: {len(ds.bad_files):,}" + (
        f" (skipped), e.g. {', '.join(ds.bad_files[:SHOWN])}" if ds.bad_files else ""))
    dup = duplicates(ds)
    for kind, groups, how in [("exact", dup.exact, "the same bytes"),
                              ("near", dup.near, "other bytes, the same pixels at a small size")]:
        within = {s: [g for g in groups if {x for x, _, _ in g} == {s}] for s in SPLITS}
        across = [g for g in groups if {x for x, _, _ in g} == set(SPLITS)]
        findings.append(f"- {kind} duplicates ({how}): {len(within['train'])} group(s) within training, "
                        f"{len(within['val'])} within validation, {len(across)} across the two"
                        + "".join(f"\n  - {_group(g)}" for g in across[:SHOWN]))
    conflicts = [g for g in dup.exact + dup.near if len({c for _, _, c in g}) > 1]
    if conflicts:
        findings.append(f"- the same image under different labels: {len(conflicts)} group(s)"
                        + "".join(f"\n  - {_group(g)}" for g in conflicts[:SHOWN]))
    n_val, copied = len(ds.files["val"]), dup.val_with_copy()
    if copied:
        findings.append(f"- {copied:,} of {n_val:,} validation images ({copied / n_val:.1%}) have a copy in training: "
                        f"on those the validation accuracy measures memory, not generalisation, and favours a recipe "
                        f"that memorises")
    if n_val and copied >= n_val:
        problems.append("every validation image has a copy in training: the validation accuracy measures memory only")
    sides = [min(i["size"]) for i in found.values() if "size" in i]
    modes = Counter(i["mode"] for i in found.values() if "mode" in i)
    if sides:
        findings.append(f"- image sizes: shorter side {min(sides)} to {max(sides)} px (median "
                        f"{statistics.median(sides):g}); modes: {', '.join(f'{m} {n:,}' for m, n in modes.most_common())}")
    parts.append("\n".join(findings))
    parts.append("**Verdict:** " + ("a comparison on this dataset is meaningless: " + "; ".join(problems) + "."
                                    if problems else "nothing here makes a comparison meaningless"
                                    + ("; read the findings above." if lacking or copied else ".")))
    return DataReport(f"Check of dataset {ds.name}", parts, problems)


def before_run(ds: Dataset) -> list[str]:
    """What a run says before it trains, in a line or two, when the check would warn; it refuses nothing."""
    lines, lacking = [], missing(ds)
    if lacking:
        lines.append(f"Data: validation has no image of {', '.join(map(readable, lacking[:SHOWN]))}"
                     f"{' ...' if len(lacking) > SHOWN else ''}: the accuracy says nothing about "
                     f"{'that class' if len(lacking) == 1 else 'those classes'} (toolkit data check {ds.name}).")
    copied, n_val = duplicates(ds).val_with_copy(), len(ds.files["val"])
    if copied:
        lines.append(f"Data: {copied:,} of {n_val:,} validation images ({copied / n_val:.1%}) have a copy in "
                     f"training, so the accuracy partly measures memory (toolkit data check {ds.name}).")
    return lines
