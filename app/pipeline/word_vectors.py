"""Word vectors and word polarity learnt from a large review corpus with only pos/neg labels.

Why: 1,700 hand-labelled texts cannot teach that 配送, 送货 and 快递小哥 talk about one subject, or
which of 12,000 words lean negative; 50,000 reviews labelled only positive/negative can. The
aspect model adds, per text, the idf-weighted mean of these vectors (PPMI + truncated SVD over
word co-occurrence, window ±4) and the squashed score of a word-level polarity model, both
computed with one sparse product from a text's words.

The state is data only (arrays, numbers, strings) so it rides inside a skops artifact with no
trusted types. Training (:func:`fit_corpus_words`) imports scikit-learn lazily.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from app.pipeline.artifacts import decode_strings, encode_strings
from app.pipeline.sparse import sparse_counts

class CorpusWords:
    """Served half: word -> vector and word -> polarity weight, applied to token lists."""

    def __init__(self, vocab: Sequence[str], idf, vectors, polarity, intercept: float):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float32)
        self.vectors = np.asarray(vectors, dtype=np.float32).reshape(len(self.vocab), -1)
        self.polarity = np.asarray(polarity, dtype=np.float32)
        self.intercept = float(intercept)
        if len(self.idf) != len(self.vocab) or len(self.polarity) != len(self.vocab):
            raise ValueError(f"corpus words: {len(self.vocab)} words, {len(self.idf)} idf values, "
                             f"{len(self.polarity)} polarity weights")

    @property
    def width(self) -> int:
        """Columns :meth:`transform` returns: the polarity score, then the vector."""
        return 1 + self.vectors.shape[1]

    def weights(self, token_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """(n, V) sublinear tf x idf of each text's known words, rows L2-normalised."""
        n, rows, cols, counts = sparse_counts(([w.lower() for w in toks] for toks in token_lists), self.index)
        x = (1 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=x * x, minlength=n))[rows]
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        return sp.csr_matrix((x.astype(np.float32), (rows, cols)), shape=(n, len(self.vocab)))

    def transform(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, width): tanh of the polarity score, then the unit-length mean word vector
        (zeros for a text with no known word)."""
        a = self.weights(token_lists)
        z = np.tanh(a @ self.polarity + self.intercept)
        v = np.asarray(a @ self.vectors)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
        return np.hstack([z.reshape(-1, 1), v]).astype(np.float32)

    def state(self, prefix: str) -> dict:
        return {f"{prefix}vocab": encode_strings(self.vocab),
                f"{prefix}idf": self.idf, f"{prefix}vectors": self.vectors,
                f"{prefix}polarity": self.polarity, f"{prefix}intercept": self.intercept}

    @classmethod
    def from_state(cls, state: dict, prefix: str) -> "CorpusWords":
        return cls(decode_strings(state[f"{prefix}vocab"]), state[f"{prefix}idf"], state[f"{prefix}vectors"], state[f"{prefix}polarity"],
                   float(state[f"{prefix}intercept"]))


STATE_KEYS = ("vocab", "idf", "vectors", "polarity", "intercept")


def fit_corpus_words(token_lists: Sequence[Sequence[str]], labels: Sequence[int], *, dims: int = 100,
                     window: int = 4, min_count: int = 5, c: float = 1.0, seed: int = 0) -> CorpusWords:
    """Learn the vectors (positive PMI with context smoothing 0.75, then truncated SVD, rows
    scaled by sqrt of the singular values and normalised) and a logistic word-polarity model
    on the same tf-idf rows the service computes."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import LogisticRegression

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
    co = sp.coo_matrix((np.ones(2 * len(r), np.float64), (np.r_[r, cc], np.r_[cc, r])),
                       shape=(n_words, n_words)).tocsr()
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
