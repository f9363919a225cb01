"""Feature lists -> sparse counts: the hot loop shared by the sentiment model, the aspect model
and the corpus block, written once."""

from __future__ import annotations

from collections import Counter
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


def tfidf_values(
    rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, idf: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sublinear tf x idf of each (row, col) entry, L2-normalised per row — or per ``groups``
    id when a row holds several blocks normalised apart (words and chars). The weighting every
    trained model and the corpus block use, written once."""
    x = (1 + np.log(counts)) * idf[cols]
    g = rows if groups is None else groups
    norms = np.sqrt(np.bincount(g, weights=x * x))[g]
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def idf_vocabulary(feature_lists: Iterable[Iterable[str]], min_df: int) -> tuple[list[str], np.ndarray]:
    """The features seen in at least ``min_df`` documents (sorted) and their smoothed idf,
    ``log((1 + n) / (1 + df)) + 1`` — what training fits for :func:`tfidf_values`."""
    df: Counter[str] = Counter()
    n = 0
    for feats in feature_lists:
        df.update(set(feats))
        n += 1
    vocab = sorted(f for f, k in df.items() if k >= min_df)
    return vocab, np.array([np.log((1 + n) / (1 + df[f])) + 1 for f in vocab], dtype=np.float64)
