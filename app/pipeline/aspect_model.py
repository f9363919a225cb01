"""The trained aspect scorer: 18 (aspect, polarity) pairs from n-grams and lexicon hits.

What it computes, for a batch of documents, in one sparse matrix product:

* features: char 1-3 grams of the normalised text and jieba word unigrams (1 + log count,
  times idf, each block L2-normalised), plus a small dense block from the lexicon hits
  *after negation* (per dimension and polarity: summed weight, count, how many were
  negated) and the aspect targets named (快递, 客服 …);
* 36 linear scores: one "direct" score per pair, one "presence" score per aspect (either
  polarity) and one "polarity" score per aspect (negative vs positive, learnt only on texts
  that evaluate that aspect);
* per pair ``raw = direct + min(presence, ±polarity)``, then Platt scaling
  ``p = 1 / (1 + exp(-(a * raw + c)))`` fitted on cross-validated scores, and a per-pair
  threshold on ``p`` (stored per pair; trained as the one value that maximised
  cross-validated micro-F1, since per-pair optima over-fit). A pair too thin to learn (fewer than
  ``MIN_PAIR_POSITIVES`` examples, or best CV F1 below ``MIN_PAIR_F1``) gets an unreachable
  threshold: the model never asserts it on its own;
* per pair, a flag chosen on the same out-of-fold scores: whether a lexicon hit of that
  aspect and polarity also asserts the pair, or alone asserts it (kept only where that raised
  CV F1 — the thin pairs, whose cues the lexicon knows better than 7 examples can teach).
  The reported score is still the model's probability.

Evidence for an asserted pair is the clause(s) holding lexicon hits of that aspect and
polarity; when there are none, the clause whose own score for the pair is highest
(the same model applied to each clause alone, again one matrix product per batch).

The artifact is data only (numpy arrays, numbers, strings): nothing but skops' default
types, so it loads with an empty trusted-types list. Training helpers (:func:`fit_state`,
:func:`cross_validate`, :func:`read_annotations`) live here so the training script, the
evaluation script and the tests share one implementation.
"""
from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.pipeline.artifacts import ArtifactError, check_state, is_configured, load_artifact
from app.pipeline.aspects import AspectScorer, LexiconAspectScorer, clause_evidence
from app.pipeline.findings import ASPECTS, POLARITIES, AspectFinding, Doc, KeywordHit
from app.pipeline.lexicon import DIMENSIONS

log = logging.getLogger(__name__)

KIND = "aspects"
STATE_SCHEMA = 1
PAIRS: tuple[tuple[str, str], ...] = tuple((a, p) for a in ASPECTS for p in POLARITIES)
"""Output order: aspect-major, positive before negative (18 pairs)."""
NEGATIVE_PAIRS = tuple(j for j, (_, p) in enumerate(PAIRS) if p == "negative")
MIN_PAIR_F1 = 0.2
MIN_PAIR_POSITIVES = 15
NEVER = 2.0  # threshold for a pair the model does not assert (probabilities are <= 1)

_WORD, _SEP = "\x02", "\x00"
_LEX_DIMS = DIMENSIONS + ("general",)
LEX_FEATURES: tuple[str, ...] = tuple(
    [f"{k}:{d}:{p}" for d in _LEX_DIMS for p in POLARITIES for k in ("w", "n", "neg")]
    + [f"t:{d}" for d in DIMENSIONS] + ["len", "clauses"])
_LEX_INDEX = {name: i for i, name in enumerate(LEX_FEATURES)}


# ---------------------------------------------------------------- features

@dataclass(frozen=True, slots=True)
class View:
    """What the featurizer reads: a whole document or one clause of it."""
    text: str
    words: tuple[str, ...]
    hits: tuple[KeywordHit, ...]
    n_clauses: int


def doc_view(doc: Doc) -> View:
    return View(doc.text, tuple(w for w, _, _ in doc.tokens if not w.isspace()),
                tuple(doc.hits), len(doc.clauses))


def clause_views(doc: Doc) -> list[View]:
    """One view per clause: its text, the tokens inside it and its lexicon hits."""
    out = []
    for ci, (a, b) in enumerate(doc.clauses):
        words = tuple(w for w, s, e in doc.tokens if a <= s and e <= b and not w.isspace())
        out.append(View(doc.text[a:b], words, tuple(h for h in doc.hits if h.clause == ci), 1))
    return out


def text_features(view: View) -> list[str]:
    """Char 1-3 grams (lower-cased, no spaces) and prefixed word unigrams."""
    t = "".join(view.text.lower().split())
    feats = list(t)
    feats += [t[i:i + 2] for i in range(len(t) - 1)]
    feats += [t[i:i + 3] for i in range(len(t) - 2)]
    feats += [_WORD + w.lower() for w in view.words]
    return feats


def lex_vector(view: View, targets: dict[str, str]) -> np.ndarray:
    """The lexicon block: hit weight/count/negations per (dimension, polarity), targets, size."""
    v = np.zeros(len(LEX_FEATURES), dtype=np.float64)
    for h in view.hits:
        if h.dimension in _LEX_DIMS:
            v[_LEX_INDEX[f"w:{h.dimension}:{h.polarity}"]] += h.weight
            v[_LEX_INDEX[f"n:{h.dimension}:{h.polarity}"]] += 1
            v[_LEX_INDEX[f"neg:{h.dimension}:{h.polarity}"]] += h.negated
    for w in view.words:
        if (d := targets.get(w)) is not None:
            v[_LEX_INDEX[f"t:{d}"]] += 1
    v[_LEX_INDEX["len"]] = math.log1p(len(view.text)) / 5
    v[_LEX_INDEX["clauses"]] = math.log1p(view.n_clauses) / 2
    return v


class Featurizer:
    """Views -> the model's sparse design matrix (vocabulary, idf and block scales fixed)."""

    def __init__(self, vocab: Sequence[str], idf: np.ndarray, targets: dict[str, str], lex_scale: float):
        self.vocab = list(vocab)
        self.index = {f: i for i, f in enumerate(self.vocab)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.is_word = np.array([f.startswith(_WORD) for f in self.vocab], dtype=bool)
        self.targets = dict(targets)
        self.lex_scale = float(lex_scale)
        self.n_features = len(self.vocab) + len(LEX_FEATURES)

    @classmethod
    def fit(cls, views: Sequence[View], targets: dict[str, str], *, min_df: int = 2,
            lex_scale: float = 0.5) -> "Featurizer":
        df: Counter[str] = Counter()
        for v in views:
            df.update(set(text_features(v)))
        vocab = sorted(f for f, n in df.items() if n >= min_df)
        n = len(views)
        idf = np.array([math.log((1 + n) / (1 + df[f])) + 1 for f in vocab])
        return cls(vocab, idf, targets, lex_scale)

    def transform(self, views: Sequence[View]) -> sp.csr_matrix:
        """Sublinear tf-idf, L2-normalised per block (words, chars), plus the lexicon block.

        Vectorised over the whole batch: per-row numpy calls would cost more than the maths.
        """
        n, width = len(views), len(self.vocab)
        get = self.index.get
        flat: list[int] = []
        lengths: list[int] = []
        for v in views:
            feats = text_features(v)
            flat.extend(map(get, feats, repeat(-1, len(feats))))  # lookups in C; -1 = unknown
            lengths.append(len(feats))
        ids = np.asarray(flat, dtype=np.int64)
        known = ids >= 0
        keys = np.repeat(np.arange(n, dtype=np.int64), lengths)[known] * width + ids[known]
        uniq, counts = np.unique(keys, return_counts=True)
        rows, cols = np.divmod(uniq, width) if width else (uniq, uniq)
        x = (1 + np.log(counts)) * self.idf[cols]
        group = rows * 2 + self.is_word[cols]
        norms = np.sqrt(np.bincount(group, weights=x * x, minlength=2 * n))[group]
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
        # float32 like the weights: a float64 matrix would make scipy upcast all the weights
        # on every product (~0.4 ms, more than the rest of a one-text request).
        text = sp.csr_matrix((x.astype(np.float32), (rows, cols)), shape=(n, width))
        lex = np.array([lex_vector(v, self.targets) for v in views]).reshape(n, len(LEX_FEATURES))
        return sp.hstack([text, sp.csr_matrix((lex * self.lex_scale).astype(np.float32))], format="csr")


# ---------------------------------------------------------------- scores

def combine(lin: np.ndarray) -> np.ndarray:
    """(n, 36) linear scores -> (n, 18) raw pair scores: direct + min(presence, ±polarity)."""
    direct, presence, polarity = lin[:, :18], lin[:, 18:27], lin[:, 27:36]
    out = np.empty_like(direct)
    out[:, 0::2] = direct[:, 0::2] + np.minimum(presence, -polarity)  # positive pairs
    out[:, 1::2] = direct[:, 1::2] + np.minimum(presence, polarity)   # negative pairs
    return out


def platt(raw: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(raw * a + c, -35, 35)))


class AspectModel:
    """The served scorer, rebuilt from the artifact's data-only state dict.

    ``state``: ``schema``, ``vocab`` (uint8 utf-8, features joined by NUL), ``idf``,
    ``targets`` (JSON of term -> dimension), ``lex_features``, ``lex_scale``, ``coef``
    (36 x features, float32), ``intercept`` (36), ``platt_a``/``platt_c``/``threshold`` (18),
    ``lexicon_union`` (18, 0/1),
    ``pairs`` (JSON list of "aspect:polarity").
    """

    _KEYS = ("schema", "vocab", "idf", "targets", "lex_features", "lex_scale", "coef", "intercept",
             "platt_a", "platt_c", "threshold", "lexicon_union", "pairs")

    def __init__(self, state: dict, version: str):
        self._check(state)
        self._state = state
        self.version = version
        vocab = bytes(state["vocab"]).decode("utf-8").split(_SEP) if len(state["vocab"]) else []
        self.featurizer = Featurizer(vocab, state["idf"], json.loads(str(state["targets"])),
                                     float(state["lex_scale"]))
        self._w = np.ascontiguousarray(np.asarray(state["coef"], dtype=np.float32).T)
        self._b = np.asarray(state["intercept"], dtype=np.float64)
        self.platt_a = np.asarray(state["platt_a"], dtype=np.float64)
        self.platt_c = np.asarray(state["platt_c"], dtype=np.float64)
        self.threshold = np.asarray(state["threshold"], dtype=np.float64)
        self.lexicon_union = np.asarray(state["lexicon_union"], dtype=bool)

    @staticmethod
    def _check(state) -> None:
        """Refuse a state this code cannot serve, with a message rather than a crash later."""
        check_state(state, "aspects", STATE_SCHEMA, AspectModel._KEYS, "training/train_aspects.py")
        if json.loads(str(state["pairs"])) != [f"{a}:{p}" for a, p in PAIRS]:
            raise ArtifactError("aspects state was trained for other aspect/polarity pairs")
        if list(state["lex_features"]) != list(LEX_FEATURES):
            raise ArtifactError("aspects state uses other lexicon features than this code computes")
        n_terms = bytes(state["vocab"]).count(_SEP.encode()) + 1 if len(state["vocab"]) else 0
        shape = np.shape(state["coef"])
        if len(state["idf"]) != n_terms or shape != (36, n_terms + len(LEX_FEATURES)):
            raise ArtifactError(f"aspects state is inconsistent: {n_terms} terms, {len(state['idf'])} idf "
                                f"values, weights of shape {shape}")
        if any(np.shape(state[k]) != (18,) for k in ("platt_a", "platt_c", "threshold", "lexicon_union")):
            raise ArtifactError("aspects state needs 18 calibration parameters and thresholds")

    def state(self) -> dict:
        return self._state

    def linear(self, views: Sequence[View]) -> np.ndarray:
        """(n, 36) linear scores for a batch of views: one sparse product."""
        if not views:
            return np.zeros((0, 36))
        return np.asarray(self.featurizer.transform(views) @ self._w) + self._b

    def probabilities(self, views: Sequence[View]) -> np.ndarray:
        """(n, 18) calibrated probability of each pair, in PAIRS order."""
        return platt(combine(self.linear(views)), self.platt_a, self.platt_c)

    def decide(self, probs: np.ndarray, docs: Sequence[Doc]) -> np.ndarray:
        """(n, 18) decisions: probability over the pair's threshold, or (for the pairs flagged
        in ``lexicon_union``) a lexicon hit of that aspect and polarity."""
        return (probs >= self.threshold) | (self.lexicon_union & lexicon_pairs(docs))

    def score(self, docs: Sequence[Doc]) -> list[tuple[AspectFinding, ...]]:
        """Asserted pairs per document, best first, each with its evidence clauses."""
        probs = self.probabilities([doc_view(d) for d in docs])
        decided = self.decide(probs, docs)
        hit_clauses = [{j: _hit_clauses(d, j) for j in np.flatnonzero(decided[i])} for i, d in enumerate(docs)]
        need = [i for i, hc in enumerate(hit_clauses)
                if len(docs[i].clauses) > 1 and any(not c for c in hc.values())]
        per_clause = self.clause_scores([docs[i] for i in need])
        fallback = dict(zip(need, per_clause))
        out = []
        for i, doc in enumerate(docs):
            findings = []
            for j, clauses in hit_clauses[i].items():
                if not clauses and doc.clauses:
                    clauses = [int(np.argmax(fallback[i][:, j]))] if i in fallback else [0]
                aspect, polarity = PAIRS[j]
                findings.append(AspectFinding(aspect, polarity, round(float(probs[i, j]), 4),
                                              clause_evidence(doc, clauses)))
            out.append(_one_polarity_per_evidence(findings))
        return out

    def clause_scores(self, docs: Sequence[Doc]) -> list[np.ndarray]:
        """Per document, (n_clauses, 18) raw pair scores of each clause on its own: the
        clause that scores highest for a pair is the one that carried it. One matrix product."""
        views = [v for d in docs for v in clause_views(d)]
        raw = combine(self.linear(views))
        out, k = [], 0
        for d in docs:
            out.append(raw[k:k + len(d.clauses)])
            k += len(d.clauses)
        return out


def _one_polarity_per_evidence(findings: list[AspectFinding]) -> tuple[AspectFinding, ...]:
    """Both polarities of one aspect stand only on different evidence (ANNOTATION.md rule 2:
    praise and blame of different parts); on the same clauses the weaker one is dropped."""
    best: dict[tuple, AspectFinding] = {}
    for f in findings:
        key = (f.aspect, f.evidence)
        if key not in best or f.score > best[key].score:
            best[key] = f
    return tuple(sorted(best.values(), key=lambda f: -f.score))


def lexicon_pairs(docs: Sequence[Doc]) -> np.ndarray:
    """(n, 18) whether each document has a lexicon hit of each (aspect, polarity) pair."""
    index = {p: j for j, p in enumerate(PAIRS)}
    out = np.zeros((len(docs), len(PAIRS)), dtype=bool)
    for i, d in enumerate(docs):
        for h in d.hits:
            if (j := index.get((h.dimension, h.polarity))) is not None:
                out[i, j] = True
    return out


def _f1(pred: np.ndarray, t: np.ndarray) -> float:
    tp = float((pred & (t == 1)).sum())
    return 2 * tp / (pred.sum() + t.sum()) if pred.sum() + t.sum() else 0.0


def _hit_clauses(doc: Doc, j: int) -> list[int]:
    """Clauses holding lexicon hits of pair ``j``'s aspect and (negation-resolved) polarity."""
    aspect, polarity = PAIRS[j]
    return sorted({h.clause for h in doc.hits if h.dimension == aspect and h.polarity == polarity})


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


# ---------------------------------------------------------------- annotated data

class AnnotationError(ValueError):
    """A labelled file cannot be used; the message names the file and line."""


_POLARITY = {"pos": "positive", "neg": "negative", "positive": "positive", "negative": "negative"}
SENTIMENTS = {"pos": "positive", "neu": "neutral", "neg": "negative",
              "positive": "positive", "neutral": "neutral", "negative": "negative"}


@dataclass(frozen=True, slots=True)
class Annotated:
    """One labelled text in the annotation format (see ANNOTATION.md / docs/models.md)."""
    line: int
    id: str
    domain: str
    text: str
    sentiment: str | None  # positive / neutral / negative, or None when not labelled
    pairs: frozenset[tuple[str, str]]  # (aspect, positive|negative)


def read_annotations(path: Path) -> list[Annotated]:
    """Read and validate a JSONL file in the annotation format; the first bad row raises
    AnnotationError naming its line, so a run stops before it writes anything.

    Each line: ``{"text": str, "aspects": [{"aspect": code, "polarity": "pos"|"neg"}, ...],
    "sentiment": "pos"|"neu"|"neg" (optional), "id": str (optional), "domain": str (optional)}``.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(_annotation(json.loads(line), n))
            except json.JSONDecodeError as exc:
                raise AnnotationError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            except AnnotationError as exc:
                raise AnnotationError(f"{path}:{n}: {exc}") from None
            except UnicodeDecodeError as exc:
                raise AnnotationError(f"{path}:{n}: not UTF-8 ({exc})") from None
    if not out:
        raise AnnotationError(f"{path}: no rows")
    return out


def _annotation(rec, n: int) -> Annotated:
    if not isinstance(rec, dict):
        raise AnnotationError("expected a JSON object")
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise AnnotationError("'text' must be a non-empty string")
    aspects = rec.get("aspects")
    if not isinstance(aspects, list):
        raise AnnotationError("'aspects' must be a list (use [] for a text that evaluates no aspect)")
    pairs = set()
    for k, a in enumerate(aspects):
        if not isinstance(a, dict) or a.get("aspect") not in ASPECTS or a.get("polarity") not in _POLARITY:
            raise AnnotationError(f"aspects[{k}] must be {{\"aspect\": one of {', '.join(ASPECTS)}, "
                                  f"\"polarity\": \"pos\" or \"neg\"}}, got {json.dumps(a, ensure_ascii=False)}")
        pairs.add((a["aspect"], _POLARITY[a["polarity"]]))
    sentiment = rec.get("sentiment")
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise AnnotationError(f"'sentiment' must be pos, neu or neg, got {sentiment!r}")
    return Annotated(n, str(rec.get("id") or n), str(rec.get("domain") or ""), text,
                     SENTIMENTS.get(sentiment), frozenset(pairs))


def label_matrix(pair_sets: Iterable[Iterable[tuple[str, str]]]) -> np.ndarray:
    """(n, 18) 0/1 labels in PAIRS order."""
    index = {p: j for j, p in enumerate(PAIRS)}
    rows = [list(ps) for ps in pair_sets]
    y = np.zeros((len(rows), len(PAIRS)), dtype=np.int8)
    for i, ps in enumerate(rows):
        for p in ps:
            y[i, index[p]] = 1
    return y


# ---------------------------------------------------------------- training

def _targets36(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and row masks of the 36 linear models: 18 direct, 9 presence, 9 polarity."""
    pos, neg = y[:, 0::2], y[:, 1::2]
    presence = pos | neg
    labels = np.concatenate([y, presence, neg], axis=1)
    masks = np.concatenate([np.ones((len(y), 27), bool), presence.astype(bool)], axis=1)
    return labels, masks


def _fit_linear(x: sp.csr_matrix, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(36, F) weights and (36,) intercepts of class-balanced linear SVMs, one per target."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    labels, masks = _targets36(y)
    coef = np.zeros((36, x.shape[1]), dtype=np.float32)
    intercept = np.zeros(36)
    for k in range(36):
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


def strat_keys(y: np.ndarray, folds: int) -> np.ndarray:
    """A stratification key per row for multi-label folds: its rarest pair (rare keys pooled)."""
    freq = y.sum(axis=0)
    keys = np.array([int(np.flatnonzero(r)[np.argmin(freq[np.flatnonzero(r)])]) if r.any() else -1 for r in y])
    counts = Counter(keys.tolist())
    return np.array([k if counts[k] >= folds else -2 for k in keys])


def _fit_platt(raw: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    if t.min() == t.max():
        return 1.0, -10.0
    m = LogisticRegression(C=100.0).fit(raw.reshape(-1, 1), t)
    return float(m.coef_[0, 0]), float(m.intercept_[0])


def best_threshold(p: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``p >= threshold`` against ``t``; NEVER when even the
    best F1 stays under MIN_PAIR_F1 (a pair too thin to assert honestly)."""
    if t.sum() == 0:
        return NEVER, 0.0
    order = np.argsort(-p, kind="stable")
    tp = np.cumsum(t[order])
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + t.sum())
    # only cut between distinct values
    last = np.r_[p[order][1:] != p[order][:-1], True]
    f1 = np.where(last, f1, -1)
    k = int(np.argmax(f1))
    if f1[k] < MIN_PAIR_F1:
        return NEVER, float(max(f1[k], 0))
    lower = p[order][k + 1] if k + 1 < len(p) else 0.0
    return float((p[order][k] + lower) / 2), float(f1[k])


def shared_threshold(p: np.ndarray, t: np.ndarray) -> float:
    """The one probability threshold that maximises micro-F1 over the given pairs."""
    grid = np.arange(0.05, 0.95, 0.005)
    tp = np.array([(p >= g)[t == 1].sum() for g in grid])
    npred = np.array([(p >= g).sum() for g in grid])
    f1 = 2 * tp / (npred + t.sum())
    return float(grid[int(np.argmax(f1))])


def fit_state(docs: Sequence[Doc], y: np.ndarray, targets: dict[str, str], *, c: float = 0.5,
              inner_folds: int = 5, lex_scale: float = 0.5, seed: int = 0,
              per_pair: bool = False) -> tuple[dict, np.ndarray]:
    """Train the model on ``docs`` and labels ``y`` (n, 18). Returns the artifact state and
    the out-of-fold probabilities the calibration and thresholds were fitted on.

    Thresholds: by default one shared threshold on the calibrated probabilities, the one that
    maximised out-of-fold micro-F1 (``per_pair=True``: each pair's own F1-optimal threshold,
    which over-fits the thin pairs: nested CV micro-F1 0.731 against 0.747 shared)."""
    from sklearn.model_selection import StratifiedKFold

    views = [doc_view(d) for d in docs]
    feat = Featurizer.fit(views, targets, lex_scale=lex_scale)
    x = feat.transform(views)
    oof = np.zeros((len(docs), 36))
    keys = strat_keys(y, inner_folds)
    for tr, te in StratifiedKFold(inner_folds, shuffle=True, random_state=seed).split(x, keys):
        coef, b = _fit_linear(x[tr], y[tr], c)
        oof[te] = x[te] @ coef.T + b
    raw = combine(oof)
    a, cc, thr = np.ones(18), np.zeros(18), np.full(18, NEVER)
    union = np.zeros(18, dtype=np.int8)
    probs = np.zeros_like(raw)
    hits = lexicon_pairs(docs)
    for j in range(18):
        a[j], cc[j] = _fit_platt(raw[:, j], y[:, j])
        probs[:, j] = platt(raw[:, j], a[j], cc[j])
    eligible = y.sum(axis=0) >= MIN_PAIR_POSITIVES
    shared = shared_threshold(probs[:, eligible], y[:, eligible]) if eligible.any() else NEVER
    for j in np.flatnonzero(eligible):
        if per_pair:
            thr[j], _ = best_threshold(probs[:, j], y[:, j])
        elif _f1(probs[:, j] >= shared, y[:, j]) >= MIN_PAIR_F1:
            thr[j] = shared
    for j in range(18):
        alone = probs[:, j] >= thr[j]
        f_alone, f_union, f_lex = (_f1(alone, y[:, j]), _f1(alone | hits[:, j], y[:, j]), _f1(hits[:, j], y[:, j]))
        if max(f_union, f_lex) > f_alone + 0.005:
            union[j] = 1
            if f_lex > f_union:  # the lexicon alone does better: the model abstains on this pair
                thr[j] = NEVER
    coef, b = _fit_linear(x, y, c)
    state = {
        "schema": STATE_SCHEMA,
        "vocab": np.frombuffer(_SEP.join(feat.vocab).encode("utf-8"), dtype=np.uint8).copy(),
        "idf": feat.idf.astype(np.float32), "targets": json.dumps(targets, ensure_ascii=False, sort_keys=True),
        "lex_features": list(LEX_FEATURES), "lex_scale": float(lex_scale),
        "coef": coef, "intercept": b, "platt_a": a, "platt_c": cc, "threshold": thr,
        "lexicon_union": union,
        "pairs": json.dumps([f"{x}:{p}" for x, p in PAIRS]),
    }
    return state, probs


def cross_validate(docs: Sequence[Doc], y: np.ndarray, targets: dict[str, str], *, folds: int = 5,
                   inner_folds: int = 5, seed: int = 0, progress=None, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Outer K-fold: each fold trains :func:`fit_state` (its own inner CV for calibration and
    thresholds) on the rest and predicts the held-out part. Returns (probabilities, decisions)."""
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros(y.shape)
    decided = np.zeros(y.shape, dtype=bool)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), strat_keys(y, folds))
    for k, (tr, te) in enumerate(splits):
        state, _ = fit_state([docs[i] for i in tr], y[tr], targets, inner_folds=inner_folds, seed=seed, **kw)
        model = AspectModel(state, f"cv-{k}")
        test_docs = [docs[i] for i in te]
        probs[te] = model.probabilities([doc_view(d) for d in test_docs])
        decided[te] = label_matrix([(f.aspect, f.polarity) for f in found] for found in model.score(test_docs))
        if progress:
            progress(k + 1, folds)
    return probs, decided


def pair_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """Per-pair P/R/F1 with counts, and micro/macro F1 over all 18 pairs and the 9 negative ones."""
    y, pred = y.astype(bool), pred.astype(bool)
    per = {}
    for j, (a, p) in enumerate(PAIRS):
        tp = int((y[:, j] & pred[:, j]).sum())
        fp = int((~y[:, j] & pred[:, j]).sum())
        fn = int((y[:, j] & ~pred[:, j]).sum())
        tn = int(len(y) - tp - fp - fn)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[f"{a}:{p}"] = {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(f1, 4),
                           "support": int(y[:, j].sum()), "confusion": [[tn, fp], [fn, tp]]}

    def summary(cols) -> dict:
        tp = sum(per[f"{PAIRS[j][0]}:{PAIRS[j][1]}"]["confusion"][1][1] for j in cols)
        fp = sum(per[f"{PAIRS[j][0]}:{PAIRS[j][1]}"]["confusion"][0][1] for j in cols)
        fn = sum(per[f"{PAIRS[j][0]}:{PAIRS[j][1]}"]["confusion"][1][0] for j in cols)
        micro = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        macro = float(np.mean([per[f"{PAIRS[j][0]}:{PAIRS[j][1]}"]["f1"] for j in cols]))
        return {"micro_f1": round(micro, 4), "macro_f1": round(macro, 4)}

    return {"pairs": per, "aspect_polarity": summary(range(18)), "root_causes": summary(NEGATIVE_PAIRS)}
