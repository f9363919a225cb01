"""Splits: the held-out split (reproducible from the texts alone), validation slices of the
training part, and stratification keys for multi-label folds."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.csgraph  # noqa: F401 - sp.csgraph


def heldout_mask(
    texts: Sequence[str], strata: Sequence[str], fraction: float = 0.1, seed: int = 20261122
) -> np.ndarray:
    """The held-out split: within each stratum, the ``fraction`` of rows ranked first by
    sha256(seed, text). Independent of row order and library versions, so a test can
    recompute exactly the split the training run held out."""
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for i, (text, stratum) in enumerate(zip(texts, strata, strict=True)):
        key = hashlib.sha256(f"{seed}\x00{text}".encode()).hexdigest()
        groups[stratum].append((key, i))
    mask = np.zeros(len(texts), dtype=bool)
    for members in groups.values():
        members.sort()
        for _, i in members[: round(len(members) * fraction)]:
            mask[i] = True
    return mask


@dataclass(frozen=True)
class Split:
    """The sentiment split over the review rows: ``held`` (never trained on) and ``train``
    (neither held out, nor a hand-labelled text, nor equal to a held-out text)."""

    texts: list[str]
    strata: list[str]
    held: np.ndarray
    train: np.ndarray
    fraction: float
    seed: int
    record: dict  # metrics.json "split"

    def slice_of_train(self, seed: int) -> np.ndarray:
        """A validation slice of the training rows (a mask over all rows): ``fraction`` of
        them per stratum by :func:`heldout_mask` with another ``seed``."""
        train_idx = np.flatnonzero(self.train)
        sub = heldout_mask([self.texts[i] for i in train_idx], [self.strata[i] for i in train_idx], self.fraction, seed)
        out = np.zeros(len(self.texts), dtype=bool)
        out[train_idx[sub]] = True
        return out


def review_split(
    texts: Sequence[str], strata: Sequence[str], hand_labelled: set[str], fraction: float, seed: int
) -> Split:
    """Hold out ``fraction`` of the reviews per stratum; the hand-labelled texts (the
    calibrator's data) and copies of held-out texts stay out of the training rows."""
    texts, strata = list(texts), list(strata)
    held = heldout_mask(texts, strata, fraction, seed)
    held_texts = {t for t, h in zip(texts, held) if h}
    train = np.array([not h and t not in hand_labelled and t not in held_texts for t, h in zip(texts, held)])
    held_idx = np.flatnonzero(held)
    record = {
        "method": "within each domain x label stratum, the 10% of rows ranked first by "
        "sha256(f'{seed}\\x00{review}') are held out (training.splits.heldout_mask)",
        "seed": seed,
        "fraction": fraction,
        "heldout_rows": int(held.sum()),
        "train_rows": int(train.sum()),
        "excluded_hand_labelled_rows": int(sum(1 for t, h in zip(texts, held) if not h and t in hand_labelled)),
        "heldout_sha256": hashlib.sha256(",".join(map(str, held_idx)).encode()).hexdigest(),
    }
    return Split(texts, strata, held, train, fraction, seed, record)


def strat_keys(y: np.ndarray, folds: int) -> np.ndarray:
    """A stratification key per row for multi-label folds: its rarest pair (rare keys pooled)."""
    freq = y.sum(axis=0)
    keys = np.array([int(np.flatnonzero(r)[np.argmin(freq[np.flatnonzero(r)])]) if r.any() else -1 for r in y])
    counts = Counter(keys.tolist())
    return np.array([k if counts[k] >= folds else -2 for k in keys])


def near_duplicate_groups(texts: Sequence[str], threshold: float = 0.7) -> np.ndarray:
    """A group id per text: texts equal or nearly equal (by :func:`training.corpora.near_duplicates`'
    measure, the overlap coefficient of char 3-gram sets) share a group, transitively, so
    grouped folds never put a text in training and its near-copy in the test fold."""
    from training.corpora import dedupe_key  # corpora imports the service's normaliser

    keys = [dedupe_key(t) for t in texts]
    index: dict[str, int] = {}
    rows, cols, sizes = [], [], []
    for i, k in enumerate(keys):
        grams = {index.setdefault(k[j : j + 3], len(index)) for j in range(len(k) - 2)} or {
            index.setdefault("\x00" + k, len(index))
        }
        rows += [i] * len(grams)
        cols += grams
        sizes.append(len(grams))
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(keys), len(index)))
    size = np.array(sizes)
    inter = (m @ m.T).tocoo()
    smaller = np.minimum(size[inter.row], size[inter.col])
    near = (inter.row < inter.col) & (inter.data >= threshold * smaller)
    graph = sp.csr_matrix((np.ones(near.sum()), (inter.row[near], inter.col[near])), shape=(len(keys),) * 2)
    return sp.csgraph.connected_components(graph, directed=False)[1]


def grouped_folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays of ``folds`` folds stratified by :func:`strat_keys` with every
    group inside one fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), strat_keys(y, folds), groups))
