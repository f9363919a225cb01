"""The trained chat-inspection models: agent-turn violations, customer-turn satisfaction and
emotion, and the conversation's resolution. One data-only artifact (kind ``chat``), fitted by
``training/chat_run.py`` on the labelled chats of CHAT_ANNOTATION.md.

Why linear models over sparse features: 1,150 labelled agent turns and 280 conversations are
too few for anything deeper, a linear model's decision splits into per-feature
contributions (so the clause or turn that carried it is the evidence), and one sparse
product scores a whole conversation in well under a millisecond.

Features come from the pipeline pass the turns already went through (tokens, char n-grams
and lexicon hits of :func:`app.pipeline.sentiment.doc_features`, the review sentiment) plus
the context a reader uses: the customer turn before an agent reply, the agent turn before a
customer turn, and the end of the conversation. Nothing is re-segmented.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax

from app.pipeline.artifacts import check_state, decode_strings, encode_strings, is_configured, load_artifact
from app.pipeline.findings import Analysis, Doc
from app.pipeline.sentiment import doc_features
from app.pipeline.sparse import sparse_counts, tfidf_values

# Feature prefixes: one namespace per context block, so 退款 said by the agent and 退款 said
# by the customer are different features.
CONTEXT, AGENT_BEFORE, LAST, SECOND_LAST, LAST_AGENT, CUE = "C|", "A|", "L|", "M|", "G|", "R|"


def words(doc: Doc) -> list[str]:
    return [w.lower() for w, _, _ in doc.tokens if not w.isspace()]


def bigrams(text: str) -> list[str]:
    t = "".join(text.lower().split())
    return [t[i : i + 2] for i in range(len(t) - 1)]


def positioned_features(doc: Doc) -> tuple[list[str], np.ndarray]:
    """The features of :func:`doc_features` (without hits) with the normalised offset each
    starts at, so a linear score splits into per-clause contributions without featurising
    any clause again."""
    feats = doc_features(doc, use_hits=False)
    text = doc.text.lower()
    toks = [(w.lower(), s) for w, s, _ in doc.tokens if not w.isspace()]
    pos = [s for _, s in toks] + [s for _, s in toks[:-1]]
    chars = [i for i, ch in enumerate(text) if not ch.isspace()]
    pos += chars + list(range(len(text) - 1)) + list(range(len(text) - 2))
    return feats, np.asarray(pos, dtype=np.int64)


@dataclass
class Vocabulary:
    """Feature string -> column, with idf; rows are sublinear tf x idf, L2-normalised."""

    index: dict[str, int]
    idf: np.ndarray

    def transform(self, feature_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        n, rows, cols, counts = sparse_counts((list(f) for f in feature_lists), self.index)
        x = tfidf_values(rows, cols, counts, self.idf)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        return sp.csr_matrix((x, cols, indptr), shape=(n, len(self.index)))  # rows come sorted

    def state(self, prefix: str) -> dict:
        return {f"{prefix}vocab": encode_strings(list(self.index)), f"{prefix}idf": np.asarray(self.idf)}

    @classmethod
    def from_state(cls, state: dict, prefix: str) -> Vocabulary:
        vocab = decode_strings(state[f"{prefix}vocab"])
        return cls({w: i for i, w in enumerate(vocab)}, np.asarray(state[f"{prefix}idf"], dtype=np.float64))


@dataclass
class LinearHead:
    """Weights over [sparse block | dense block]; ``multilabel`` heads use a sigmoid and a
    threshold per class, the others a softmax."""

    classes: list[str]
    coef: np.ndarray  # (k, width)
    intercept: np.ndarray  # (k,)
    multilabel: bool
    thresholds: np.ndarray | None = None

    def raw(self, x: sp.csr_matrix, dense: np.ndarray | None = None) -> np.ndarray:
        """Scores of [x | dense]: the sparse and dense blocks multiplied apart (no hstack)."""
        width = x.shape[1]
        z = np.asarray(x @ self.coef[:, :width].T) + self.intercept
        if dense is not None and dense.shape[1]:
            z += dense @ self.coef[:, width:].T
        return z

    def proba(self, x: sp.csr_matrix, dense: np.ndarray | None = None) -> np.ndarray:
        z = self.raw(x, dense)
        return expit(z) if self.multilabel else softmax(z, axis=1)

    def state(self, prefix: str) -> dict:
        out = {
            f"{prefix}classes": encode_strings(self.classes),
            f"{prefix}coef": self.coef,
            f"{prefix}intercept": self.intercept,
            f"{prefix}multilabel": int(self.multilabel),
        }
        if self.thresholds is not None:
            out[f"{prefix}thresholds"] = self.thresholds
        return out

    @classmethod
    def from_state(cls, state: dict, prefix: str) -> LinearHead:
        th = state.get(f"{prefix}thresholds")
        return cls(
            decode_strings(state[f"{prefix}classes"]),
            np.asarray(state[f"{prefix}coef"], dtype=np.float64),
            np.asarray(state[f"{prefix}intercept"], dtype=np.float64),
            bool(state[f"{prefix}multilabel"]),
            None if th is None else np.asarray(th, dtype=np.float64),
        )


# --- what each model reads ----------------------------------------------------------------
def _probs(a: Analysis) -> list[float]:
    p = a.sentiment.probabilities
    return [p.get("negative", 0.0), p.get("neutral", 0.0), p.get("positive", 0.0)]


@dataclass(frozen=True, slots=True)
class TurnView:
    """What the models see of one turn: its role, the pipeline's Doc and analysis."""

    index: int
    role: str
    doc: Doc
    analysis: Analysis


_HANDLE = re.compile(r"(?:微信|威信|vx|v信|wx|qq|扣扣|企鹅|加我|號|号)[^0-9a-z]{0,4}[0-9a-z][0-9a-z_\-]{4,}", re.I)
_DIGITS = re.compile(r"\d[\d -]{6,}\d")
_MASKED = re.compile(r"[*＊]{2,}")


def shape_features(text: str) -> list[str]:
    """What the words alone miss: a contact handle or a long number written out, a masked
    number, questions, and the familiar 你 where a service reply says 您."""
    out = []
    if _HANDLE.search(text):
        out.append(CUE + "shape:handle")
    if _DIGITS.search(text):
        out.append(CUE + "shape:digits")
    if _MASKED.search(text):
        out.append(CUE + "shape:masked")
    if "?" in text or "？" in text:
        out.append(CUE + "shape:question")
    if "你" in text.replace("你好", ""):
        out.append(CUE + "shape:ni")
    return out


def agent_turn_features(views: Sequence[TurnView], i: int, cues: Sequence[str]) -> list[str]:
    """An agent reply: its own n-grams and lexicon hits, its shape, the customer turn before
    it (words), and the cues that matched in it (phrase-list codes, agent cues)."""
    v = views[i]
    feats = doc_features(v.doc) + shape_features(v.doc.text)
    before = next((w for w in reversed(views[:i]) if w.role == "customer"), None)
    if before is not None:
        feats += [CONTEXT + w for w in words(before.doc)]
    feats += [CUE + c for c in cues]
    return feats


SATISFACTION_DENSE = 8


def customer_turn_features(views: Sequence[TurnView], i: int) -> tuple[list[str], list[float]]:
    """A customer turn: its n-grams and hits, the agent turn before it (words), and the trend:
    its review sentiment, the previous customer turn's, and where it sits in the chat."""
    v = views[i]
    feats = doc_features(v.doc)
    agent = next((w for w in reversed(views[:i]) if w.role in ("agent", "bot")), None)
    if agent is not None:
        feats += [AGENT_BEFORE + w for w in words(agent.doc)]
    customers = [w.index for w in views if w.role == "customer"]
    k = customers.index(v.index)
    prev = views[customers[k - 1]] if k else None
    dense = _probs(v.analysis) + (_probs(prev.analysis) if prev else [0.0, 1.0, 0.0])
    dense += [float(k == 0), float(k == len(customers) - 1)]
    return feats, dense


RESOLUTION_DENSE = 10


def conversation_features(
    views: Sequence[TurnView], cue_hits: Sequence[tuple[int, str, str]]
) -> tuple[list[str], list[float]]:
    """The end of a conversation: the last two customer turns and the last agent turn, the
    resolution cues (speaker, status, whether the customer had the last word), and facts:
    who spoke last, whether the final customer run was answered or asked a question, how
    the customer's sentiment went."""
    customers = [v for v in views if v.role == "customer"]
    agents = [v for v in views if v.role == "agent"]
    feats: list[str] = []
    if customers:
        last = customers[-1]
        feats += [LAST + f for f in words(last.doc) + bigrams(last.doc.text)]
    if len(customers) > 1:
        feats += [SECOND_LAST + w for w in words(customers[-2].doc)]
    if agents:
        feats += [LAST_AGENT + w for w in words(agents[-1].doc)]
    last_customer = customers[-1].index if customers else -1
    for turn, speaker, status in cue_hits:
        feats.append(f"{CUE}{speaker}:{status}")
        if speaker == "customer" and turn == last_customer:
            feats.append(f"{CUE}last:{status}")
    roles = [v.role for v in views if v.role in ("customer", "agent")]
    neg = [_probs(v.analysis)[0] for v in customers]
    last_text = customers[-1].doc.text if customers else ""
    dense = [
        float(bool(roles) and roles[-1] == "customer"),
        float(bool(agents)),
        float("?" in last_text or last_text.rstrip().endswith(("吗", "呢"))),
        *(_probs(customers[-1].analysis) if customers else [0.0, 1.0, 0.0]),
        max(neg, default=0.0),
        float(np.mean(neg)) if neg else 0.0,
        float(np.log1p(len(customers))),
        float(np.log1p(len(agents))),
    ]
    return feats, dense


# --- the served model ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CodeFinding:
    """A violation code the model decided for an agent turn, with the clause that carried it
    (original offsets) and its probability."""

    code: str
    probability: float
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TurnMood:
    satisfaction: str
    satisfaction_probs: dict[str, float]
    emotion: str
    emotion_probs: dict[str, float]


@dataclass(frozen=True, slots=True)
class ResolutionCall:
    status: str
    probabilities: dict[str, float]
    turns: tuple[int, ...]  # the deciding turns, strongest first


STATE_SCHEMA = 1
HEADS = ("violations", "satisfaction", "emotion", "resolution")


class ChatModel:
    """The chat heads (each a vocabulary + a linear head) and the QA constants fitted with them."""

    def __init__(self, state: dict, version: str):
        self.version = version
        self.vocab = {h: Vocabulary.from_state(state, f"{h}_") for h in HEADS}
        self.head = {h: LinearHead.from_state(state, f"{h}_") for h in HEADS}
        self.segmenter = str(state.get("segmenter", ""))
        self._names = list(self.vocab["resolution"].index)

    @staticmethod
    def state_of(vocab: dict, head: dict, extra: dict) -> dict:
        out = {"schema": STATE_SCHEMA, **extra}
        for h in HEADS:
            out |= vocab[h].state(f"{h}_") | head[h].state(f"{h}_")
        return out

    # violations ---------------------------------------------------------------------------
    def violations(
        self, views: Sequence[TurnView], cues: dict[int, list[tuple[str, int]]], cleared: dict[int, set[str]]
    ) -> dict[int, list[CodeFinding]]:
        """Codes per agent turn (position in ``views``) with their clause evidence. ``cues``: per
        agent turn, (cue feature, original offset) of its lexicon hits; ``cleared``: codes an
        analyst's exception context rules out in that turn (an exception always wins)."""
        agent = [i for i, v in enumerate(views) if v.role == "agent"]
        if not agent:
            return {}
        feats = [agent_turn_features(views, i, [c for c, _ in cues[i]]) for i in agent]
        x = self.vocab["violations"].transform(feats)
        head = self.head["violations"]
        probs = head.proba(x)
        out: dict[int, list[CodeFinding]] = {}
        for row, i in enumerate(agent):
            fired = np.flatnonzero(probs[row] >= head.thresholds)
            if not len(fired):
                continue
            found = []
            for k in fired:
                code = head.classes[k]
                if code in cleared.get(i, ()):
                    continue
                lo, hi = x.indptr[row], x.indptr[row + 1]
                start, end = self._evidence(views[i], x.indices[lo:hi], x.data[lo:hi], head.coef[k], cues[i])
                found.append(CodeFinding(code, round(float(probs[row, k]), 4), start, end))
            if found:
                out[i] = found
        return out

    def _evidence(self, view: TurnView, cols_in_row, values_in_row, weights: np.ndarray, cues) -> tuple[int, int]:
        """The clause whose features pushed the code most (original offsets): the linear score
        split by where each feature sits, from the one featurisation already done."""
        doc = view.doc
        clauses = doc.clauses or [(0, len(doc.text))]
        if len(clauses) == 1:
            return doc.norm.to_original(*clauses[0])
        feats, pos = positioned_features(doc)
        index = self.vocab["violations"].index
        cols = np.fromiter((index.get(f, -1) for f in feats), dtype=np.int64, count=len(feats))
        known = cols >= 0
        cols, pos = cols[known], pos[known]
        counts = np.bincount(cols, minlength=len(index))[cols]
        values = values_in_row[np.searchsorted(cols_in_row, cols)]  # the row's columns are sorted
        starts = np.array([a for a, _ in clauses])
        where = np.searchsorted(starts, pos, side="right") - 1
        score = np.bincount(where, weights=weights[cols] * values / counts, minlength=len(clauses))
        orig = [doc.norm.to_original(a, b) for a, b in clauses]
        ostarts = np.array([a for a, _ in orig])
        for feature, at in cues:
            col = index.get(CUE + feature, -1)
            if col >= 0:
                k = np.searchsorted(cols_in_row, col)
                if k < len(cols_in_row) and cols_in_row[k] == col:
                    score[max(np.searchsorted(ostarts, at, side="right") - 1, 0)] += weights[col] * values_in_row[k]
        return orig[int(np.argmax(score))]

    # customer turns -------------------------------------------------------------------------
    def moods(self, views: Sequence[TurnView]) -> dict[int, TurnMood]:
        customer = [i for i, v in enumerate(views) if v.role == "customer"]
        if not customer:
            return {}
        rows = [customer_turn_features(views, i) for i in customer]
        dense = np.array([d for _, d in rows], dtype=np.float64)
        out = {}
        probs = {}
        for h in ("satisfaction", "emotion"):
            probs[h] = self.head[h].proba(self.vocab[h].transform([f for f, _ in rows]), dense)
        for r, i in enumerate(customer):
            sat = _labelled(self.head["satisfaction"].classes, probs["satisfaction"][r])
            emo = _labelled(self.head["emotion"].classes, probs["emotion"][r])
            out[i] = TurnMood(max(sat, key=sat.get), sat, max(emo, key=emo.get), emo)
        return out

    # the conversation ----------------------------------------------------------------------
    def resolution(self, views: Sequence[TurnView], cues: Sequence[tuple[int, str, str]]) -> ResolutionCall:
        feats, dense = conversation_features(views, cues)
        vocab, head = self.vocab["resolution"], self.head["resolution"]
        x, d = vocab.transform([feats]), np.array([dense], dtype=np.float64)
        p = head.proba(x, d)[0]
        k = int(np.argmax(p))
        return ResolutionCall(head.classes[k], _labelled(head.classes, p), self._deciding(views, cues, x, d, k))

    def _deciding(self, views, cues, x, dense, k: int) -> tuple[int, ...]:
        """Turns whose blocks pushed the decision most: the last customer turns (their words and
        the end-of-chat facts), the last agent turn, and turns with a resolution cue."""
        head, index = self.head["resolution"], self.vocab["resolution"].index
        w = head.coef[k] - head.coef.mean(axis=0)
        contrib = dict(zip(x.indices, x.data * w[x.indices]))
        width = x.shape[1]
        contrib |= {width + j: v * w[width + j] for j, v in enumerate(dense[0])}
        customers = [v.index for v in views if v.role == "customer"]
        agents = [v.index for v in views if v.role == "agent"]
        turn_of_prefix = {
            LAST: customers[-1] if customers else None,
            SECOND_LAST: customers[-2] if len(customers) > 1 else None,
            LAST_AGENT: agents[-1] if agents else None,
        }
        score: dict[int, float] = {}
        names = self._names
        for col, c in contrib.items():
            if col >= len(names):  # the dense facts are about the end of the conversation
                turn = turn_of_prefix[LAST] if customers else None
            else:
                turn = turn_of_prefix.get(names[col][:2])
            if turn is not None:
                score[turn] = score.get(turn, 0.0) + c
        for turn, speaker, status in cues:
            col = index.get(f"{CUE}{speaker}:{status}", -1)
            if col >= 0:
                score[turn] = score.get(turn, 0.0) + contrib.get(col, 0.0)
        ranked = sorted((t for t, s in score.items() if s > 0), key=lambda t: -score[t])
        return tuple(ranked[:2])


def _labelled(classes: Sequence[str], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 4) for c, v in zip(classes, p)}


KIND = "chat"


def load_chat_model(models_dir: Path, *, version: str | None = None) -> ChatModel | None:
    """The chat model ``models/current.json`` names (or ``version``); None when none is
    configured (then chats are inspected by the lexicon rules alone). A configured but
    unreadable artifact raises ArtifactError, like the review models."""
    models_dir = Path(models_dir)
    if version is None and not is_configured(models_dir, KIND):
        return None
    state, _metrics, version = load_artifact(models_dir, KIND, version)
    check_state(state, KIND, STATE_SCHEMA, ("schema",), "training/train_chat.py")
    return ChatModel(state, version)
