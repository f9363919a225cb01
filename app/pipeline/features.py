"""One feature pass per document, read by every trained model.

A document's words are split out once, the first time anything reads ``doc.features``
(:class:`DocFeatures`); its ids are looked up once per feature space (:meth:`DocFeatures.encoded`),
and then:

* the sentiment model reads the words, bigrams and its char n-grams (plus the lexicon hits);
* the aspect model reads the words and char n-grams of the document, and of each clause for
  evidence: a clause's n-grams are runs of the document's (:meth:`Encoded.clause_runs`),
  never re-featurised from the clause text;
* the aspect model's corpus block reads the words;
* the chat models read the same attributes of each turn's document.

Features are looked up once per document in a :class:`FeatureSpace`, the union of the
vocabularies of the models a pipeline serves, held in a compiled hash table
(``app/pipeline/_native.c``) that reads the words and n-grams straight from the text, without
building their strings; each model then finds its own columns with an array lookup
(:meth:`FeatureSpace.columns`), or reads the ids as its columns when its vocabulary is the first
in the table. The ids are cached on the document, so a second model costs no lookups at all.
The models' counting, weighting and products run in the same extension (:func:`tfidf_product`,
:func:`sentiment_margins`), over runs of those ids (:class:`Rows`).

Feature names (shared with training, which builds the same strings): a word is
``WORD + word.lower()``, a word bigram ``BIGRAM + a + JOIN + b``, a char n-gram the raw
lower-cased substring. Control characters never survive normalisation, so the prefixes cannot
collide with text.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import numpy as np

from app.pipeline import _native

WORD, BIGRAM, JOIN = "\x02", "\x03", "\x01"

_MAX_SLICES = 5002  # texts are at most 5000 characters (longer ones are sliced on the fly)
_S2 = [slice(i, i + 2) for i in range(_MAX_SLICES)]
_S3 = [slice(i, i + 3) for i in range(_MAX_SLICES)]


def char_ngrams(t: str) -> list[str]:
    """Char 1-, 2- and 3-grams of ``t``: all unigrams, then all bigrams, then all trigrams
    (the order ``Vocab.encode`` writes their ids in, and :meth:`DocFeatures.clause` slices).

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
        feature names of the word unigrams and bigrams (``WORD + w``, ``BIGRAM + a + JOIN + b``;
        built on first read: serving reads their ids, :meth:`FeatureSpace.encode`);
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
        "despaced",
        "_chars",
        "_sentiment_chars",
        "_word_keys",
        "_bigram_keys",
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
        self._word_keys = self._bigram_keys = None
        self.raw_words = raw = [tok[0] for tok in tokens]
        self.words = raw if low == text else [w.lower() for w in raw]
        # Clause slices need lower() to keep positions (it does except for a few letters such as
        # İ) and to be context-free (it is except for final sigma).
        self._exact = len(low) == len(text) and "Σ" not in text

    @property
    def word_keys(self) -> list[str]:
        if self._word_keys is None:
            self._word_keys = [WORD + w for w in self.words]
        return self._word_keys

    @property
    def bigram_keys(self) -> list[str]:
        if self._bigram_keys is None:
            w = self.words
            self._bigram_keys = [BIGRAM + a + JOIN + b for a, b in zip(w, w[1:])]
        return self._bigram_keys

    @property
    def chars(self) -> list[str]:
        """Char 1-3 grams of ``despaced`` (built on first read: the models read their ids,
        :meth:`FeatureSpace.encode`, without building the strings)."""
        if self._chars is None:
            self._chars = char_ngrams(self.despaced)
        return self._chars

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

    def clause(self, start: int, end: int) -> list[str]:
        """The char n-grams of the clause ``text[start:end]`` taken alone, as slices of ``chars``.

        >>> f = DocFeatures("好吃，但是贵", [("好吃", 0, 2), ("，", 2, 3), ("但是", 3, 5), ("贵", 5, 6)])
        >>> f.clause(3, 6) == char_ngrams("但是贵")
        True
        """
        if not self._exact:  # rare: lower() moved characters; compute from the clause itself
            return char_ngrams("".join(self.text[start:end].lower().split()))
        chars = self.chars
        return [x for a, b in self.clause_segments(start, end) for x in chars[a:b]]

    def clause_segments(self, start: int, end: int) -> tuple[tuple[int, int], ...]:
        """Where the char n-grams of the clause ``text[start:end]`` taken alone lie in ``chars``:
        its unigrams, bigrams and trigrams are three runs (only for an :attr:`exact` text).

        >>> f = DocFeatures("好吃，但是贵", [("好吃", 0, 2), ("，", 2, 3), ("但是", 3, 5), ("贵", 5, 6)])
        >>> f.clause_segments(3, 6)
        ((3, 6), (9, 11), (14, 15))
        """
        ((a, b),) = self.despaced_spans([(start, end)])
        n = len(self.despaced)
        tri = n + max(n - 1, 0)  # where the trigrams start
        return (a, b), (n + a, n + max(b - 1, a)), (tri + a, tri + max(b - 2, a))

    def despaced_spans(self, spans: Sequence[tuple[int, int]]) -> Sequence[tuple[int, int]]:
        """``(start, end)`` spans of ``text`` as spans of ``despaced`` (the same without whitespace)."""
        if self._despaced is None:
            return spans
        at = self._despaced
        return [(bisect_left(at, a), bisect_left(at, b)) for a, b in spans]

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
        return self.word_spans([(start, end)])[0]

    def word_spans(self, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """:meth:`clause_words` of each span."""
        starts, ends = self.starts, self.ends
        out = []
        for a, b in spans:
            lo = bisect_left(starts, a)
            hi = bisect_right(ends, b, lo)
            out.append((lo, hi if hi > lo else lo))
        return out

    def encoded(self, space: FeatureSpace) -> Encoded:
        """The feature ids of this document in ``space`` (cached: computed once per space)."""
        enc = self._encoded
        if enc is None or enc.space is not space:
            low = self._low if self._despaced is not None else None
            ids = np.frombuffer(space.vocab.encode(self.despaced, low, self.words), dtype=np.int32)
            enc = self._encoded = Encoded(space, self, ids)
        return enc


class Encoded:
    """A document's features as int32 ids of one :class:`FeatureSpace` (-1: in no vocabulary),
    in one array: ``words | bigrams | chars | sentiment_chars``, the last only when the text has
    whitespace (otherwise the sentiment model reads ``chars``). The models read runs of it
    (:class:`Rows`), never copies; the ``*_runs`` methods give a row's runs for the array placed
    at ``base`` in a batch (:meth:`Rows.attach`)."""

    __slots__ = ("space", "ids", "n_words", "chars_at", "chars_end")

    def __init__(self, space: FeatureSpace, f: DocFeatures, ids: np.ndarray):
        self.space = space
        self.ids = ids
        self.n_words = len(f.words)
        self.chars_at = self.n_words + max(self.n_words - 1, 0)
        n = len(f.despaced)
        self.chars_end = self.chars_at + n + max(n - 1, 0) + max(n - 2, 0)

    @property
    def words(self) -> tuple[int, int]:
        return 0, self.n_words

    @property
    def chars(self) -> tuple[int, int]:
        return self.chars_at, self.chars_end

    def sentiment_runs(self, base: int) -> tuple[int, ...]:
        """What the sentiment model reads: words, bigrams and its char n-grams."""
        end, n = self.chars_end, len(self.ids)
        return (base, base + end) if end == n else (base, base + self.chars_at, base + end, base + n)

    def aspect_runs(self, base: int) -> tuple[int, ...]:
        """What the aspect model reads of the whole document: chars and words."""
        return base + self.chars_at, base + self.chars_end, base, base + self.n_words

    def clause_runs(self, f: DocFeatures, base: int, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        """What the aspect model reads of each clause ``text[start:end]`` taken alone: its char
        n-grams (unigram, bigram and trigram runs) and the words inside it, 8 ints per clause for
        :meth:`Rows.add_rows`; and each clause's words alone, 2 ints per clause (an
        :attr:`DocFeatures.exact` text only). Compiled (``_native.clause_rows``): a clause's
        runs are a few bisections, too little work for Python's per-clause overhead."""
        return _native.clause_rows(spans, f.starts, f.ends, f._despaced, len(f.despaced), self.chars_at, base)


Vocabulary = Sequence[str] | bytes | np.ndarray
"""Feature names: a list of them, or the NUL-joined UTF-8 blob an artifact stores."""


def _is_strings(vocab: Vocabulary) -> bool:
    return not isinstance(vocab, bytes | bytearray | memoryview | np.ndarray)


def _count(vocab: Vocabulary) -> int:
    if _is_strings(vocab):
        return len(vocab)
    blob = np.frombuffer(vocab, dtype=np.uint8)
    return int(np.count_nonzero(blob == 0)) + 1 if len(blob) else 0


class FeatureSpace:
    """The union of several vocabularies (lists of feature names, or an artifact's NUL-joined
    UTF-8 blob of them, decoded one name at a time), with one id per distinct name,
    and per vocabulary an array from union id to its own column.

    The names live in one compiled hash table (``_native.Vocab``, :attr:`vocab`): a document's
    words, bigrams and char n-grams are looked up from its text and words
    (:meth:`DocFeatures.encoded`) without building a string per feature, and the half a million
    names cost 26 MB rather than a dict's 100.

    >>> s = FeatureSpace([["a", "b", WORD + "好"], ["b", "c"]])
    >>> ids = np.append(s.ids(["b", "c", "zz", WORD + "好"]), -1)
    >>> s.columns(0)[ids].tolist(), s.columns(1)[ids].tolist()
    ([1, -1, -1, 2, -1], [0, 1, -1, -1, -1])
    """

    def __init__(self, vocabularies: Sequence[Vocabulary]):
        self.vocab = _native.Vocab()
        self.vocab.reserve(sum(_count(v) for v in vocabularies))
        union_ids = [
            np.frombuffer(self.vocab.add(list(v)) if _is_strings(v) else self.vocab.add_joined(v), dtype=np.int32)
            for v in vocabularies
        ]
        self.vocab.shrink()
        self._union_ids = union_ids
        self._columns: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.vocab)

    def ids(self, names: Sequence[str]) -> np.ndarray:
        """Union ids (int32) of feature names (-1: in no vocabulary)."""
        return np.frombuffer(self.vocab.lookup(names), dtype=np.int32)

    def columns(self, k: int) -> np.ndarray:
        """Union id -> column of vocabulary ``k`` (or -1); index it with ids, -1 included."""
        if k not in self._columns:
            col = np.full(len(self.vocab) + 1, -1, dtype=np.int32)  # the last slot answers id -1
            ids = self._union_ids[k]
            col[ids] = np.arange(len(ids), dtype=np.int32)
            self._columns[k] = col
        return self._columns[k]

    def kernel_columns(self, k: int) -> np.ndarray | None:
        """:meth:`columns` for the kernels: None when the ids of vocabulary ``k`` are its columns
        (the first vocabulary, if it repeats no name), which spares a lookup per feature (and
        the map: 2 MB for the sentiment vocabulary)."""
        ids = self._union_ids[k]
        return None if np.array_equal(ids, np.arange(len(ids))) else self.columns(k)


class Rows:
    """A batch's rows for the compiled kernels. Id arrays are laid end to end once
    (:meth:`attach`); each row reads runs of them (:meth:`add`). Rows made with ``share`` read
    the same arrays, attached once for both."""

    def __init__(self, share: Rows | None = None):
        self._pool = share._pool if share is not None else _Pool()
        self._segs: list[int] = []
        self._rowptr = [0]

    def attach(self, ids: np.ndarray) -> int:
        """Where ``ids`` start in the batch (an array attached twice is stored once)."""
        return self._pool.attach(ids)

    def add(self, *runs: int) -> None:
        """One row, reading ``[runs[0], runs[1])``, ``[runs[2], runs[3])``, … of the batch."""
        self._segs += runs
        self._rowptr.append(len(self._segs) >> 1)

    def add_rows(self, runs: Sequence[int], per_row: int) -> None:
        """Rows of ``per_row`` runs each, their ``2 * per_row`` ints one after another."""
        first = len(self._segs) >> 1
        self._segs += runs
        self._rowptr += range(first + per_row, (len(self._segs) >> 1) + 1, per_row)

    def __len__(self) -> int:
        return len(self._rowptr) - 1

    def buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._pool.ids(), np.array(self._segs, dtype=np.int64), np.array(self._rowptr, dtype=np.int64)


class _Pool:
    def __init__(self):
        self._arrays: list[np.ndarray] = []
        self._base: dict[int, int] = {}
        self._size = 0
        self._ids: np.ndarray | None = None

    def attach(self, ids: np.ndarray) -> int:
        base = self._base.get(id(ids))
        if base is None:
            base = self._base[id(ids)] = self._size
            self._arrays.append(ids)
            self._size += len(ids)
            self._ids = None
        return base

    def ids(self) -> np.ndarray:
        if self._ids is None:
            ids = np.concatenate(self._arrays) if self._arrays else np.zeros(0, dtype=np.int32)
            self._ids = np.ascontiguousarray(ids, dtype=np.int32)
        return self._ids


class CountTable:
    """``fn(counts)`` for counts 0..n as a dtype array, grown on demand: how a count becomes a
    feature value, computed by numpy (so the kernels round as numpy does, not as libm)."""

    def __init__(self, fn, dtype):
        self._fn, self._dtype = fn, dtype
        self.table = np.zeros(0, dtype=dtype)
        self.grow(1024)

    def grow(self, n: int) -> None:
        if len(self.table) < n:
            table = np.zeros(max(n, 2 * len(self.table)), dtype=self._dtype)
            table[1:] = self._fn(np.arange(1, len(table)))
            self.table = table


LOG_COUNT = CountTable(lambda c: 1 + np.log(c), np.float64)
"""``1 + log count``: the sublinear tf of :func:`app.pipeline.sparse.tfidf_values`."""


def _with_table(kernel, head: tuple, table: CountTable, tail: tuple) -> None:
    """``kernel(*head, table, *tail)``, growing the count table first when a row could count past it."""
    while (need := kernel(*head, table.table, *tail)) is not None:
        table.grow(need)


def tfidf_product(
    rows: Rows,
    columns: np.ndarray | None,
    idf: np.ndarray,
    groups: np.ndarray | None,
    weights: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out += X @ weights`` where ``X`` holds each row's sublinear tf-idf
    (:func:`app.pipeline.sparse.tfidf_values`: counts of its known columns, L2-normalised within
    each ``groups`` value, 0 or 1 per column; None: one group), in float32 as scipy sums it.
    ``columns``: :meth:`FeatureSpace.kernel_columns`."""
    ids, segs, rowptr = rows.buffers()
    head = (ids, segs, rowptr, _int32(columns), np.ascontiguousarray(idf, dtype=np.float64))
    tail = (
        None if groups is None else np.ascontiguousarray(groups, dtype=np.uint8),
        np.ascontiguousarray(weights, dtype=np.float32),
        _writable(out, np.float32, (len(rows), *weights.shape[1:])),
    )
    _with_table(_native.tfidf_product, head, LOG_COUNT, tail)


def sentiment_margins(
    rows: Rows, columns: np.ndarray | None, values: CountTable, weights: np.ndarray, intercept: float
) -> np.ndarray:
    """Per row ``sum(v * u) / sqrt(sum(v * v * s2)) + intercept`` over its known columns, with
    ``v = values(count)`` and ``weights[col] = (s2, u)`` (float32 products, float64 sums: the
    sentiment model's margin). ``columns``: :meth:`FeatureSpace.kernel_columns`."""
    ids, segs, rowptr = rows.buffers()
    out = np.zeros(len(rows), dtype=np.float64)
    tail = (np.ascontiguousarray(weights, dtype=np.float32), intercept, out)
    _with_table(_native.sentiment_margins, (ids, segs, rowptr, _int32(columns)), values, tail)
    return out


def _int32(columns: np.ndarray | None) -> np.ndarray | None:
    return None if columns is None else np.ascontiguousarray(columns, dtype=np.int32)


def add_dense(out: np.ndarray, x: np.ndarray, weights: np.ndarray) -> None:
    """``out += x @ weights`` summed over the nonzeros of each row of ``x`` in column order, in
    float32: the same sums as scipy's CSR product of ``x``'s nonzeros."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    _native.add_dense(
        x,
        np.ascontiguousarray(weights, dtype=np.float32),
        _writable(out, np.float32, (x.shape[0], *weights.shape[1:])),
        x.shape[0],
        x.shape[1],
    )


def _writable(out: np.ndarray, dtype, shape: tuple) -> np.ndarray:
    if out.dtype != dtype or not out.flags.c_contiguous or out.shape != shape:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}")
    return out
