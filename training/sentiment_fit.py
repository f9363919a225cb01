"""Fitting the sentiment model's binary layer on a count matrix, by the serving formula.

One count matrix holds every feature group of every document (:func:`count_matrix`); a design
keeps the columns of its groups seen in at least ``min_df`` of its training rows and learns one
linear model. :func:`matrix_margins` applies the serving code's formula to a count matrix, so
the figures of a design comparison are those the service would give; :func:`make_state`
writes what :class:`app.pipeline.sentiment.LinearSentimentModel` reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from app.pipeline import sentiment as S
from app.pipeline.artifacts import encode_strings
from app.pipeline.findings import Doc

MIN_DF = 2  # a feature must occur in at least 2 training documents
CLASSIFIERS = ("lr", "svm", "nbsvm")
FEATURE_SETS = {
    "word": ("word",),
    "char": ("char",),
    "word+char": ("word", "char"),
    "word+char+hits": ("word", "char", "hits"),
    "word+char+hits+neg": ("word", "char", "hits", "neg"),
}


@dataclass(frozen=True)
class Counts:
    """Feature counts of a list of documents: every group, every feature seen."""

    matrix: sp.csr_matrix  # rows documents, columns features
    names: np.ndarray  # feature names (object array), column order
    groups: np.ndarray  # each column's feature group (sentiment.FEATURE_GROUPS)


def count_matrix(docs: Sequence[Doc], negators: frozenset[str]) -> Counts:
    """The counts of :func:`app.pipeline.sentiment.doc_features` (hits and negation features
    included) for every document, columns in order of first appearance."""
    index: dict[str, int] = {}
    indices, data, indptr = [], [], [0]
    for d in docs:
        for f, n in Counter(S.doc_features(d, True, negators)).items():
            indices.append(index.setdefault(f, len(index)))
            data.append(n)
        indptr.append(len(indices))
    matrix = sp.csr_matrix(
        (np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32), np.array(indptr, dtype=np.int64)),
        shape=(len(docs), len(index)),
    )
    del indices, data, indptr
    names = np.array(list(index), dtype=object)
    return Counts(matrix, names, np.array([S.feature_group(f) for f in names]))


@dataclass(frozen=True)
class Fitted:
    """One fitted design: the kept columns, their value transform and scale, the weights."""

    kidx: np.ndarray
    value: str
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    groups: tuple[str, ...]


def l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms) @ m


def values(counts: sp.csr_matrix, value: str) -> sp.csr_matrix:
    """The serving code's count -> value transform, applied to a CSR matrix."""
    out = counts.copy()
    out.data = S.feature_values(out.data, value)
    return out


def fit_linear(
    x_counts: sp.csr_matrix,
    labels: np.ndarray,
    clf: str,
    groups: Sequence[str],
    feature_groups: np.ndarray,
    *,
    min_df: int = MIN_DF,
    weight=None,
) -> Fitted:
    """Fit one design (``clf`` in CLASSIFIERS over feature ``groups``) on count rows ``x_counts``.

    ``lr``: 1 + log(count) x smoothed idf, logistic regression C = 4 (liblinear); ``svm``: the
    same values, linear SVM C = 0.5; ``nbsvm``: binary values x NB log-count ratio (alpha 1),
    linear SVM C = 0.3. Rows L2-normalised.
    """
    df = np.bincount(x_counts.indices, minlength=x_counts.shape[1])
    kidx = np.flatnonzero(np.isin(feature_groups, groups) & (df >= min_df))
    counts = x_counts[:, kidx]
    weight = np.ones(len(labels)) if weight is None else weight
    if clf == "nbsvm":
        value = "binary"
        b = sp.diags(weight.astype(np.float32)) @ values(counts, value)
        p = np.asarray(b[labels == 1].sum(axis=0)).ravel() + 1.0
        q = np.asarray(b[labels == 0].sum(axis=0)).ravel() + 1.0
        scale = np.log((p / p.sum()) / (q / q.sum()))
        model = LinearSVC(C=0.3)
    else:
        value = "log_count"  # 1 + log(count); artifacts before the rename say "log1p"
        scale = np.log((1 + counts.shape[0]) / (1 + df[kidx])) + 1
        model = LogisticRegression(C=4.0, solver="liblinear") if clf == "lr" else LinearSVC(C=0.5)
    model.fit(l2_rows(values(counts, value) @ sp.diags(scale.astype(np.float32))), labels, sample_weight=weight)
    return Fitted(kidx, value, scale, model.coef_.ravel(), float(model.intercept_[0]), tuple(groups))


def matrix_margins(fitted: Fitted, x_counts: sp.csr_matrix) -> np.ndarray:
    """The serving formula on a count matrix: z = (v * scale) . coef / ||v * scale|| + b."""
    x = l2_rows(values(x_counts[:, fitted.kidx], fitted.value) @ sp.diags(fitted.scale.astype(np.float32)))
    return x @ fitted.coef + fitted.intercept


NO_CALIBRATOR = {"neu_coef": np.zeros(4), "neu_intercept": -10.0, "pos_slope": 1.0, "threshold": 1.0}
"""A placeholder calibrator (never neutral) for scoring the binary layer alone."""


def make_state(fitted: Fitted, terms: Sequence[str], negators: frozenset[str], cal: dict | None = None) -> dict:
    """The artifact's data-only state (see LinearSentimentModel); ``terms`` are the names of
    ``fitted``'s kept columns, ``cal`` the neutral calibrator (a placeholder until it is fitted)."""
    cal = cal or NO_CALIBRATOR
    return {
        "schema": S.STATE_SCHEMA,
        "vocab": encode_strings(list(terms)),
        "value": fitted.value,
        "use_hits": "hits" in fitted.groups,
        "use_neg": "neg" in fitted.groups,
        "negators": encode_strings(sorted(negators) if "neg" in fitted.groups else []),
        "scale": np.asarray(fitted.scale, dtype=np.float32),
        "coef": np.asarray(fitted.coef, dtype=np.float32),
        "intercept": float(fitted.intercept),
        "neu_coef": np.asarray(cal["neu_coef"], dtype=np.float64),
        "neu_intercept": float(cal["neu_intercept"]),
        "pos_slope": float(cal["pos_slope"]),
        "neutral_threshold": float(cal["threshold"]),
    }
