"""Overall sentiment of a review: positive, neutral or negative, with probabilities.

The served model (:class:`LinearSentimentModel`) has two layers, both trained by
``training/train_sentiment.py`` and stored together as one data-only artifact:

1. A binary linear model (positive vs negative) over sparse features computed by
   :func:`doc_features` from what the pipeline already has: the normalised text (char 1-3
   grams), jieba's tokens (word 1-2 grams) and, when present, the lexicon hits with their
   negation-resolved polarity. It is trained on the labelled review corpus and yields one
   margin ``z`` per text. The whole batch is scored with one sparse matrix product.
2. A calibrator fitted on the hand-labelled pos/neu/neg texts of ``aspects_train.jsonl``
   (which the binary model never sees, so its margins there are honest):
   ``P(neutral) = q``, a logistic regression (neutral vs opinion) on
   ``[z, |z|, log1p(#positive hits), log1p(#negative hits)]`` (:func:`calibration_inputs`);
   ``P(positive) = (1 - q) * sigmoid(a * z)`` and ``P(negative) = (1 - q) * sigmoid(-a * z)``,
   with the slope ``a`` fitted (no intercept) on the non-neutral texts. The sigmoid has no
   intercept on purpose: the positive/negative boundary stays at ``z = 0``, where the binary
   model trained on 45k reviews put it, rather than moving to the prior of a small sample
   that over-represents service complaints. Probabilities are estimates calibrated to that
   sample, where about 4% of texts are neutral.

When the answer is ``neutral`` (exactly):

- the normalised text contains no letter at all (``str.isalpha`` is false for every
  character: digits, emoji, punctuation only). Nothing is evaluated, so by the annotation
  guide (rule 6) the text is neutral; this is a rule, not an estimate, and is reported as
  probabilities ``{positive: 0, neutral: 1, negative: 0}``;
- otherwise when ``P(neutral) >= neutral_threshold``. The threshold is stored in the artifact
  (``metrics.json`` -> ``neutral.threshold``): it is the value that maximised cross-validated
  three-class macro-F1 on the hand-labelled sample. Because neutral is rare, it sits well
  below 0.5, so a text can be labelled neutral while another class has the larger
  probability; the probabilities stay calibrated and the label rule is this one.

Otherwise the label is ``positive`` if ``z >= 0`` (equivalently ``P(positive) >= P(negative)``),
else ``negative``.

Lexicon hits are optional input: a document without ``hits`` (a caller that skipped the
keyword stage) still gets an answer, but its margin loses the hit features and the
calibrator reads "no lexicon evidence" as a hint of neutrality, so it is labelled neutral
more often. The service always runs the keyword stage first.

The SnowNLP fallback (:class:`SnowNLPSentiment`) serves only when no sentiment artifact is
configured at all. It is a binary model: ``P(positive)`` is SnowNLP's ``sentiments`` score,
``P(neutral)`` is 0, and only the no-letter rule makes it say neutral.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np

from app.core.taxonomy import SENTIMENT_LABELS
from app.pipeline.artifacts import (
    ArtifactError,
    check_state,
    count_strings,
    decode_strings,
    is_configured,
    load_artifact,
)
from app.pipeline.features import BIGRAM as _BIGRAM
from app.pipeline.features import JOIN as _JOIN
from app.pipeline.features import WORD as _WORD
from app.pipeline.features import CountTable, FeatureSpace, Rows, sentiment_margins
from app.pipeline.findings import Doc, SentimentFinding
from app.pipeline.keywords import NEGATION_WINDOW
from app.pipeline.segment import LEGACY_SEGMENTER

log = logging.getLogger(__name__)

KIND = "sentiment"
STATE_SCHEMA = 2
"""Version of the state dict layout below; bump it when the featurizer or state changes.
Schema 2 added ``use_neg`` and ``negators`` (negation-scope features); schema-1 states are
still read, as ``use_neg = False``, so older versions stay loadable for a roll-back."""
_V1_KEYS = (
    "schema",
    "vocab",
    "value",
    "use_hits",
    "scale",
    "coef",
    "intercept",
    "neu_coef",
    "neu_intercept",
    "pos_slope",
    "neutral_threshold",
)

# Feature prefixes: control characters never survive normalisation, so they cannot collide
# with text. Char n-grams are the raw substrings and carry no prefix.
_HIT, _HIT_TERM = "\x04", "\x05"
_NEG, _NEG_HIT = "\x06", "\x07"
FEATURE_GROUPS = ("word", "char", "hits", "neg")
NO_LETTERS = {"positive": 0.0, "neutral": 1.0, "negative": 0.0}


class SentimentModel(Protocol):
    version: str

    def predict(self, docs: Sequence[Doc]) -> list[SentimentFinding]: ...


def has_letters(text: str) -> bool:
    """Whether ``text`` has anything to evaluate (a letter in any script).

    >>> has_letters("123 ！！😀"), has_letters("好"), has_letters("ok")
    (False, True, True)
    """
    return any(ch.isalpha() for ch in text)


def doc_features(doc: Doc, use_hits: bool = True, negators: frozenset[str] | None = None) -> list[str]:
    """The sparse features of one document, shared by training and serving.

    Word unigrams and bigrams from ``doc.tokens`` (never re-segmented here), char 1-3 grams
    of the normalised text (lower-cased), and, if ``use_hits``, one feature per lexicon hit
    polarity and per (term, polarity) after negation: 不好 reads as a negative hit.
    With ``negators``, also the negation features of :func:`negation_features`.

    Training fits on these names; serving reads the same features as ids (:meth:`LinearSentimentModel.margins`).
    The n-grams come from the one feature pass (``doc.features``: ``word_keys``, ``bigram_keys``,
    ``sentiment_chars``), the rest from :func:`evidence_features`.
    """
    f = doc.features
    return f.word_keys + f.bigram_keys + f.sentiment_chars + evidence_features(doc, use_hits, negators)


def evidence_features(doc: Doc, use_hits: bool = True, negators: frozenset[str] | None = None) -> list[str]:
    """The part of :func:`doc_features` that reads the lexicon hits and negation scopes rather
    than the feature pass's n-grams."""
    feats = []
    if use_hits:
        for h in doc.hits:
            feats.append(_HIT + h.polarity)
            feats.append(_HIT_TERM + h.term + _JOIN + h.polarity)
    if negators:
        feats += negation_features(doc, negators)
    return feats


def negation_features(doc: Doc, negators: frozenset[str], window: int = NEGATION_WINDOW) -> list[str]:
    """Negation-aware features: each word in a negator's scope, marked (``NEG_`` + word), and
    one ``NEG_HIT`` + polarity per lexicon hit that negation flipped.

    The scope is the same as the keyword stage's (:mod:`app.pipeline.keywords`): the
    ``window`` tokens after a negator token, inside its clause (clauses end at punctuation
    and before contrast words, so 不贵，但是难吃 marks only 贵). A negator opens a new scope
    (negators themselves are not marked). Negators jieba glued onto a word (不好) are already
    in the word's own unigram, so they add nothing here.

    >>> from app.pipeline.normalize import normalize
    >>> d = Doc(None, normalize("没有 异味，好吃"), tokens=[("没有", 0, 2), (" ", 2, 3), ("异味", 3, 5),
    ...         ("，", 5, 6), ("好吃", 6, 8)], clauses=[(0, 5), (6, 8)])
    >>> [f[1:] for f in negation_features(d, frozenset({"没有"}))]
    ['异味']
    """
    out = []
    spans = doc.clauses or [(0, len(doc.text))]
    ci, n_spans, left, scope = 0, len(spans), 0, -1
    # No negator token, no scope (a cheap test on the feature pass's words before the walk).
    tokens = () if negators.isdisjoint(doc.features.raw_words) else doc.tokens
    for w, s, _ in tokens:
        while ci < n_spans and s >= spans[ci][1]:
            ci += 1
        if ci == n_spans or s < spans[ci][0]:  # between clauses (punctuation)
            left = 0
            continue
        if w.isspace():
            continue
        if w in negators:
            left, scope = window, ci
        elif left and scope == ci:
            out.append(_NEG + w.lower())
            left -= 1
    out += [_NEG_HIT + h.polarity for h in doc.hits if h.negated]
    return out


def feature_group(feature: str) -> str:
    """Which of FEATURE_GROUPS a feature name belongs to (for ablations in training)."""
    c = feature[:1]
    if c in (_WORD, _BIGRAM):
        return "word"
    if c in (_HIT, _HIT_TERM):
        return "hits"
    if c in (_NEG, _NEG_HIT):
        return "neg"
    return "char"


def doc_hit_counts(doc: Doc) -> tuple[int, int]:
    """Positive and negative lexicon hits of one document (after negation)."""
    positive = sum(h.polarity == "positive" for h in doc.hits)
    return positive, len(doc.hits) - positive


def hit_counts(docs: Sequence[Doc]) -> np.ndarray:
    """(n, 2) :func:`doc_hit_counts` of each document."""
    return np.array([doc_hit_counts(d) for d in docs], dtype=np.float64).reshape(len(docs), 2)


VALUE_TRANSFORMS = ("binary", "log_count")
"""How a feature's count (>= 1) becomes its value: ``binary`` (1 when present) or ``log_count``
(1 + log count, so a single occurrence weighs 1)."""
_RENAMED_TRANSFORMS = {"log1p": "log_count"}  # the old, untrue name (it never was log(1 + count))


def value_transform(name: str) -> str:
    """The current name of a stored feature-value transform: artifacts written before the rename
    say ``log1p`` and must keep loading.

    >>> value_transform("log1p"), value_transform("log_count"), value_transform("binary")
    ('log_count', 'log_count', 'binary')
    """
    name = _RENAMED_TRANSFORMS.get(name, name)
    if name not in VALUE_TRANSFORMS:
        raise ArtifactError(f"unknown feature value transform {name!r}")
    return name


def feature_values(counts: np.ndarray, value: str) -> np.ndarray:
    """Counts -> feature values by the transform named ``value`` (see VALUE_TRANSFORMS).

    >>> [round(v, 3) for v in feature_values(np.array([1, 2, 10]), "log_count").tolist()]
    [1.0, 1.693, 3.303]
    """
    counts = np.asarray(counts, dtype=np.float32)
    if value_transform(value) == "binary":
        return np.ones_like(counts)
    return (1 + np.log(counts)).astype(np.float32)


def calibration_inputs(z: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The calibrator's inputs: margin, its size, and how much lexicon evidence each way
    (``(n, 4)`` float64, filled column by column: ``np.column_stack`` costs more than the maths
    for one text)."""
    x = np.empty((len(z), 4))
    x[:, 0] = z
    np.absolute(z, out=x[:, 1])
    np.log1p(hits, out=x[:, 2:])
    return x


def three_class(
    z: np.ndarray, hits: np.ndarray, neu_coef: Sequence[float], neu_intercept: float, pos_slope: float
) -> np.ndarray:
    """(n, 3) probabilities in SENTIMENT_LABELS order from margins and hit counts: :func:`three_class_row`
    of each row (the one definition, which serving calls per document)."""
    coef = [float(c) for c in neu_coef]
    rows = [
        three_class_row(zi, pos, neg, coef, float(neu_intercept), float(pos_slope))
        for zi, (pos, neg) in zip(np.asarray(z, dtype=np.float64).tolist(), np.asarray(hits).tolist())
    ]
    return np.array(rows, dtype=np.float64).reshape(len(rows), 3)


def three_class_row(
    z: float,
    positive_hits: float,
    negative_hits: float,
    neu_coef: Sequence[float],
    neu_intercept: float,
    pos_slope: float,
) -> tuple[float, float, float]:
    """P(positive), P(neutral), P(negative) of one document: ``P(neutral) = q`` from the neutral
    regression on :func:`calibration_inputs`; the rest is split by ``sigmoid(slope * z)``.

    Python floats, not numpy: for the few documents of a request numpy's per-call dispatch cost
    more than the maths, most of all when a request finds it out of the CPU caches (50 against
    4 us). The same IEEE operations as numpy's, and the C library's exp and log1p (scipy's
    ``expit`` calls that exp): the probabilities are the numpy ones to the last bit or two.

    >>> [round(p, 4) for p in three_class_row(2.0, 1, 0, [0.0, -1.0, -1.0, 0.5], 0.0, 1.0)]
    [0.825, 0.0634, 0.1116]
    """
    a, b, c, d = neu_coef
    x = z * a + abs(z) * b + math.log1p(positive_hits) * c + math.log1p(negative_hits) * d + neu_intercept
    q = _expit(x)
    pos = _expit(pos_slope * z)
    rest = 1 - q
    return rest * pos, q, rest * (1 - pos)


def _expit(x: float) -> float:
    """``1 / (1 + exp(-x))`` as scipy's ``expit`` computes it (0.0 where exp overflows)."""
    try:
        return 1.0 / (1.0 + math.exp(-x))
    except OverflowError:
        return 0.0


def round_probabilities(p: Sequence[float]) -> list[float]:
    """Three probabilities rounded to 4 decimals that still sum to 1 (at 4 dp): the largest (the
    first of equals) absorbs the rounding. Rounded as numpy rounds (``x * 1e4``, to even, ``/ 1e4``).

    >>> round_probabilities([1 / 3, 1 / 3, 1 / 3])
    [0.3334, 0.3333, 0.3333]
    """
    p0, p1, p2 = p
    r0, r1, r2 = round(p0 * 1e4) / 1e4, round(p1 * 1e4) / 1e4, round(p2 * 1e4) / 1e4
    rest = r0 + r1 + r2
    if p0 >= p1 and p0 >= p2:
        r0 = round((1.0 - (rest - r0)) * 1e4) / 1e4
    elif p1 >= p2:
        r1 = round((1.0 - (rest - r1)) * 1e4) / 1e4
    else:
        r2 = round((1.0 - (rest - r2)) * 1e4) / 1e4
    return [r0, r1, r2]


class LinearSentimentModel:
    """Binary linear model plus the neutral calibrator, rebuilt from a data-only state dict.

    ``state`` (what the artifact stores; numpy arrays, numbers and strings only):
    ``schema``, ``vocab`` (uint8 utf-8 of the features joined by NUL), ``value``
    (``binary``/``log_count``, which older artifacts call ``log1p``), ``use_hits``, ``scale``
    (per-feature idf or NB ratio, float32), ``coef`` (float32), ``intercept``, ``neu_coef`` (4),
    ``neu_intercept``, ``pos_slope``,
    ``neutral_threshold``; since schema 2 also ``use_neg`` and ``negators`` (uint8 utf-8,
    NUL-joined: the negator list the model was trained with, so serving scopes negation
    exactly as training did even if the lexicon changes). The binary margin of a document with feature values ``v`` is
    ``z = (v * scale) . coef / ||v * scale|| + intercept``. Optional ``segmenter`` (a string):
    the segmenter the model was trained with (absent: Python jieba, ``LEGACY_SEGMENTER``).
    """

    _KEYS = (*_V1_KEYS, "use_neg", "negators")

    def __init__(self, state: dict, version: str):
        self._check(state)
        self._state = state
        self.version = version
        self.segmenter = str(state.get("segmenter", LEGACY_SEGMENTER))
        self._bound: tuple[FeatureSpace, np.ndarray | None] | None = None  # see bind()
        self.value = value_transform(str(state["value"]))
        self._values = CountTable(partial(feature_values, value=self.value), np.float32)  # no cycle via self
        self.use_hits = bool(state["use_hits"])
        use_neg = state["schema"] >= 2 and bool(state["use_neg"])
        self.negators = frozenset(decode_strings(state["negators"])) if use_neg else None
        scale = np.asarray(state["scale"], dtype=np.float32)
        # (scale², scale · coef) per feature, side by side: the kernel reads both in one cache line
        self._weights = np.column_stack([scale * scale, scale * np.asarray(state["coef"], dtype=np.float32)])
        self._b = float(state["intercept"])
        # three_class_row's parameters after the margin and hit counts: neu_coef, its intercept, the slope
        self._calibrator = (
            [float(c) for c in np.asarray(state["neu_coef"], dtype=np.float64)],
            float(state["neu_intercept"]),
            float(state["pos_slope"]),
        )
        self.neutral_threshold = float(state["neutral_threshold"])

    @staticmethod
    def _check(state) -> None:
        """Refuse a state this code cannot serve, with a message instead of a crash later."""
        if isinstance(state, dict) and state.get("schema") == 1:  # before negation features
            check_state(state, KIND, 1, _V1_KEYS, "training/train_sentiment.py")
        else:
            check_state(state, KIND, STATE_SCHEMA, LinearSentimentModel._KEYS, "training/train_sentiment.py")
        n = len(state["scale"])
        n_terms = count_strings(state["vocab"])
        if len(state["coef"]) != n or n_terms != n:
            raise ArtifactError(
                f"sentiment state is inconsistent: {n_terms} terms, {n} scales, {len(state['coef'])} weights"
            )
        if np.shape(state["neu_coef"]) != (4,):
            raise ArtifactError("sentiment neutral calibrator must have 4 inputs")
        value_transform(str(state["value"]))  # an unknown transform is refused at load

    def state(self) -> dict:
        """The data-only dict the artifact stores."""
        return self._state

    def feature_vocabularies(self) -> list:
        """The feature names this model reads (one vocabulary, the artifact's NUL-joined UTF-8
        blob of them), for a shared FeatureSpace."""
        return [self._state["vocab"]]

    def bind(self, space: FeatureSpace, slot: int) -> None:
        """Read features through ``space``, where this model's vocabulary is number ``slot``
        (the pipeline shares one space between its models: see :mod:`app.pipeline.features`)."""
        self._bound = (space, space.kernel_columns(slot))

    def _binding(self) -> tuple[FeatureSpace, np.ndarray | None]:
        if self._bound is None:  # used on its own (training, tests): a space of its own
            self.bind(FeatureSpace(self.feature_vocabularies()), 0)
        return self._bound

    def margins(self, docs: Sequence[Doc]) -> np.ndarray:
        """The binary model's margin per document (> 0 leans positive).

        Features are :func:`doc_features`, read from the feature pass (``doc.features``) as
        ids; the whole batch is one call of the compiled kernel
        (:func:`app.pipeline.features.sentiment_margins`): no per-document model calls and none
        of scipy's or scikit-learn's per-call validation, which dominates for one text.
        """
        space, columns = self._binding()
        rows = Rows()
        for d in docs:
            enc = d.features.encoded(space)
            runs = enc.sentiment_runs(rows.attach(enc.ids))
            if extra := evidence_features(d, self.use_hits, self.negators):
                found = space.ids(extra)
                at = rows.attach(found)
                runs += (at, at + len(found))
            rows.add(*runs)
        return sentiment_margins(rows, columns, self._values, self._weights, float(self._b))

    def scores(self, docs: Sequence[Doc]) -> tuple[np.ndarray, np.ndarray]:
        """Margins ``z`` and unrounded (n, 3) probabilities (SENTIMENT_LABELS order), before
        the no-letter rule: what ``predict`` decides from, for evaluation and tests."""
        z = self.margins(docs)
        return z, three_class(z, hit_counts(docs), *self._calibrator)

    def predict(self, docs: Sequence[Doc]) -> list[SentimentFinding]:
        """Label and probabilities for each document, by the rules in the module docstring."""
        if not docs:
            return []
        out = []
        for doc, z in zip(docs, self.margins(docs).tolist()):
            if not has_letters(doc.text):
                out.append(SentimentFinding("neutral", dict(NO_LETTERS)))
                continue
            p = three_class_row(z, *doc_hit_counts(doc), *self._calibrator)
            label = "neutral" if p[1] >= self.neutral_threshold else "positive" if z >= 0 else "negative"
            out.append(SentimentFinding(label, dict(zip(SENTIMENT_LABELS, round_probabilities(p)))))
        return out


class SnowNLPSentiment:
    """Fallback when no sentiment artifact is configured: SnowNLP's bundled binary model.

    SnowNLP loads its model when imported, so the import happens here, at construction
    (service start-up), never at module import. It re-segments each text itself and is
    tens of times slower than the trained model (about 7 ms a review).
    """

    def __init__(self):
        from importlib.metadata import version as pkg_version

        from snownlp import SnowNLP  # noqa: PLC0415 - deliberately lazy

        self._snownlp = SnowNLP
        self.version = f"snownlp-{pkg_version('snownlp')}"

    def predict(self, docs: Sequence[Doc]) -> list[SentimentFinding]:
        out = []
        for doc in docs:
            if not has_letters(doc.text):
                out.append(SentimentFinding("neutral", dict(NO_LETTERS)))
                continue
            pos = float(self._snownlp(doc.text).sentiments)
            label = "positive" if pos > 0.5 else "negative"
            probs = round_probabilities((pos, 0.0, 1.0 - pos))
            out.append(SentimentFinding(label, dict(zip(SENTIMENT_LABELS, probs))))
        return out


def load_sentiment_model(models_dir: Path) -> SentimentModel:
    """The sentiment model ``models/current.json`` names.

    Falls back to SnowNLP only when no sentiment artifact is configured at all (no pointer
    entry and no saved version). A pointer that is unreadable, a version that is missing,
    corrupt or incompatible, or saved versions with no pointer to them raise ArtifactError:
    a service silently running on the fallback would hide a broken deployment.
    """
    models_dir = Path(models_dir)
    if not is_configured(models_dir, KIND):
        log.warning("no sentiment artifact under %s; serving the SnowNLP fallback", models_dir)
        return SnowNLPSentiment()
    state, _metrics, version = load_artifact(models_dir, KIND)
    return LinearSentimentModel(state, version)
