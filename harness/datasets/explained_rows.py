"""Which test rows a cell explains, and which of them its gallery shows.

A folder read class by class (``NORMAL/`` before ``PNEUMONIA/``) or a table sorted by its
outcome puts one class first, so "the first N test rows" can be one class only — every
localisation score then undefined (no lesion in any explained image). The default is
therefore a **seeded, class-stratified sample** (``explain_sample = "stratified"``): each
class gets its share of the N rows (largest remainders; every class present at least one
row when N allows), drawn at random within the class with the cell's data seed — so every
explainer of a dataset × seed explains the same rows, and the rows are returned in test
order. ``"first"`` keeps the first N rows. When N covers the test split, every row is
explained, in order, either way.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ExplainSample = Literal["stratified", "first"]


def class_quotas(counts: np.ndarray, wanted: int, rng: np.random.Generator) -> np.ndarray:
    """Rows to draw from each class (``counts``: rows per class, all > 0) so that they sum
    to ``wanted`` (≤ counts.sum()): one per class first when ``wanted`` allows, the rest
    shared in proportion to what each class has left, by largest remainders (ties broken
    at random)."""
    quota = np.minimum(counts, 1) if wanted >= len(counts) else np.zeros_like(counts)
    left, room = wanted - int(quota.sum()), counts - quota
    if left == 0:
        return quota
    share = left * room / room.sum()
    extra = np.floor(share).astype(int)
    remainder = share - extra
    order = np.lexsort((rng.random(len(counts)), -remainder))
    extra[order[: left - int(extra.sum())]] += 1
    return quota + extra


def explained_rows(
    labels: np.ndarray, wanted: int, how: ExplainSample = "stratified", seed: int = 0
) -> np.ndarray:
    """Indices (ascending, int64) of the ``wanted`` test rows to explain among those
    labelled ``labels`` — see the module's docstring for the rule."""
    labels = np.asarray(labels)
    n = len(labels)
    if wanted >= n:
        return np.arange(n)
    if how == "first":
        return np.arange(wanted)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quotas = class_quotas(counts, wanted, rng)
    chosen = [
        rng.choice(np.flatnonzero(labels == klass), size=quota, replace=False)
        for klass, quota in zip(classes, quotas, strict=True)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def gallery_rows(labels: np.ndarray, count: int) -> np.ndarray:
    """Positions (into ``labels``, the explained rows' classes) of up to ``count`` images
    for a gallery: taken class by class in turn (class order, then row order), so every
    class present is shown; returned in row order."""
    labels = np.asarray(labels)
    queues = [list(np.flatnonzero(labels == klass)) for klass in np.unique(labels)]
    shown: list[int] = []
    while len(shown) < min(count, len(labels)):
        for queue in queues:
            if queue and len(shown) < count:
                shown.append(int(queue.pop(0)))
    return np.sort(np.array(shown, dtype=np.int64))
