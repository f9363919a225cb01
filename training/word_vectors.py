"""Fitting the aspect model's corpus block: word vectors and word polarity learnt from a large
review corpus that carries only pos/neg labels. The served half (:class:`CorpusWords`: apply
to token lists, save and load) lives in :mod:`app.pipeline.word_vectors`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression

from app.pipeline.word_vectors import CorpusWords


def fit_corpus_words(
    token_lists: Sequence[Sequence[str]],
    labels: Sequence[int],
    *,
    dims: int = 100,
    window: int = 4,
    min_count: int = 5,
    c: float = 1.0,
    seed: int = 0,
) -> CorpusWords:
    """Learn the vectors (positive PMI with context smoothing 0.75, then truncated SVD, rows
    scaled by sqrt of the singular values and normalised) and a logistic word-polarity model
    on the same tf-idf rows the service computes."""
    lowered = [[w.lower() for w in toks if not w.isspace()] for toks in token_lists]
    freq = Counter(w for toks in lowered for w in toks)
    vocab = sorted(w for w, n in freq.items() if n >= min_count)
    index = {w: i for i, w in enumerate(vocab)}
    n_words = len(vocab)
    rows, cols = [], []
    for toks in lowered:
        ids = np.array([index.get(w, -1) for w in toks], dtype=np.int64)
        ids = ids[ids >= 0]  # co-occurrence over the known words, in order
        for k in range(1, window + 1):
            rows.append(ids[:-k]), cols.append(ids[k:])
    r, cc = np.concatenate(rows), np.concatenate(cols)
    co = sp.coo_matrix(
        (np.ones(2 * len(r), np.float64), (np.r_[r, cc], np.r_[cc, r])), shape=(n_words, n_words)
    ).tocsr()
    co.sum_duplicates()
    co = co.tocoo()
    total = co.data.sum()
    row_p = np.asarray(co.sum(axis=1)).ravel() / total
    col_p = np.asarray(co.sum(axis=0)).ravel() ** 0.75
    col_p /= col_p.sum()
    pmi = np.log(co.data / total / row_p[co.row] / col_p[co.col])
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (co.row[keep], co.col[keep])), shape=(n_words, n_words))
    svd = TruncatedSVD(min(dims, n_words - 1), random_state=seed).fit(ppmi)
    vectors = svd.transform(ppmi) / np.sqrt(svd.singular_values_)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9
    doc_freq = Counter(w for toks in lowered for w in set(toks))
    idf = np.array([max(np.log(len(lowered) / (1 + doc_freq[w])), 0.0) for w in vocab])  # 的/了 weigh ~0
    words = CorpusWords(vocab, idf, vectors, np.zeros(n_words), 0.0)
    lr = LogisticRegression(C=c, max_iter=3000).fit(words.weights(lowered), np.asarray(labels))
    return CorpusWords(vocab, idf, vectors, lr.coef_[0], float(lr.intercept_[0]))
