"""Feature lists -> sparse counts: the hot loop shared by the sentiment model, the aspect model
and the corpus block, written once."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

import numpy as np


def sparse_counts(
    feature_lists: Iterable[list[str]], index: dict[str, int]
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The batch as a sparse count matrix in coordinate form: ``(n_docs, rows, cols, counts)``
    with one entry per (document, known feature), sorted by document.

    The per-feature lookups run in C (``map`` over ``dict.get``) and the counting in numpy:
    this is the hot loop of both trained models. Features outside ``index`` are dropped.
    """
    get = index.get
    flat: list[int] = []
    lengths: list[int] = []
    for feats in feature_lists:
        flat.extend(map(get, feats, repeat(-1)))
        lengths.append(len(feats))
    cols = np.array(flat, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    known = cols >= 0
    width = max(len(index), 1)
    keys, counts = np.unique(rows[known] * width + cols[known], return_counts=True)
    return len(lengths), keys // width, keys % width, counts
