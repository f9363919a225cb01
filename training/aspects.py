"""Fitting the aspect model: the linear SVMs (``N_LINEAR``), calibration, thresholds and cross-validation.

What the fitted state means at prediction time is documented in :mod:`app.pipeline.aspect_model`,
which serves it; this module only learns it.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from app.core.taxonomy import N_PAIRS, PAIR_CODES
from app.pipeline import aspect_model as AM
from app.pipeline.artifacts import encode_strings
from app.pipeline.aspect_model import AspectModel, Featurizer, combine, doc_view, lexicon_pairs, platt
from app.pipeline.findings import Doc
from app.pipeline.normalize import normalize
from app.pipeline.word_vectors import CorpusWords
from training.data import BinaryLabelled
from training.metrics import label_matrix
from training.splits import strat_keys
from training.word_vectors import fit_corpus_words

MIN_PAIR_F1 = 0.2
MIN_PAIR_POSITIVES = 15
OWN_THRESHOLD_BELOW = 60
"""Pairs with fewer positives get their own F1-optimal threshold; the rest share one."""


def _f1(pred: np.ndarray, t: np.ndarray) -> float:
    tp = float((pred & (t == 1)).sum())
    return 2 * tp / (pred.sum() + t.sum()) if pred.sum() + t.sum() else 0.0


def corpus_block(
    rows: Sequence[BinaryLabelled], segmenter, labelled_texts: set[str], *, seed: int = 0
) -> tuple[CorpusWords, dict]:
    """The corpus block learnt from pos/neg-labelled reviews, segmented as the service does.

    Reviews whose normalised text is one of ``labelled_texts`` (the aspect training texts)
    are left out, so cross-validation never meets a polarity model that learnt its test texts.
    """
    t = time.perf_counter()
    tokens, labels = [], []
    for r in rows:
        norm = normalize(r.text).text
        if norm not in labelled_texts:
            tokens.append(segmenter.cut(norm))
            labels.append(r.label)
    words = fit_corpus_words(tokens, labels, seed=seed)
    return words, {
        "rows": len(rows),
        "rows_used": len(tokens),
        "left_out_as_labelled": len(rows) - len(tokens),
        "words": len(words.vocab),
        "dims": int(words.vectors.shape[1]),
        "seconds": round(time.perf_counter() - t, 1),
    }


def _linear_targets(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and row masks of the linear models, in ``AM.DIRECT_SCORES``, ``PRESENCE_SCORES``,
    ``POLARITY_SCORES`` order: direct per pair and presence per aspect on every row; polarity
    (negative vs positive) per aspect only on the rows that evaluate the aspect."""
    pos, neg = y[:, 0::2], y[:, 1::2]
    presence = pos | neg
    labels = np.concatenate([y, presence, neg], axis=1)
    masks = np.concatenate([np.ones((len(y), AM.POLARITY_SCORES.start), bool), presence.astype(bool)], axis=1)
    return labels, masks


def _fit_linear(x: sp.csr_matrix, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(N_LINEAR, F) weights and (N_LINEAR,) intercepts of class-balanced linear SVMs, one per target."""
    labels, masks = _linear_targets(y)
    coef = np.zeros((AM.N_LINEAR, x.shape[1]), dtype=np.float32)
    intercept = np.zeros(AM.N_LINEAR)
    for k in range(AM.N_LINEAR):
        rows = np.flatnonzero(masks[:, k])
        t = labels[rows, k]
        if len(rows) == 0 or t.min() == t.max():  # nothing to separate: a constant score
            intercept[k] = (1.0 if t.max() == 1 else -1.0) if len(rows) else -1.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = LinearSVC(C=c, class_weight="balanced", max_iter=5000, random_state=0).fit(x[rows], t)
        coef[k] = m.coef_[0]
        intercept[k] = m.intercept_[0]
    return coef, intercept


def _fit_platt(raw: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    if t.min() == t.max():
        return 1.0, -10.0
    m = LogisticRegression(C=100.0).fit(raw.reshape(-1, 1), t)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def best_threshold(p: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``p >= threshold`` against ``t``; NEVER when even the
    best F1 stays under MIN_PAIR_F1 (a pair too thin to assert honestly)."""
    if t.sum() == 0:
        return AM.NEVER, 0.0
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(t[order])
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + t.sum())
    # only cut between distinct values
    last = np.r_[p[order][1:] != p[order][:-1], True]
    f1 = np.where(last, f1, -1)
    k = int(np.argmax(f1))
    if f1[k] < MIN_PAIR_F1:
        return AM.NEVER, float(max(f1[k], 0))
    lower = p[order][k + 1] if k + 1 < len(p) else 0.0
    return float((p[order][k] + lower) / 2), float(f1[k])


def shared_threshold(p: np.ndarray, t: np.ndarray) -> float:
    """The one probability threshold that maximises micro-F1 over the given pairs."""
    grid = np.arange(0.05, 0.95, 0.005)
    tp = np.array([(p >= g)[t == 1].sum() for g in grid])
    npred = np.array([(p >= g).sum() for g in grid])
    f1 = 2 * tp / (npred + t.sum())
    return float(grid[int(np.argmax(f1))])


def _thresholds(probs: np.ndarray, y: np.ndarray, hits: np.ndarray, own_below: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair thresholds and lexicon-union flags chosen on out-of-fold probabilities."""
    thr, union = np.full(N_PAIRS, AM.NEVER), np.zeros(N_PAIRS, dtype=np.int8)
    eligible = y.sum(axis=0) >= MIN_PAIR_POSITIVES
    shared = shared_threshold(probs[:, eligible], y[:, eligible]) if eligible.any() else AM.NEVER
    for j in np.flatnonzero(eligible):
        if y[:, j].sum() < own_below:
            thr[j], _ = best_threshold(probs[:, j], y[:, j])
        elif _f1(probs[:, j] >= shared, y[:, j]) >= MIN_PAIR_F1:
            thr[j] = shared
    for j in range(N_PAIRS):
        alone = probs[:, j] >= thr[j]
        f_alone, f_union, f_lex = (_f1(alone, y[:, j]), _f1(alone | hits[:, j], y[:, j]), _f1(hits[:, j], y[:, j]))
        if max(f_union, f_lex) > f_alone + 0.005:
            union[j] = 1
            if f_lex > f_union:  # the lexicon alone does better: the model abstains on this pair
                thr[j] = AM.NEVER
    return thr, union


def fit_state(
    docs: Sequence[Doc],
    y: np.ndarray,
    targets: dict[str, str],
    *,
    c: float = 0.5,
    inner_folds: int = 5,
    lex_scale: float = 0.5,
    seed: int = 0,
    corpus: CorpusWords | None = None,
    corpus_scale: float = 1.0,
    own_below: int = OWN_THRESHOLD_BELOW,
) -> tuple[dict, np.ndarray]:
    """Train the model on ``docs`` and labels ``y`` (n, N_PAIRS). Returns the artifact state and
    the out-of-fold probabilities the calibration and thresholds were fitted on.

    Thresholds: pairs with at least ``own_below`` positives share one threshold on the
    calibrated probabilities, the one that maximised their out-of-fold micro-F1; thinner pairs
    get their own F1-optimal one (every pair its own over-fits: nested-CV micro-F1 fell
    0.759 -> 0.752; all shared leaves the thin pairs' recall low: root-cause macro-F1 0.597
    against 0.615)."""
    views = [doc_view(d) for d in docs]
    feat = Featurizer.fit(views, targets, lex_scale=lex_scale, corpus=corpus, corpus_scale=corpus_scale)
    x = feat.transform(views)
    oof = np.zeros((len(docs), AM.N_LINEAR))
    keys = strat_keys(y, inner_folds)
    with warnings.catch_warnings():  # a learning-curve fold may hold a pooled key only 3 times: fine
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        inner = list(StratifiedKFold(inner_folds, shuffle=True, random_state=seed).split(x, keys))
    for tr, te in inner:
        coef, b = _fit_linear(x[tr], y[tr], c)
        oof[te] = x[te] @ coef.T + b
    raw = combine(oof)
    a, cc = np.ones(N_PAIRS), np.zeros(N_PAIRS)
    probs = np.zeros_like(raw)
    for j in range(N_PAIRS):
        a[j], cc[j] = _fit_platt(raw[:, j], y[:, j])
        probs[:, j] = platt(raw[:, j], a[j], cc[j])
    thr, union = _thresholds(probs, y, lexicon_pairs(docs), own_below)
    coef, b = _fit_linear(x, y, c)
    state = {
        "schema": AM.STATE_SCHEMA,
        "vocab": encode_strings(feat.vocab),
        "idf": feat.idf.astype(np.float32),
        "targets": json.dumps(targets, ensure_ascii=False, sort_keys=True),
        "lex_features": list(AM.LEX_FEATURES),
        "lex_scale": float(lex_scale),
        "coef": coef,
        "intercept": b,
        "platt_a": a,
        "platt_c": cc,
        "threshold": thr,
        "lexicon_union": union,
        "pairs": json.dumps(list(PAIR_CODES)),
        "corpus_scale": float(corpus_scale),
        **(corpus or CorpusWords([], [], np.zeros((0, 0)), [], 0.0)).state("corpus_"),
    }
    return state, probs


def fit_and_decide(
    docs: Sequence[Doc], y: np.ndarray, targets: dict[str, str], train: np.ndarray, test: np.ndarray, **kw
) -> tuple[np.ndarray, np.ndarray]:
    """Train :func:`fit_state` on the ``train`` rows and score the ``test`` rows as the service
    would: (probabilities, decisions) of the test rows, decisions after the evidence steps of
    :meth:`AspectModel.score`."""
    state, _ = fit_state([docs[i] for i in train], y[train], targets, **kw)
    model = AspectModel(state, "cv")
    test_docs = [docs[i] for i in test]
    probs = model.probabilities([doc_view(d) for d in test_docs])
    decided = label_matrix([(f.aspect, f.polarity) for f in found] for found in model.score(test_docs))
    return probs, decided


def cross_validate(
    docs: Sequence[Doc],
    y: np.ndarray,
    targets: dict[str, str],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    progress=None,
    **kw,
) -> tuple[np.ndarray, np.ndarray]:
    """Each (train, test) split trains :func:`fit_state` (its own inner CV for calibration and
    thresholds) on its train rows and predicts its test rows. Returns (probabilities, decisions)
    over all rows (rows in no test part stay zero)."""
    probs = np.zeros(y.shape)
    decided = np.zeros(y.shape, dtype=bool)
    for k, (tr, te) in enumerate(splits):
        probs[te], decided[te] = fit_and_decide(docs, y, targets, tr, te, **kw)
        if progress:
            progress(k + 1, len(splits))
    return probs, decided
