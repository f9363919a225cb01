"""Word vectors and word polarity learnt from a large review corpus with only pos/neg labels.

Why: 1,700 hand-labelled texts cannot teach that 配送, 送货 and 快递小哥 talk about one subject, or
which of 12,000 words lean negative; 50,000 reviews labelled only positive/negative can. The
aspect model adds, per text, the idf-weighted mean of these vectors (PPMI + truncated SVD over
word co-occurrence, window ±4) and the squashed score of a word-level polarity model, both
computed with one sparse product from a text's words.

The state is data only (arrays, numbers, strings) so it rides inside a skops artifact with no
trusted types. This is the served half; fitting it is :func:`training.word_vectors.fit_corpus_words`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from app.pipeline.artifacts import decode_strings, encode_strings
from app.pipeline.sparse import sparse_counts, tfidf_values


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
            raise ValueError(
                f"corpus words: {len(self.vocab)} words, {len(self.idf)} idf values, "
                f"{len(self.polarity)} polarity weights"
            )

    @property
    def width(self) -> int:
        """Columns :meth:`transform` returns: the polarity score, then the vector."""
        return 1 + self.vectors.shape[1]

    def weights(self, token_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """(n, V) sublinear tf x idf of each text's known words, rows L2-normalised."""
        n, rows, cols, counts = sparse_counts(([w.lower() for w in toks] for toks in token_lists), self.index)
        x = tfidf_values(rows, cols, counts, self.idf)
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
        return {
            f"{prefix}vocab": encode_strings(self.vocab),
            f"{prefix}idf": self.idf,
            f"{prefix}vectors": self.vectors,
            f"{prefix}polarity": self.polarity,
            f"{prefix}intercept": self.intercept,
        }

    @classmethod
    def from_state(cls, state: dict, prefix: str) -> CorpusWords:
        return cls(
            decode_strings(state[f"{prefix}vocab"]),
            state[f"{prefix}idf"],
            state[f"{prefix}vectors"],
            state[f"{prefix}polarity"],
            float(state[f"{prefix}intercept"]),
        )


STATE_KEYS = ("vocab", "idf", "vectors", "polarity", "intercept")
