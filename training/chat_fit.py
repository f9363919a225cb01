"""Fitting the chat heads (:mod:`app.pipeline.chat_model`) on labelled chats.

Each head is a vocabulary (feature strings seen in at least ``MIN_DF`` training examples, with
idf) and a logistic regression with balanced class weights: violations one-vs-rest per
服务禁语 code (threshold 0.5, the balanced model's own boundary: nothing tuned on a split),
satisfaction, emotion and resolution multinomial. ``C`` values were compared in grouped CV and
leave-one-file-out together (training/chat_run.py prints both); the same value wins on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from app.conversations.cues import agent_cues, resolution_cues
from app.core.taxonomy import FORBIDDEN_CATEGORIES
from app.pipeline.chat_model import (
    ChatModel,
    LinearHead,
    Vocabulary,
    agent_turn_features,
    conversation_features,
    customer_turn_features,
)
from app.pipeline.sparse import idf_vocabulary
from training.chat_data import LabelledChat

MIN_DF = 2
C = {"violations": 8.0, "satisfaction": 4.0, "emotion": 4.0, "resolution": 8.0}
THRESHOLD = 0.5
SATISFACTION = ("dissatisfied", "neutral", "satisfied")
EMOTIONS = ("anger", "anxiety", "disappointment", "satisfaction", "neutral")
RESOLUTION = ("resolved", "unresolved", "unknown")


@dataclass
class Examples:
    """One task's training rows: feature lists, dense rows (or None), labels, and owners
    (chat index, turn) so predictions map back."""

    feats: list[list[str]]
    dense: np.ndarray | None
    labels: list
    owners: list[tuple[int, int]]


def violation_examples(chats: Sequence[LabelledChat], rules) -> Examples:
    feats, labels, owners = [], [], []
    for ci, chat in enumerate(chats):
        for a in chat.labels.get("agent_turns", []):
            i = a["turn"]
            phrases = [(m.entry.row.category, m.start) for m in rules.forbidden.find(chat.texts[i])]
            cues = [c for c, _ in agent_cues(rules, chat.texts[i], phrases)]
            feats.append(agent_turn_features(chat.views, i, cues))
            labels.append(set(a["violations"]))
            owners.append((ci, i))
    return Examples(feats, None, labels, owners)


def customer_examples(chats: Sequence[LabelledChat], key: str) -> Examples:
    feats, dense, labels, owners = [], [], [], []
    for ci, chat in enumerate(chats):
        for c in chat.labels.get("customer_turns", []):
            f, d = customer_turn_features(chat.views, c["turn"])
            feats.append(f)
            dense.append(d)
            labels.append(c[key])
            owners.append((ci, c["turn"]))
    return Examples(feats, np.array(dense, dtype=np.float64), labels, owners)


def resolution_examples(chats: Sequence[LabelledChat], rules) -> Examples:
    feats, dense, labels, owners = [], [], [], []
    for ci, chat in enumerate(chats):
        if "resolution" not in chat.labels:
            continue
        cues = resolution_cues(rules, [v.role for v in chat.views], chat.texts)
        f, d = conversation_features(chat.views, cues)
        feats.append(f)
        dense.append(d)
        labels.append(chat.labels["resolution"])
        owners.append((ci, -1))
    return Examples(feats, np.array(dense, dtype=np.float64), labels, owners)


def fit_vocabulary(feature_lists: Sequence[Sequence[str]], min_df: int = MIN_DF) -> Vocabulary:
    vocab, idf = idf_vocabulary(feature_lists, min_df)
    return Vocabulary({f: i for i, f in enumerate(vocab)}, idf)


def _matrix(vocab: Vocabulary, ex: Examples, rows: Sequence[int]):
    """[sparse | dense] rows, the layout the served head's coefficients follow."""
    x = vocab.transform([ex.feats[i] for i in rows])
    return x if ex.dense is None else sp.hstack([x, sp.csr_matrix(ex.dense[list(rows)])], format="csr")


def fit_multilabel(ex: Examples, rows: Sequence[int], codes: Sequence[str], c: float) -> tuple[Vocabulary, LinearHead]:
    vocab = fit_vocabulary([ex.feats[i] for i in rows])
    x = _matrix(vocab, ex, rows)
    coef, intercept = [], []
    for code in codes:
        y = np.array([code in ex.labels[i] for i in rows], dtype=int)
        if y.min() == y.max():  # no example of the code in this fold: never fires
            coef.append(np.zeros(x.shape[1]))
            intercept.append(-10.0)
            continue
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)
        coef.append(m.coef_[0])
        intercept.append(m.intercept_[0])
    head = LinearHead(list(codes), np.array(coef), np.array(intercept), True, np.full(len(codes), THRESHOLD))
    return vocab, head


def fit_multiclass(
    ex: Examples, rows: Sequence[int], classes: Sequence[str], c: float
) -> tuple[Vocabulary, LinearHead]:
    vocab = fit_vocabulary([ex.feats[i] for i in rows])
    x = _matrix(vocab, ex, rows)
    y = np.array([ex.labels[i] for i in rows])
    m = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)
    order = [list(m.classes_).index(k) for k in classes if k in m.classes_]
    present = [k for k in classes if k in m.classes_]
    return vocab, LinearHead(present, m.coef_[order], m.intercept_[order], False)


def all_examples(chats: Sequence[LabelledChat], rules) -> dict[str, Examples]:
    return {
        "violations": violation_examples(chats, rules),
        "satisfaction": customer_examples(chats, "satisfaction"),
        "emotion": customer_examples(chats, "emotion"),
        "resolution": resolution_examples(chats, rules),
    }


def fit_chat_model(
    chats: Sequence[LabelledChat], examples: dict[str, Examples], train: set[int], extra: dict | None = None
) -> ChatModel:
    """A ChatModel fitted on the chats whose index is in ``train`` (every head's rows of them)."""
    vocab, head = {}, {}
    for name, ex in examples.items():
        rows = [k for k, (ci, _) in enumerate(ex.owners) if ci in train]
        if name == "violations":
            vocab[name], head[name] = fit_multilabel(ex, rows, FORBIDDEN_CATEGORIES, C[name])
        else:
            classes = {"satisfaction": SATISFACTION, "emotion": EMOTIONS, "resolution": RESOLUTION}[name]
            vocab[name], head[name] = fit_multiclass(ex, rows, classes, C[name])
    return ChatModel(ChatModel.state_of(vocab, head, extra or {}), "candidate")
