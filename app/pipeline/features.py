"""One feature pass per document, read by every trained model.

A document's words, word bigrams and char 1-3 grams are built once, the first time anything
reads ``doc.features`` (:class:`DocFeatures`), and then:

* the sentiment model reads the words, bigrams and its char n-grams (plus the lexicon hits);
* the aspect model reads the words and char n-grams of the document, and of each clause for
  evidence: a clause's n-grams are *slices* of the document's (:meth:`DocFeatures.clause`),
  never re-featurised from the clause text;
* the aspect model's corpus block reads the words;
* the chat models read the same attributes of each turn's document.

Feature strings are looked up once per document in a :class:`FeatureSpace`, the union of
the vocabularies of the models a pipeline serves (one dict lookup per string); each model then
finds its own columns with an array lookup (:meth:`FeatureSpace.columns`). The ids are cached
on the document, so a second model costs no string work at all.

Feature names (shared with training, which builds the same strings): a word is
``WORD + word.lower()``, a word bigram ``BIGRAM + a + JOIN + b``, a char n-gram the raw
lower-cased substring. Control characters never survive normalisation, so the prefixes cannot
collide with text.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import chain, repeat

import numpy as np

WORD, BIGRAM, JOIN = "\x02", "\x03", "\x01"

_MAX_SLICES = 5002  # texts are at most 5000 characters (longer ones are sliced on the fly)
_S2 = [slice(i, i + 2) for i in range(_MAX_SLICES)]
_S3 = [slice(i, i + 3) for i in range(_MAX_SLICES)]


def char_ngrams(t: str) -> list[str]:
    """Char 1-, 2- and 3-grams of ``t``: all unigrams, then all bigrams, then all trigrams
    (the order :meth:`DocFeatures.clause` relies on).

    >>> char_ngrams("好吃呀")
    ['好', '吃', '呀', '好吃', '吃呀', '好吃呀']
    """
    n = len(t)
    if n + 1 >= _MAX_SLICES:
        return list(t) + [t[i : i + 2] for i in range(n - 1)] + [t[i : i + 3] for i in range(n - 2)]
    get = t.__getitem__
    return [*t, *map(get, _S2[: max(n - 1, 0)]), *map(get, _S3[: max(n - 2, 0)])]


class DocFeatures:
    """The feature pass of one document (normalised text + tokens); every attribute is read-only.

    ``words``
        the tokens lower-cased, whitespace tokens left out, in text order;
    ``raw_words``, ``starts``, ``ends``
        the same tokens as segmented (case kept) and their offsets in ``doc.text``;
    ``word_keys``, ``bigram_keys``
        feature names of the word unigrams and bigrams (``WORD + w``, ``BIGRAM + a + JOIN + b``);
    ``chars``
        char 1-3 grams of the lower-cased text with whitespace removed (aspect and chat models);
    ``sentiment_chars``
        the sentiment model's char n-grams: unigrams without whitespace, 2-3 grams across
        single spaces; the very same list as ``chars`` when the text has no whitespace.
    """

    __slots__ = (
        "text",
        "words",
        "raw_words",
        "word_keys",
        "bigram_keys",
        "despaced",
        "_chars",
        "_sentiment_chars",
        "_low",
        "_tokens",
        "_starts",
        "_ends",
        "_despaced",
        "_exact",
        "_encoded",
    )

    def __init__(self, text: str, tokens: Sequence[tuple[str, int, int]]):
        self.text = text
        self._low = low = text.lower()
        self.despaced = t = "".join(low.split())  # what ``chars`` are the n-grams of
        if len(t) != len(low):  # whitespace: drop whitespace tokens
            tokens = [tok for tok in tokens if not tok[0].isspace()]
            self._despaced = [i for i, c in enumerate(low) if not c.isspace()]
        else:
            self._despaced = None
        self._tokens = tokens
        self._starts = self._ends = self._chars = self._sentiment_chars = self._encoded = None
        self.raw_words = raw = [tok[0] for tok in tokens]
        self.words = words = raw if low == text else [w.lower() for w in raw]
        self.word_keys = [WORD + w for w in words]
        self.bigram_keys = [BIGRAM + a + JOIN + b for a, b in zip(words, words[1:])]
        # Clause slices need lower() to keep positions (it does except for a few letters such as
        # İ) and to be context-free (it is except for final sigma).
        self._exact = len(low) == len(text) and "Σ" not in text

    @property
    def chars(self) -> list[str]:
        """Char 1-3 grams of ``despaced`` (built on first read: the models read their ids,
        :meth:`FeatureSpace.encode`, without building the strings)."""
        if self._chars is None:
            self._chars = char_ngrams(self.despaced)
        return self._chars

    @property
    def has_space(self) -> bool:
        return self._despaced is not None

    @property
    def sentiment_chars(self) -> list[str]:
        """The sentiment model's char n-grams (``chars`` when the text has no whitespace)."""
        if self._despaced is None:
            return self.chars
        if self._sentiment_chars is None:
            low = self._low
            out = [c for c in low if not c.isspace()]
            out += [low[i : i + 2] for i in range(len(low) - 1)]
            out += [low[i : i + 3] for i in range(len(low) - 2)]
            self._sentiment_chars = out
        return self._sentiment_chars

    @property
    def starts(self) -> list[int]:
        """Start offset in ``text`` of each of ``words``."""
        if self._starts is None:
            self._starts = [tok[1] for tok in self._tokens]
        return self._starts

    @property
    def ends(self) -> list[int]:
        """End offset in ``text`` of each of ``words``."""
        if self._ends is None:
            self._ends = [tok[2] for tok in self._tokens]
        return self._ends

    def clause(self, start: int, end: int, items: Sequence | None = None) -> list:
        """The char n-grams of the clause ``text[start:end]`` taken alone, as slices of ``chars``
        (or of ``items``, any list aligned with ``chars``, such as its feature ids).

        >>> f = DocFeatures("好吃，但是贵", [("好吃", 0, 2), ("，", 2, 3), ("但是", 3, 5), ("贵", 5, 6)])
        >>> f.clause(3, 6) == char_ngrams("但是贵")
        True
        """
        items = self.chars if items is None else items
        if not self._exact:  # rare: lower() moved characters; compute from the clause itself
            own = char_ngrams("".join(self.text[start:end].lower().split()))
            if items is self.chars:
                return own
            raise ValueError("clause slices of aligned items need an exact text")
        if self._despaced is None:
            a, b = start, end
        else:
            a, b = bisect_left(self._despaced, start), bisect_left(self._despaced, end)
        n = len(self.despaced)
        out = items[a:b]
        if b - a >= 2:
            out += items[n + a : n + b - 1]
        if b - a >= 3:
            out += items[2 * n - 1 + a : 2 * n - 1 + b - 2]
        return out

    @property
    def exact(self) -> bool:
        """Whether clause n-grams are slices of the document's (see :meth:`clause`)."""
        return self._exact

    def clause_words(self, start: int, end: int) -> tuple[int, int]:
        """The range ``[lo, hi)`` of ``words`` lying wholly inside ``[start, end)`` (tokens are
        contiguous and in order, so those inside a range are consecutive).

        >>> f = DocFeatures("好吃，但是贵", [("好吃", 0, 2), ("，", 2, 3), ("但是", 3, 5), ("贵", 5, 6)])
        >>> f.clause_words(3, 6), f.clause_words(1, 6)
        ((2, 4), (1, 4))
        """
        lo = bisect_left(self.starts, start)
        return lo, max(bisect_right(self.ends, end, lo), lo)

    def encoded(self, space: FeatureSpace) -> Encoded:
        """The feature ids of this document in ``space`` (cached: computed once per space)."""
        enc = self._encoded
        if enc is None or enc.space is not space:
            space.encode([self])
            enc = self._encoded
        return enc


class Encoded:
    """A document's features as ids of one :class:`FeatureSpace` (-1: in no vocabulary), aligned
    with ``words``, ``bigram_keys``, ``chars`` and ``sentiment_chars``."""

    __slots__ = ("space", "words", "bigrams", "chars", "sentiment_chars")

    def __init__(self, space: FeatureSpace, f: DocFeatures, chars: list[int]):
        self.space = space
        self.words = space.ids(f.word_keys)
        self.bigrams = space.ids(f.bigram_keys)
        self.chars = chars
        self.sentiment_chars = space.char_ids(f.sentiment_chars) if f.has_space else chars


class FeatureSpace:
    """The union of several vocabularies (lists of feature names), with one id per distinct name,
    and per vocabulary an array from union id to its own column.

    Char n-grams (names of 1-3 characters that start with no prefix) are kept as sorted integer
    keys (three 21-bit code points): a batch's n-grams are looked up at once in numpy
    (:meth:`encode`), never built as strings, and the hundreds of thousands of them cost a few
    MB rather than a dict's 100. Other names (words, bigrams, lexicon features) are looked up in
    a dict (:meth:`ids`).

    >>> s = FeatureSpace([["a", "b", WORD + "好"], ["b", "c"]])
    >>> ids = np.array(s.char_ids(["b", "c", "zz"]) + s.ids([WORD + "好"]))
    >>> s.columns(0)[ids].tolist(), s.columns(1)[ids].tolist()
    ([1, -1, -1, 2], [0, 1, -1, -1])
    """

    def __init__(self, vocabularies: Sequence[Sequence[str]]):
        split = []
        for vocab in vocabularies:
            is_char = np.fromiter(map(_is_char_gram, vocab), dtype=bool, count=len(vocab))
            grams = np.array([f for f, c in zip(vocab, is_char) if c], dtype="<U3")
            split.append((is_char, _keys(grams)))
        self._char_keys = np.unique(np.concatenate([k for _, k in split])) if split else np.zeros(0, np.int64)
        n_chars = len(self._char_keys)
        index: dict[str, int] = {}
        setdefault = index.setdefault
        union_ids = []
        for vocab, (is_char, keys) in zip(vocabularies, split):
            ids = np.empty(len(vocab), dtype=np.int64)
            ids[is_char] = np.searchsorted(self._char_keys, keys)
            others = [f for f, c in zip(vocab, is_char) if not c]
            ids[~is_char] = [setdefault(f, n_chars + len(index)) for f in others]
            union_ids.append(ids)
        self.index = index
        size = n_chars + len(index)
        self._columns = []
        for ids in union_ids:
            col = np.full(size + 1, -1, dtype=np.int32)  # the last slot answers id -1
            col[ids] = np.arange(len(ids), dtype=np.int32)
            self._columns.append(col)

    def ids(self, names: Sequence[str]) -> list[int]:
        """Union ids of prefixed names (words, bigrams, lexicon features; -1: in no vocabulary)."""
        return list(map(self.index.get, names, repeat(-1)))

    def char_ids(self, grams: Sequence[str]) -> list[int]:
        """Union ids of char n-grams given as strings (-1: in no vocabulary)."""
        if not grams:
            return []
        found = self._lookup(_keys(np.array(grams, dtype="<U3")))
        nul = [i for i, g in enumerate(grams) if "\x00" in g]  # NUL is never text: never a feature
        found[nul] = -1
        return found.tolist()

    def columns(self, k: int) -> np.ndarray:
        """Union id -> column of vocabulary ``k`` (or -1); index it with ids, -1 included."""
        return self._columns[k]

    def encode(self, feats: Sequence[DocFeatures]) -> None:
        """Give every document its :class:`Encoded` ids in this space (those that have them
        already are skipped): words by dict lookups, the char n-grams of the whole batch in one
        vectorised lookup of their integer keys."""
        todo = [f for f in feats if f._encoded is None or f._encoded.space is not self]
        if not todo:
            return
        texts = [f.despaced for f in todo]
        joined = "\x00".join(texts) + "\x00\x00"
        if joined.count("\x00") != len(texts) + 1:  # a NUL inside a text: one by one
            for f in todo:
                f._encoded = Encoded(self, f, self.char_ids(f.chars))
            return
        cp = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        uni = cp[:-2] << 42
        bi = uni | (cp[1:-1] << 21)
        keys = np.concatenate([uni, bi, bi | cp[2:]])  # every position's 1-, 2- and 3-gram
        # Each document's n-grams, in ``chars`` order: its unigrams, then bigrams, then trigrams.
        m = len(uni)
        lengths = np.array([len(t) for t in texts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths[:-1] + 1)])
        seg_len = np.stack([lengths, np.maximum(lengths - 1, 0), np.maximum(lengths - 2, 0)], axis=1).ravel()
        seg_start = (offsets[:, None] + np.array([0, m, 2 * m])).ravel()
        ends = np.cumsum(seg_len)
        take = np.repeat(seg_start - (ends - seg_len), seg_len) + np.arange(ends[-1] if len(ends) else 0)
        wanted, inverse = np.unique(keys[take], return_inverse=True)  # sorted: a cache-friendly search
        ids = self._lookup(wanted)[inverse].tolist()
        per_doc = seg_len.reshape(-1, 3).sum(axis=1).tolist()
        o = 0
        for f, n in zip(todo, per_doc):
            f._encoded = Encoded(self, f, ids[o : o + n])
            o += n

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        if not len(self._char_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(self._char_keys, keys)
        pos[pos == len(self._char_keys)] = 0
        return np.where(self._char_keys[pos] == keys, pos, -1)  # a char n-gram's id is its key's rank


def _is_char_gram(name: str) -> bool:
    return 0 < len(name) <= 3 and name[0] > _LAST_PREFIX and "\x00" not in name


_LAST_PREFIX = "\x07"  # feature-name prefixes are \x01-\x07: names starting above are text


def _keys(grams: np.ndarray) -> np.ndarray:
    """Integer keys of 1-3 character strings (a ``<U3`` array): three 21-bit code points, the
    missing ones 0 (no text holds NUL, so keys of different lengths never collide)."""
    cp = np.ascontiguousarray(grams, dtype="<U3").view(np.uint32).reshape(-1, 3).astype(np.int64)
    return (cp[:, 0] << 42) | (cp[:, 1] << 21) | cp[:, 2]


def counts_by_row(
    id_lists: Sequence[Sequence[int]], columns: np.ndarray, width: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`app.pipeline.sparse.sparse_counts` but from union ids: ``(n, rows, cols,
    counts)``, one entry per (row, known column), sorted by row then column."""
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    flat = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
    cols = columns[flat].astype(np.int64)
    rows = np.repeat(np.arange(len(id_lists), dtype=np.int64), lengths)
    known = cols >= 0
    width = max(width, 1)
    keys, counts = np.unique(rows[known] * width + cols[known], return_counts=True)
    return len(id_lists), keys // width, keys % width, counts


try:  # scipy's own CSR kernels, without the per-call checks of a csr_matrix (~100 us a call)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a scipy that moved them: the public (slower) route
    _csr_matvec = _csr_matvecs = None


def add_product(out: np.ndarray, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, weights: np.ndarray) -> None:
    """``out += A @ weights`` for the sparse ``A`` with entries ``(rows, cols, vals)`` sorted by
    row: scipy's CSR product, accumulating each row's entries in order into ``out`` (float32,
    C-contiguous, like ``weights`` and ``vals``). Adding blocks one after another gives the same
    sums as one product over the blocks side by side."""
    n = out.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    vals = np.ascontiguousarray(vals, dtype=np.float32)
    if _csr_matvecs is None:  # pragma: no cover
        import scipy.sparse as sp

        out += sp.csr_matrix((vals, cols, indptr), shape=(n, weights.shape[0])) @ weights
    elif weights.ndim == 1:
        _csr_matvec(n, weights.shape[0], indptr, cols, vals, weights, out)
    else:
        _csr_matvecs(n, weights.shape[0], weights.shape[1], indptr, cols, vals, weights.ravel(), out.ravel())


def row_sums(rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per-row sums of the rows of ``values`` (entries sorted by row), in entry order, as
    scipy's CSR product accumulates them; zeros for rows without entries."""
    out = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
    if len(rows):
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        out[rows[starts]] = np.add.reduceat(values, starts, axis=0)
    return out
