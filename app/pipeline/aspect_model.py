"""The trained aspect scorer: the 18 (aspect, polarity) pairs of ``taxonomy.PAIRS`` from n-grams
and lexicon hits.

What it computes, for a batch of documents, in one sparse matrix product:

* features: char 1-3 grams of the normalised text and jieba word unigrams (1 + log count,
  times idf, each block L2-normalised), plus a small dense block from the lexicon hits
  *after negation* (per dimension and polarity: summed weight, count, how many were
  negated) and the aspect targets named (快递, 客服 …), plus the corpus block
  (:mod:`app.pipeline.word_vectors`: the text's mean word vector and word-polarity score,
  learnt from ~50,000 reviews that carry only a positive/negative label);
* 36 linear scores (``N_LINEAR``): one "direct" score per pair, one "presence" score per
  aspect (either polarity) and one "polarity" score per aspect (negative vs positive, learnt
  only on texts that evaluate that aspect), in that order (``DIRECT_SCORES``,
  ``PRESENCE_SCORES``, ``POLARITY_SCORES``);
* per pair ``raw = direct + min(presence, ±polarity)``, then Platt scaling
  ``p = 1 / (1 + exp(-(a * raw + c)))`` fitted on cross-validated scores, and a per-pair
  threshold on ``p`` (stored per pair: the well-populated pairs share the one value that
  maximised their cross-validated micro-F1, since per-pair optima over-fit; thin pairs get
  their own). A pair too thin to learn gets an unreachable threshold (``NEVER``): the model
  never asserts it on its own;
* per pair, a flag chosen on the same out-of-fold scores: whether a lexicon hit of that
  aspect and polarity also asserts the pair, or alone asserts it (kept only where that raised
  CV F1 — the thin pairs, whose cues the lexicon knows better than 7 examples can teach).
  The reported score is still the model's probability.

Evidence for an asserted pair is the clause(s) holding lexicon hits of that aspect and
polarity; when there are none, the clause whose own score for the pair is highest
(the same model applied to each clause alone: one more matrix product per batch, or, for a
single text, more rows of the document's own product).

The artifact is data only (numpy arrays, numbers, strings): nothing but skops' default
types, so it loads with an empty trusted-types list. Training lives in
:mod:`training.aspects`.
"""

from __future__ import annotations

import json
import logging
import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.core.taxonomy import ASPECTS, KEYWORD_DIMENSIONS, N_PAIRS, PAIR_CODES, PAIRS, POLARITIES
from app.pipeline import _native
from app.pipeline.artifacts import (
    ArtifactError,
    check_state,
    count_strings,
    decode_strings,
    is_configured,
    load_artifact,
)
from app.pipeline.aspects import AspectScorer, LexiconAspectScorer, clause_evidence
from app.pipeline.features import WORD, FeatureSpace, Rows, add_dense, tfidf_product
from app.pipeline.findings import AspectFinding, Doc, KeywordHit
from app.pipeline.segment import LEGACY_SEGMENTER
from app.pipeline.sparse import idf_vocabulary, sparse_counts, tfidf_values
from app.pipeline.word_vectors import STATE_KEYS as CORPUS_KEYS
from app.pipeline.word_vectors import CorpusWords

log = logging.getLogger(__name__)

KIND = "aspects"
STATE_SCHEMA = 2  # 2: the corpus block (word vectors and word polarity)
CLAUSES_AHEAD_BELOW = 2
"""Batches smaller than this score every clause of their documents in the documents' own
product (:meth:`AspectModel.score`); larger ones only the clauses they need, afterwards."""
NEVER = 2.0  # threshold for a pair the model does not assert (probabilities are <= 1)

DIRECT_SCORES = slice(0, N_PAIRS)
"""Columns of the linear scores: one direct score per pair (``PAIRS`` order), ..."""
PRESENCE_SCORES = slice(DIRECT_SCORES.stop, DIRECT_SCORES.stop + len(ASPECTS))
"""... one presence score per aspect (``ASPECTS`` order), ..."""
POLARITY_SCORES = slice(PRESENCE_SCORES.stop, PRESENCE_SCORES.stop + len(ASPECTS))
"""... and one negative-vs-positive score per aspect."""
N_LINEAR = POLARITY_SCORES.stop
"""How many linear models the artifact holds (``coef`` rows)."""

_WORD = WORD
LEX_FEATURES: tuple[str, ...] = tuple(
    [f"{k}:{d}:{p}" for d in KEYWORD_DIMENSIONS for p in POLARITIES for k in ("w", "n", "neg")]
    + [f"t:{d}" for d in ASPECTS]
    + ["len", "clauses"]
)
_LEX_INDEX = {name: i for i, name in enumerate(LEX_FEATURES)}
_LEX_LEN, _LEX_CLAUSES = _LEX_INDEX["len"], _LEX_INDEX["clauses"]


# ---------------------------------------------------------------- features


@dataclass(frozen=True, slots=True)
class View:
    """What the featurizer reads: a whole document or one clause of it."""

    text: str
    words: tuple[str, ...]
    hits: tuple[KeywordHit, ...]
    n_clauses: int


def doc_view(doc: Doc) -> View:
    return View(doc.text, tuple(w for w, _, _ in doc.tokens if not w.isspace()), tuple(doc.hits), len(doc.clauses))


def clause_views(doc: Doc) -> list[View]:
    """One view per clause: its text, the tokens inside it and its lexicon hits (one pass over
    the tokens: clauses and tokens are both in text order)."""
    spans, n = doc.clauses, len(doc.clauses)
    words: list[list[str]] = [[] for _ in range(n)]
    hits: list[list[KeywordHit]] = [[] for _ in range(n)]
    ci = 0
    for w, s, e in doc.tokens:
        while ci < n and s >= spans[ci][1]:
            ci += 1
        if ci == n:
            break
        if spans[ci][0] <= s and e <= spans[ci][1] and not w.isspace():
            words[ci].append(w)
    for h in doc.hits:
        if 0 <= h.clause < n:
            hits[h.clause].append(h)
    return [View(doc.text[a:b], tuple(words[i]), tuple(hits[i]), 1) for i, (a, b) in enumerate(spans)]


def text_features(view: View) -> list[str]:
    """Char 1-3 grams (lower-cased, no spaces) and prefixed word unigrams."""
    t = "".join(view.text.lower().split())
    feats = list(t)
    feats += [t[i : i + 2] for i in range(len(t) - 1)]
    feats += [t[i : i + 3] for i in range(len(t) - 2)]
    feats += [_WORD + w.lower() for w in view.words]
    return feats


def lex_vector(view: View, targets: dict[str, str]) -> np.ndarray:
    """The lexicon block: hit weight/count/negations per (dimension, polarity), targets, size."""
    v = np.zeros(len(LEX_FEATURES), dtype=np.float64)
    for h in view.hits:
        if h.dimension in KEYWORD_DIMENSIONS:
            v[_LEX_INDEX[f"w:{h.dimension}:{h.polarity}"]] += h.weight
            v[_LEX_INDEX[f"n:{h.dimension}:{h.polarity}"]] += 1
            v[_LEX_INDEX[f"neg:{h.dimension}:{h.polarity}"]] += h.negated
    for w in view.words:
        if (d := targets.get(w)) is not None:
            v[_LEX_INDEX[f"t:{d}"]] += 1
    v[_LEX_INDEX["len"]] = math.log1p(len(view.text)) / 5
    v[_LEX_INDEX["clauses"]] = math.log1p(view.n_clauses) / 2
    return v


@dataclass(slots=True)
class Parts:
    """Documents or clauses as the served model reads them from the feature pass, one row each:
    runs of feature ids (char n-grams and words; ``ngrams``), runs of word ids (the corpus
    block; ``words``), and the lexicon block's inputs — its nonzero entries (``lex``: row,
    column, value, in the order :func:`lex_vector` adds them), each row's text length and
    clause count. The same features as :class:`View`, without strings."""

    target_cols: dict[str, int]
    ngrams: Rows = field(default_factory=Rows)
    words: Rows = field(init=False)
    lex: tuple[list[int], list[int], list[float]] = field(default_factory=lambda: ([], [], []))
    lengths: list[int] = field(default_factory=list)
    n_clauses: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.words = Rows(share=self.ngrams)  # the same documents' arrays

    def __len__(self) -> int:
        return len(self.lengths)

    def add_lex(self, hits: Sequence[KeywordHit], targets: Sequence[int], length: int, n_clauses: int) -> None:
        """The next row's lexicon block: its hits, the target columns of its words, its size."""
        row = len(self.lengths)
        rows, cols, vals = self.lex
        for h in hits:
            self._add_hit(row, h)
        if targets:
            rows += [row] * len(targets)
            cols += targets
            vals += [1.0] * len(targets)
        self.lengths.append(length)
        self.n_clauses.append(n_clauses)

    def add_clauses_lex(
        self,
        hits: Sequence[KeywordHit],
        targets: Sequence[tuple[int, int]],
        spans: Sequence[tuple[int, int]],
        words: Sequence[tuple[int, int]],
    ) -> None:
        """One row per clause (``spans``, their word ranges ``words``): what :meth:`add_lex` adds
        for each clause alone, its hits and the targets among its words, in one pass over the
        document's hits and targets (``targets``: :meth:`targets_of` its words). A cell gets its
        entries in the same order: hits and targets fill different columns."""
        first, n = len(self.lengths), len(spans)
        rows, cols, vals = self.lex
        for h in hits:
            if 0 <= h.clause < n:
                self._add_hit(first + h.clause, h)
        if targets:
            starts = [lo for lo, _ in words]
            for k, c in targets:
                i = bisect_right(starts, k) - 1  # the word ranges are in order and disjoint
                if i >= 0 and k < words[i][1]:
                    rows.append(first + i)
                    cols.append(c)
                    vals.append(1.0)
        self.lengths += [b - a for a, b in spans]
        self.n_clauses += [1] * n

    def _add_hit(self, row: int, h: KeywordHit) -> None:
        """A hit's weight, count and negation in ``row`` (none for a dimension without columns)."""
        if (hc := _HIT_COLUMNS.get((h.dimension, h.polarity))) is not None:
            rows, cols, vals = self.lex
            rows += (row, row, row)
            cols += hc
            vals += (h.weight, 1.0, float(h.negated))

    def targets_of(self, words: Sequence[str]) -> list[tuple[int, int]]:
        """(word index, lexicon column) of the aspect targets among ``words``."""
        if self.target_cols.keys().isdisjoint(words):
            return []
        get = self.target_cols.get
        return [(k, c) for k, c in enumerate(map(get, words)) if c is not None]


_HIT_COLUMNS = {
    (d, p): (_LEX_INDEX[f"w:{d}:{p}"], _LEX_INDEX[f"n:{d}:{p}"], _LEX_INDEX[f"neg:{d}:{p}"])
    for d in KEYWORD_DIMENSIONS
    for p in POLARITIES
}


def target_columns(targets: dict[str, str]) -> dict[str, int]:
    """Aspect target word -> its column of the lexicon block."""
    return {w: _LEX_INDEX[f"t:{d}"] for w, d in targets.items()}


def doc_parts(docs: Sequence[Doc], space: FeatureSpace, target_cols: dict[str, int]) -> Parts:
    """Each document whole, from its feature pass (``target_cols``: :func:`target_columns`)."""
    out = Parts(target_cols)
    for d in docs:
        f = d.features
        enc = f.encoded(space)
        base = out.ngrams.attach(enc.ids)
        out.ngrams.add(*enc.aspect_runs(base))
        out.words.add(base, base + enc.n_words)
        out.add_lex(d.hits, [c for _, c in out.targets_of(f.raw_words)], len(d.text), len(d.clauses))
    return out


def clause_parts(
    docs: Sequence[Doc], space: FeatureSpace, target_cols: dict[str, int], into: Parts | None = None
) -> Parts:
    """Each clause of each document alone, as runs of the document's feature pass (no clause
    is re-featurised: :meth:`Encoded.clause_runs`); the same features as :func:`clause_views`.
    New rows (of ``into``, when given)."""
    out = into if into is not None else Parts(target_cols)
    for doc in docs:
        f = doc.features
        enc = f.encoded(space)
        base = out.ngrams.attach(enc.ids)
        spans = doc.clauses
        if f.exact:
            runs, words = enc.clause_runs(f, base, spans)
            out.ngrams.add_rows(runs, 4)
            out.words.add_rows(words, 1)
            ranges = [(lo - base, hi - base) for lo, hi in zip(words[::2], words[1::2])]
        else:  # rare: lower() moved characters, each clause's n-grams are its own
            ranges = f.word_spans(spans)
            for (a, b), (lo, hi) in zip(spans, ranges):
                own = np.concatenate([space.ids(f.clause(a, b)), enc.ids[lo:hi]])
                at = out.ngrams.attach(own)
                out.ngrams.add(at, at + len(own))
                out.words.add(base + lo, base + hi)
        out.add_clauses_lex(doc.hits, out.targets_of(f.raw_words), spans, ranges)
    return out


class Featurizer:
    """Views -> the model's sparse design matrix (vocabulary, idf and block scales fixed).

    Columns: the n-gram vocabulary, then ``LEX_FEATURES``, then the corpus block
    (``corpus.width`` columns; none when the model was trained without a corpus).
    """

    def __init__(
        self,
        vocab: Sequence[str],
        idf: np.ndarray,
        targets: dict[str, str],
        lex_scale: float,
        corpus: CorpusWords | None = None,
        corpus_scale: float = 1.0,
    ):
        self.vocab = list(vocab)
        self.index = {f: i for i, f in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.is_word = np.array([f.startswith(_WORD) for f in self.vocab], dtype=bool)
        self.targets = dict(targets)
        self.lex_scale = float(lex_scale)
        self.corpus = corpus
        self.corpus_scale = float(corpus_scale)
        self.n_features = len(self.vocab) + len(LEX_FEATURES) + (corpus.width if corpus else 0)

    @classmethod
    def fit(
        cls,
        views: Sequence[View],
        targets: dict[str, str],
        *,
        min_df: int = 2,
        lex_scale: float = 0.5,
        corpus: CorpusWords | None = None,
        corpus_scale: float = 1.0,
    ) -> Featurizer:
        vocab, idf = idf_vocabulary(map(text_features, views), min_df)
        return cls(vocab, idf, targets, lex_scale, corpus, corpus_scale)

    def transform(self, views: Sequence[View]) -> sp.csr_matrix:
        """Sublinear tf-idf, L2-normalised per block (words, chars), the lexicon block and the
        corpus block.

        Vectorised over the whole batch: per-row numpy calls would cost more than the maths.
        """
        n, width = len(views), len(self.vocab)
        _, rows, cols, counts = sparse_counts(map(text_features, views), self.index)
        x = tfidf_values(rows, cols, counts, self.idf, rows * 2 + self.is_word[cols])
        # float32 like the weights: a float64 matrix would make scipy upcast all the weights
        # on every product (~0.4 ms, more than the rest of a one-text request).
        blocks = [sp.csr_matrix((x.astype(np.float32), (rows, cols)), shape=(n, width))]
        lex = np.array([lex_vector(v, self.targets) for v in views]).reshape(n, len(LEX_FEATURES))
        blocks.append(sp.csr_matrix((lex * self.lex_scale).astype(np.float32)))
        if self.corpus is not None:
            dense = self.corpus.transform([v.words for v in views]) * self.corpus_scale
            blocks.append(sp.csr_matrix(dense.astype(np.float32)))
        return sp.hstack(blocks, format="csr")


# ---------------------------------------------------------------- scores


_PRESENCE_OF_PAIR = np.repeat(np.arange(PRESENCE_SCORES.start, PRESENCE_SCORES.stop), 2)
_POLARITY_OF_PAIR = np.repeat(np.arange(POLARITY_SCORES.start, POLARITY_SCORES.stop), 2)
_POLARITY_SIGN = np.tile([-1.0, 1.0], len(ASPECTS))  # x * -1.0 is exactly -x


def combine(lin: np.ndarray) -> np.ndarray:
    """(n, N_LINEAR) linear scores -> (n, N_PAIRS) raw pair scores: direct + min(presence, ±polarity).
    ``PAIRS`` alternate positive, negative per aspect: a positive pair reads -polarity."""
    return lin[:, DIRECT_SCORES] + np.minimum(lin[:, _PRESENCE_OF_PAIR], lin[:, _POLARITY_OF_PAIR] * _POLARITY_SIGN)


def platt(raw: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Calibrated probabilities; the exponent clipped to ±35 (np.clip's value, without its
    per-call dispatch)."""
    return 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(raw * a + c, -35.0), 35.0)))


class AspectModel:
    """The served scorer, rebuilt from the artifact's data-only state dict.

    ``state``: ``schema``, ``vocab`` (uint8 utf-8, features joined by NUL), ``idf``,
    ``targets`` (JSON of term -> dimension), ``lex_features``, ``lex_scale``, ``coef``
    (N_LINEAR x features, float32), ``intercept`` (N_LINEAR), ``platt_a``/``platt_c``/``threshold``
    (N_PAIRS), ``lexicon_union`` (N_PAIRS, 0/1), ``pairs`` (JSON list of ``PAIR_CODES``), ``corpus_scale``
    and ``corpus_vocab``/``_idf``/``_vectors``/``_polarity``/``_intercept`` (the corpus block;
    an empty vocabulary when trained without a corpus).
    """

    _KEYS = (
        "schema",
        "vocab",
        "idf",
        "targets",
        "lex_features",
        "lex_scale",
        "coef",
        "intercept",
        "platt_a",
        "platt_c",
        "threshold",
        "lexicon_union",
        "pairs",
        "corpus_scale",
        *(f"corpus_{k}" for k in CORPUS_KEYS),
    )

    def __init__(self, state: dict, version: str):
        self._check(state)
        self._state = state
        self.version = version
        self.segmenter = str(state.get("segmenter", LEGACY_SEGMENTER))
        vocab = decode_strings(state["vocab"])
        self._n_vocab = len(vocab)
        self._idf = np.asarray(state["idf"], dtype=np.float64)
        self._is_word = np.array([f.startswith(_WORD) for f in vocab], dtype=np.uint8)  # the kernel's groups
        self.targets = json.loads(str(state["targets"]))
        self._target_cols = target_columns(self.targets)
        self.lex_scale = float(state["lex_scale"])
        corpus = CorpusWords.from_state(state, "corpus_")
        self.corpus = corpus if corpus.vocab else None
        self.corpus_scale = float(state["corpus_scale"])
        self._featurizer: Featurizer | None = None
        if self.corpus is not None:  # polarity and vectors side by side: one product for both
            self._corpus_weights = np.column_stack([self.corpus.polarity, self.corpus.vectors]).astype(np.float32)
            self._corpus_idf = self.corpus.idf.astype(np.float64)
        self._bound: tuple[FeatureSpace, np.ndarray | None, np.ndarray | None] | None = None
        self._w = np.ascontiguousarray(np.asarray(state["coef"], dtype=np.float32).T)
        self._lex_w = np.ascontiguousarray(self._w[self._n_vocab : self._n_vocab + len(LEX_FEATURES)])
        self._b = np.asarray(state["intercept"], dtype=np.float64)
        self.platt_a = np.asarray(state["platt_a"], dtype=np.float64)
        self.platt_c = np.asarray(state["platt_c"], dtype=np.float64)
        self.threshold = np.asarray(state["threshold"], dtype=np.float64)
        self.lexicon_union = np.asarray(state["lexicon_union"], dtype=bool)
        self._pair_tables = (  # what _native.pair_scores reads after the linear scores
            np.arange(DIRECT_SCORES.start, DIRECT_SCORES.stop, dtype=np.int32),
            _PRESENCE_OF_PAIR.astype(np.int32),
            _POLARITY_OF_PAIR.astype(np.int32),
            _POLARITY_SIGN,
            *(np.ascontiguousarray(x) for x in (self.platt_a, self.platt_c, self.threshold)),
            self.lexicon_union.astype(np.uint8),
        )

    @staticmethod
    def _check(state) -> None:
        """Refuse a state this code cannot serve, with a message rather than a crash later."""
        check_state(state, "aspects", STATE_SCHEMA, AspectModel._KEYS, "training/train_aspects.py")
        if json.loads(str(state["pairs"])) != list(PAIR_CODES):
            raise ArtifactError("aspects state was trained for other aspect/polarity pairs")
        if list(state["lex_features"]) != list(LEX_FEATURES):
            raise ArtifactError("aspects state uses other lexicon features than this code computes")
        n_terms = count_strings(state["vocab"])
        try:
            corpus = CorpusWords.from_state(state, "corpus_")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"aspects state has an unusable corpus block: {exc}") from None
        n_corpus = corpus.width if corpus.vocab else 0
        shape = np.shape(state["coef"])
        if len(state["idf"]) != n_terms or shape != (N_LINEAR, n_terms + len(LEX_FEATURES) + n_corpus):
            raise ArtifactError(
                f"aspects state is inconsistent: {n_terms} terms, {len(state['idf'])} idf "
                f"values, {n_corpus} corpus columns, weights of shape {shape}"
            )
        if any(np.shape(state[k]) != (N_PAIRS,) for k in ("platt_a", "platt_c", "threshold", "lexicon_union")):
            raise ArtifactError(f"aspects state needs {N_PAIRS} calibration parameters and thresholds")

    def state(self) -> dict:
        return self._state

    @property
    def featurizer(self) -> Featurizer:
        """The string-based featurizer of :class:`View` s (training, reference checks); serving
        reads the feature pass instead (:meth:`linear_parts`)."""
        if self._featurizer is None:
            self._featurizer = Featurizer(
                decode_strings(self._state["vocab"]),
                self._idf,
                self.targets,
                self.lex_scale,
                self.corpus,
                self.corpus_scale,
            )
        return self._featurizer

    def feature_vocabularies(self) -> list:
        """The n-gram vocabulary and the corpus block's words (as word features), for a shared
        FeatureSpace."""
        corpus = [_WORD + w for w in self.corpus.vocab] if self.corpus is not None else []
        return [self._state["vocab"], corpus]  # the artifact's blob: no string per name

    def bind(self, space: FeatureSpace, slot: int) -> None:
        """Read features through ``space``, where this model's vocabularies are numbers ``slot``
        and ``slot + 1``."""
        self._bound = (space, space.kernel_columns(slot), space.kernel_columns(slot + 1))

    def _binding(self) -> tuple[FeatureSpace, np.ndarray | None, np.ndarray | None]:
        if self._bound is None:  # used on its own (training, tests): a space of its own
            self.bind(FeatureSpace(self.feature_vocabularies()), 0)
        return self._bound

    def linear(self, views: Sequence[View]) -> np.ndarray:
        """(n, N_LINEAR) linear scores for a batch of views: one sparse product."""
        if not views:
            return np.zeros((0, N_LINEAR))
        return np.asarray(self.featurizer.transform(views) @ self._w) + self._b

    def linear_parts(self, parts: Parts) -> np.ndarray:
        """(n, N_LINEAR) linear scores of parts read from the feature pass: the same numbers as
        :meth:`linear` on the equivalent views (the same entries summed in the same order),
        computed by the compiled kernels instead of scipy matrices, whose per-call checks would
        cost more than the maths for one text."""
        n = len(parts)
        if not n:
            return np.zeros((0, N_LINEAR))
        _, ngram_cols, corpus_cols = self._binding()
        width = self._n_vocab
        lin = np.zeros((n, N_LINEAR), dtype=np.float32)
        tfidf_product(parts.ngrams, ngram_cols, self._idf, self._is_word, self._w[:width], lin)
        rows, cols, vals = parts.lex
        _native.add_lex(
            rows, cols, vals, parts.lengths, parts.n_clauses, _LEX_LEN, _LEX_CLAUSES, self.lex_scale, self._lex_w, lin
        )
        if self.corpus is not None:
            dense = self._corpus_block(parts.words, corpus_cols) * self.corpus_scale
            add_dense(lin, dense, self._w[width + len(LEX_FEATURES) :])
        return lin.astype(np.float64) + self._b

    def _corpus_block(self, rows: Rows, columns: np.ndarray | None) -> np.ndarray:
        """:meth:`CorpusWords.transform` from word ids of the feature pass: the same float32
        operations, written into one array (``norm`` spelled out as numpy computes it)."""
        c = self.corpus
        zv = np.zeros((len(rows), 1 + c.vectors.shape[1]), dtype=np.float32)
        tfidf_product(rows, columns, self._corpus_idf, None, self._corpus_weights, zv)
        out = np.zeros_like(zv)
        out[:, 0] = np.tanh(zv[:, 0] + c.intercept)
        v = np.ascontiguousarray(zv[:, 1:])
        vn = np.sqrt(np.add.reduce(v * v, axis=1, keepdims=True))
        np.divide(v, vn, out=out[:, 1:], where=vn > 0)
        return out

    def probabilities(self, views: Sequence[View]) -> np.ndarray:
        """(n, N_PAIRS) calibrated probability of each pair, in PAIRS order."""
        return platt(combine(self.linear(views)), self.platt_a, self.platt_c)

    def score(self, docs: Sequence[Doc]) -> list[tuple[AspectFinding, ...]]:
        """Asserted pairs per document, best first, each with its evidence clauses."""
        if not docs:
            return []
        space, n = self._binding()[0], len(docs)
        parts = doc_parts(docs, space, self._target_cols)
        # One text scores its clauses in the document's product, needed or not (6 reviews in 10
        # need them): a second product costs more than they do (158 -> 148 us a review).
        ahead = [i for i, d in enumerate(docs) if len(d.clauses) > 1] if n < CLAUSES_AHEAD_BELOW else []
        if ahead:
            clause_parts([docs[i] for i in ahead], space, self._target_cols, into=parts)
        probs, pairs, clause_raw = self._pair_scores(self.linear_parts(parts), docs)
        hit_clauses = [_pair_clauses(d, js) for d, js in zip(docs, pairs)]
        if ahead:
            fallback = dict(zip(ahead, _per_doc(clause_raw, [docs[i] for i in ahead])))
        else:  # only the documents with a decided pair that no lexicon hit places
            need = [i for i, hc in enumerate(hit_clauses) if len(docs[i].clauses) > 1 and not all(hc.values())]
            fallback = dict(zip(need, self.clause_scores([docs[i] for i in need]))) if need else {}
        out = []
        for i, (doc, p) in enumerate(zip(docs, probs)):
            findings = []
            for j, clauses in hit_clauses[i].items():
                if not clauses and doc.clauses:
                    if i in fallback:
                        column = [row[j] for row in fallback[i]]
                        clauses = [column.index(max(column))]  # the first best (scores are finite)
                    else:
                        clauses = [0]
                    j, asserted = _polarity_of_clauses(doc, j, clauses), j
                    if j is None:  # its clause says the opposite of it: not what the text says
                        continue
                else:
                    asserted = j
                aspect, polarity = PAIRS[j]
                score = max(p[j], p[asserted])  # a flipped pair keeps the model's confidence
                findings.append(AspectFinding(aspect, polarity, round(score, 4), clause_evidence(doc, clauses)))
            out.append(_one_polarity_per_evidence(findings))
        return out

    def clause_scores(self, docs: Sequence[Doc]) -> list[list[list[float]]]:
        """Per document, (n_clauses, N_PAIRS) raw pair scores of each clause on its own: the
        clause that scores highest for a pair is the one that carried it. One product over runs
        of each document's feature pass."""
        space = self._binding()[0]
        return _per_doc(self._pair_scores(self.linear_parts(clause_parts(docs, space, self._target_cols)), [])[2], docs)

    def _pair_scores(self, lin: np.ndarray, docs: Sequence[Doc]) -> tuple[list, list, list]:
        """:func:`combine` and :func:`platt` of linear scores whose first ``len(docs)`` rows are
        ``docs`` and the rest clauses, in one compiled call (the same arithmetic; its ``exp`` is
        the C library's): each document's probabilities (in ``PAIRS`` order) and decided pairs
        (probability over the pair's threshold, or, for the pairs flagged in ``lexicon_union``,
        a lexicon hit of that aspect and polarity), and each clause row's raw scores, as lists."""
        return _native.pair_scores(
            np.ascontiguousarray(lin, dtype=np.float64),
            N_LINEAR,
            len(docs),
            *self._pair_tables,
            lexicon_pair_bytes(docs),
        )


def _per_doc(clause_rows: list, docs: Sequence[Doc]) -> list[list]:
    """Rows of the documents' clauses, in order, cut into one list per document."""
    out, k = [], 0
    for d in docs:
        out.append(clause_rows[k : k + len(d.clauses)])
        k += len(d.clauses)
    return out


def _polarity_of_clauses(doc: Doc, j: int, clauses: Sequence[int]) -> int | None:
    """What the evidence clauses say of decided pair ``j`` (lexicon hits, negation resolved):
    the same aspect's other pair when its hits there all have the other polarity; None (drop
    the finding) when the clauses hold no hit of the aspect but hits of other dimensions, all of
    the other polarity; else ``j``.

    Why: the text-level model learns that 客服 and 回复 mostly come with complaints, so it
    asserted responsiveness/negative and competence/negative on 客服回复很及时, whose one clause
    plainly praises. The clause carrying a finding decides its polarity. Measured on the grouped
    CV: root-cause micro-F1 0.762 -> 0.759 (fold noise), while a root cause on a praising clause
    is the slip a reader sees first. Reading the aspect's hits elsewhere in the text as well
    cost more (0.753)."""
    aspect, polarity = PAIRS[j]
    inside = [h for h in doc.hits if h.clause in clauses]
    own = [h.polarity for h in inside if h.dimension == aspect]
    if own:
        return j if polarity in own else (j + 1 if polarity == "positive" else j - 1)  # PAIRS: pos, neg
    if inside and all(h.polarity != polarity for h in inside):
        return None
    return j


def _one_polarity_per_evidence(findings: list[AspectFinding]) -> tuple[AspectFinding, ...]:
    """Both polarities of one aspect stand only on different evidence (ANNOTATION.md rule 2:
    praise and blame of different parts); on the same clauses the weaker one is dropped."""
    best: dict[tuple, AspectFinding] = {}
    for f in findings:
        key = (f.aspect, f.evidence)
        if key not in best or f.score > best[key].score:
            best[key] = f
    return tuple(sorted(best.values(), key=lambda f: -f.score))


_PAIR_INDEX = {p: j for j, p in enumerate(PAIRS)}


def lexicon_pairs(docs: Sequence[Doc]) -> np.ndarray:
    """(n, N_PAIRS) whether each document has a lexicon hit of each (aspect, polarity) pair."""
    return np.frombuffer(lexicon_pair_bytes(docs), dtype=bool).reshape(len(docs), N_PAIRS)


def lexicon_pair_bytes(docs: Sequence[Doc]) -> bytearray:
    """:func:`lexicon_pairs` as the compiled kernel reads it: one byte (0/1) per document and pair."""
    out = bytearray(len(docs) * N_PAIRS)
    for i, d in enumerate(docs):
        for h in d.hits:
            if (j := _PAIR_INDEX.get((h.dimension, h.polarity))) is not None:
                out[i * N_PAIRS + j] = 1
    return out


def _pair_clauses(doc: Doc, pairs: Sequence[int]) -> dict[int, list[int]]:
    """Per pair (index in ``PAIRS``), the clauses holding lexicon hits of its aspect and
    (negation-resolved) polarity, sorted."""
    if not pairs:
        return {}
    found: dict[tuple[str, str], set[int]] = {}
    for h in doc.hits:
        found.setdefault((h.dimension, h.polarity), set()).add(h.clause)
    return {j: sorted(found.get(PAIRS[j], ())) for j in pairs}


# ---------------------------------------------------------------- loading


def load_aspect_model(models_dir: Path, lexicon=None, *, version: str | None = None) -> AspectScorer:
    """The aspect scorer ``models/current.json`` names (or ``version``, for the admin reload).

    Falls back to the lexicon scorer only when no aspects artifact is configured at all (no
    pointer entry and no saved version). An unreadable pointer or a missing, corrupt or
    incompatible artifact raises ArtifactError: a service quietly running on the fallback
    would hide a broken deployment.
    """
    models_dir = Path(models_dir)
    if version is None and not is_configured(models_dir, KIND):
        log.warning("no aspects artifact under %s; serving the lexicon aspect scorer", models_dir)
        return LexiconAspectScorer(lexicon.version if lexicon is not None else "unknown")
    state, _metrics, version = load_artifact(models_dir, KIND, version)
    return AspectModel(state, version)
