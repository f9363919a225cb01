"""Rules as data (``lexicons/qa_rules.json``): similar-sentence rules (相似句) with role,
position and keyword conditions.

An analyst writes a few example sentences for a rule; a turn fires it when the rule's role
and position match, its keyword conditions hold and (for a rule with examples) one of the
turn's clauses is at least ``threshold`` similar to one of the examples.

Similarity of a clause to an example, both folded like every lexicon phrase (traditional,
full-width, spaces and punctuation do not matter):

- **characters**: cosine of sublinear tf-idf over character 1-3-grams; the idf is fitted on
  every example of the file, and a clause's n-grams no example has keep the highest idf (so a
  long clause that merely contains an example's words is not "similar");
- **words**: cosine of the idf-weighted mean word vectors of the served aspect model's
  corpus block (:class:`app.pipeline.word_vectors.CorpusWords`, learnt from 50,000 reviews),
  which knows that 快递 and 物流, 找 and 联系 are near;
- the similarity is the mean of the two. When the served aspect model has no word vectors
  (the lexicon scorer, a test's fake pipeline) it is the character cosine alone, which runs
  lower, so rules fire less, never more.

Why this blend, clause by clause (``bench/bench_rules.py`` on 900 labelled agent replies, more
than half deliberate look-alikes, and 1,148 agent turns of 280 conversations, with the starter rules' 6-7
examples per code; the threshold chosen on one reply file, checked on the other): the blend
chooses 0.55 from either file, with pooled precision 0.87-1.00 and at most 2 look-alike hits in
1,428 clean turns. The character cosine alone, chosen on one file, drops to 0.75-0.79 precision
on the others (7 look-alike hits), and chosen on the other file reaches 0.85 at no threshold.
Word vectors alone fire on look-alikes that share the topic (我帮您联系快递 vs 你去问快递).
Whole turns find fewer violations than clauses (a violating clause inside a long polite reply)
and a clause is the evidence an inspector wants.

Pure: the rules are loaded and validated by :mod:`app.conversations.lexicons`; nothing here
does I/O. Every hit spans the turn's ORIGINAL text (``turns[turn].text[start:end] == text``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from app.conversations.findings import Violation
from app.conversations.text import TurnText
from app.core.taxonomy import FORBIDDEN_CATEGORIES
from app.pipeline.normalize import normalize
from app.pipeline.segment import CLAUSE_BREAK
from app.pipeline.sparse import sparse_counts

# The 服务禁语 codes of CHAT_ANNOTATION.md a rule may raise as an agent violation (pii_leak is
# found by checksums, not by similarity). Any other code is an analyst's flag, declared in the
# file's ``flags``.
SERVICE_CODES = FORBIDDEN_CATEGORIES
DEFAULT_THRESHOLD = 0.55  # bench/bench_rules.py: chosen on utterances_a, checked on utterances_b
NGRAMS = (1, 2, 3)
# A clause shorter than this (没问题, 没关系) says too little to be "like" a longer example: it is
# compared only with examples no longer than itself (bench_rules: precision on utterances_a
# 0.85 -> 1.00 and on the conversations 0.77 -> 0.87 at the same recall).
MIN_CLAUSE_CHARS = 4


@dataclass(frozen=True, slots=True)
class CustomRule:
    """One validated rule; keywords and examples are compact keys (see ``text.compact``)."""

    id: str
    code: str
    description: str
    severity: str
    role: str
    first: int | None = None  # only the first N turns of ``role``
    last: int | None = None  # only the last N turns of ``role``
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()  # as written (reported as evidence)
    example_keys: tuple[str, ...] = ()  # compact
    threshold: float = DEFAULT_THRESHOLD


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule_id: str
    code: str
    role: str
    turn: int
    text: str
    start: int  # into the original turn text
    end: int
    severity: str
    similarity: float | None = None  # None: a keyword-only rule
    example: str | None = None


def gram_codes(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(key number, n-gram code) of every character 1-3-gram of ``keys``, computed in numpy.

    A code packs the code points (21 bits each), so 1-, 2- and 3-grams never collide."""
    joined = np.frombuffer("\0".join(keys).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    sep = joined == 0
    unit = np.cumsum(sep)
    parts_u, parts_c = [], []
    for n in NGRAMS:
        m = len(joined) - n + 1
        if m <= 0:
            continue
        code, bad = joined[:m].copy(), sep[:m].copy()
        for k in range(1, n):
            code = (code << np.uint64(21)) | joined[k : k + m]
            bad |= sep[k : k + m]
        parts_u.append(unit[:m][~bad])
        parts_c.append(code[~bad])
    return np.concatenate(parts_u), np.concatenate(parts_c)


def _counted(units: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (unit, code) pairs with their counts."""
    order = np.lexsort((codes, units))
    u, c = units[order], codes[order]
    new = np.ones(len(u), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    return u[starts], c[starts], np.diff(np.append(starts, len(u)))


class CharSimilarity:
    """Cosine of sublinear tf-idf over character 1-3-grams, idf from the rules' examples; an
    n-gram no example has gets the highest idf (it counts in a clause's length, never in a match).

    Products are sparse x dense (scipy's own loops): a small dense BLAS product can cost
    milliseconds on a busy 2-core host when its threads contend."""

    def __init__(self, keys: Sequence[str]):
        u, c, _ = _counted(*gram_codes(keys))
        self.codes, df = np.unique(c, return_counts=True)
        n = len(keys)
        self.idf = np.log((1 + n) / (1 + df)) + 1
        self.unseen_idf = math.log(1 + n) + 1
        self.examples_t = np.ascontiguousarray(self.matrix(keys).toarray().T)  # (vocabulary, examples)

    def matrix(self, keys: Sequence[str]) -> sp.csr_matrix:
        """(len(keys), vocabulary) rows, L2-normalised over ALL their n-grams, seen or not."""
        u, c, counts = _counted(*gram_codes(keys))
        pos = np.minimum(np.searchsorted(self.codes, c), len(self.codes) - 1)
        seen = self.codes[pos] == c
        w = (1 + np.log(counts)) * np.where(seen, self.idf[pos], self.unseen_idf)
        norms = np.sqrt(np.bincount(u, weights=w * w, minlength=len(keys)))
        return sp.csr_matrix((w[seen] / norms[u[seen]], (u[seen], pos[seen])), shape=(len(keys), len(self.codes)))

    def similarity(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), examples) cosine."""
        return self.matrix(keys) @ self.examples_t


class WordSimilarity:
    """Cosine of idf-weighted mean word vectors (the aspect model's corpus block)."""

    def __init__(self, segmenter: Any, corpus: Any, examples: Sequence[str]):
        self.segmenter, self.corpus = segmenter, corpus
        ex = self.weights([segmenter.cut(t) for t in examples]) @ corpus.vectors
        ex /= np.maximum(np.linalg.norm(ex, axis=1, keepdims=True), 1e-12)
        self.projection = np.ascontiguousarray(corpus.vectors @ ex.T, dtype=corpus.vectors.dtype)  # (words, examples)

    def weights(self, token_lists: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """(n, words) sublinear tf x idf of the known words."""
        c = self.corpus
        n, rows, cols, counts = sparse_counts(([w.lower() for w in t] for t in token_lists), c.index)
        w = ((1 + np.log(counts)) * c.idf[cols]).astype(c.vectors.dtype)  # one dtype: no copy of the vectors
        return sp.csr_matrix((w, (rows, cols)), shape=(n, len(c.index)))

    def similarity(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, examples) cosine of the weighted mean vectors (0 for a clause without a known word)."""
        a = self.weights(token_lists)
        norms = np.linalg.norm(a @ self.corpus.vectors, axis=1, keepdims=True)
        return np.divide(
            a @ self.projection, norms, out=np.zeros((a.shape[0], self.projection.shape[1])), where=norms > 0
        )


def word_source(pipeline: Any) -> tuple[Any, Any] | None:
    """(segmenter, corpus words) of a pipeline whose aspect model carries word vectors, else None."""
    aspects = getattr(pipeline, "aspects", None)  # a test's stand-in pipeline may have none
    if hasattr(aspects, "corpus"):
        corpus = aspects.corpus
    else:  # an aspect model that keeps its corpus block in its featurizer
        corpus = getattr(getattr(aspects, "featurizer", None), "corpus", None)
    segmenter = getattr(pipeline, "segmenter", None)
    return (segmenter, corpus) if corpus is not None and segmenter is not None else None


@dataclass(frozen=True, slots=True)
class _Clause:
    turn: int  # position in the conversation's turn list
    key: str  # compact text
    norm: str  # normalised text (segmented for the word vectors)
    start: int  # original offsets
    end: int


@dataclass
class CustomRules:
    """The loaded rules of ``qa_rules.json``; ``apply`` runs them over one conversation."""

    rules: tuple[CustomRule, ...]
    version: str
    flags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._columns: list[tuple[int, int]] = []  # rule i's examples: columns [a, b)
        keys, texts = [], []
        for r in self.rules:
            self._columns.append((len(keys), len(keys) + len(r.example_keys)))
            keys += r.example_keys
            texts += r.examples
        self._example_texts = texts
        self._chars = CharSimilarity(keys) if keys else None
        self._min_len = np.minimum(MIN_CLAUSE_CHARS, [len(k) for k in keys])
        self._word_floor = 2 * min((r.threshold for r in self.rules if r.example_keys), default=1.0) - 1
        self._words: dict[int, WordSimilarity] = {}  # per corpus object (a reload brings a new one)
        self._roles = {r.role for r in self.rules if r.example_keys}

    def __len__(self) -> int:
        return len(self.rules)

    def _word_similarity(self, source: tuple[Any, Any] | None) -> WordSimilarity | None:
        if source is None or self._chars is None:
            return None
        segmenter, corpus = source
        ws = self._words.get(id(corpus))
        if ws is None or ws.corpus is not corpus:
            ws = WordSimilarity(segmenter, corpus, [normalize(t).text for t in self._example_texts])
            self._words = {id(corpus): ws}
        return ws

    def apply(
        self, roles: Sequence[str], texts: Sequence[TurnText], indices: Sequence[int], words: tuple[Any, Any] | None
    ) -> list[RuleHit]:
        """Every rule hit over one conversation's turns (``indices``: the turns' numbers).
        ``words``: :func:`word_source` of the serving pipeline, or None for characters alone."""
        if not self.rules:
            return []
        ranks = _ranks(roles)
        sims, units = self._similarities(roles, texts, words)
        out = []
        for i, rule in enumerate(self.rules):
            a, b = self._columns[i]
            if a == b:  # keywords only
                out += [
                    _keyword_hit(rule, indices[t], tt)
                    for t, tt in enumerate(texts)
                    if roles[t] == rule.role and _applies(rule, tt, ranks[t])
                ]
                continue
            block = sims[:, a:b]
            best: dict[int, tuple[float, int, int]] = {}  # turn -> its best clause (similarity, unit, example)
            for u in np.flatnonzero(block.max(axis=1, initial=0.0) >= rule.threshold):  # few: then the conditions
                t, j = units[u].turn, int(block[u].argmax())
                if roles[t] == rule.role and _applies(rule, texts[t], ranks[t]) and block[u, j] > best.get(t, (-1,))[0]:
                    best[t] = (float(block[u, j]), u, j)
            for t, (sim, u, j) in best.items():
                unit, tt = units[u], texts[t]
                out.append(
                    RuleHit(
                        rule.id,
                        rule.code,
                        rule.role,
                        indices[t],
                        tt.original[unit.start : unit.end],
                        unit.start,
                        unit.end,
                        rule.severity,
                        round(min(sim, 1.0), 3),
                        rule.examples[j],
                    )
                )
        return sorted(out, key=lambda h: (h.turn, h.start, h.rule_id))

    def _similarities(self, roles, texts, words) -> tuple[np.ndarray, list[_Clause]]:
        """(clauses, examples) similarity of every clause of the turns a similarity rule may read.

        The word cosine is at most 1, so a clause whose character cosine stays under
        ``2 * threshold - 1`` for every example cannot reach any threshold: only the others
        (about a quarter) are segmented and looked up. The rest keep half their character
        cosine, a lower bound that fires nothing."""
        units = [c for t, (role, tt) in enumerate(zip(roles, texts)) if role in self._roles for c in _clauses(t, tt)]
        if not units or self._chars is None:
            return np.zeros((len(units), 0)), units
        sims = self._chars.similarity([u.key for u in units])
        ws = self._word_similarity(words)
        if ws is not None:
            need = np.flatnonzero(sims.max(axis=1) >= self._word_floor)
            sims /= 2
            if len(need):
                sims[need] += ws.similarity([ws.segmenter.cut(units[u].norm) for u in need]) / 2
        short = np.array([len(u.key) for u in units])[:, None] < self._min_len[None, :]
        sims[short] = 0.0
        return sims, units


def _ranks(roles: Sequence[str]) -> list[tuple[int, int]]:
    """(k, n) per turn: it is the k-th (0-based) of n turns of its role."""
    totals = Counter(roles)
    seen: Counter = Counter()
    out = []
    for role in roles:
        out.append((seen[role], totals[role]))
        seen[role] += 1
    return out


def _applies(rule: CustomRule, tt: TurnText, rank: tuple[int, int]) -> bool:
    """Position scope and keyword conditions (the role is checked by the caller)."""
    k, n = rank
    if (rule.first is not None and k >= rule.first) or (rule.last is not None and k < n - rule.last):
        return False
    text = tt.compact
    return (
        (not rule.any or any(key in text for key in rule.any))
        and all(key in text for key in rule.all)
        and not any(key in text for key in rule.none)
    )


def _clauses(t: int, tt: TurnText) -> list[_Clause]:
    """The turn's clauses (split at punctuation, as ``segment.clauses`` does) with compact keys,
    normalised text and original spans."""
    text, norm, origin = tt.norm.text, tt.norm, tt.origin
    spans, prev = [], 0
    for m in CLAUSE_BREAK.finditer(text):
        if m.start() > prev:
            spans.append((prev, m.start()))
        prev = m.end()
    if prev < len(text):
        spans.append((prev, len(text)))
    out = []
    for a, b in spans:
        s, e = norm.to_original(a, b)
        key = tt.compact[bisect_left(origin, s) : bisect_left(origin, e)]
        if key:
            out.append(_Clause(t, key, text[a:b], s, e))
    return out


def _keyword_hit(rule: CustomRule, turn: int, tt: TurnText) -> RuleHit:
    """A keyword-only rule's evidence: the clause of the first any/all keyword it matched."""
    i, key = min((i, k) for k in (*rule.any, *rule.all) if (i := tt.compact.find(k)) >= 0)
    s, e = tt.span(i, i + len(key))
    clause = next((c for c in _clauses(turn, tt) if c.start <= s and e <= c.end), None)
    if clause is not None:
        s, e = clause.start, clause.end
    return RuleHit(rule.id, rule.code, rule.role, turn, tt.original[s:e], s, e, rule.severity)


def violations(hits: Sequence[RuleHit], already: Sequence[Violation] = ()) -> list[Violation]:
    """Agent hits with a 服务禁语 code as ``forbidden_phrase`` violations, except where a
    violation ``already`` found (a forbidden_phrases.csv phrase) overlaps the same clause: one
    utterance costs one deduction."""
    taken: dict[int, list[tuple[int, int]]] = {}
    for v in already:
        taken.setdefault(v.turn, []).append((v.start, v.end))
    return [
        Violation(
            h.turn,
            "forbidden_phrase",
            h.text,
            h.start,
            h.end,
            h.severity,
            {
                "category": h.code,
                "source": "similar_rule" if h.example is not None else "keyword_rule",
                "rule_id": h.rule_id,
            }
            | ({"example": h.example, "similarity": h.similarity} if h.example is not None else {}),
        )
        for h in hits
        if h.role == "agent"
        and h.code in SERVICE_CODES
        and not any(s < h.end and h.start < e for s, e in taken.get(h.turn, ()))
    ]


def flags(hits: Sequence[RuleHit]) -> tuple[RuleHit, ...]:
    """The other hits (customer-role rules, analysts' own codes): the response's ``rule_hits``."""
    return tuple(h for h in hits if not (h.role == "agent" and h.code in SERVICE_CODES))
