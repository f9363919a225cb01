"""Service keywords: lexicon terms found on token boundaries, with negation and degree.

Rules, in the order they apply:
- A term matches only where it starts and ends on jieba token boundaries, so 错 is
  never found inside 不错. The one exception: jieba glues leading negators and degree
  words onto a word (不耐烦, 太慢, 很快); the term may start after them, and they count.
- Terms listed in ``aspect_targets.csv`` are targets, not opinions: a ``general`` opinion
  word (慢, 好, 差 …) takes the dimension of the nearest target in its clause, preferring
  one before it (发货太慢 -> logistics). A general word with no target is kept on the
  document (the sentiment stage may use it) but is not reported as a service keyword.
- Negators (不, 没有, 一点都不 …) among the three tokens before a term, inside the same
  clause, flip its polarity; two of them cancel (不是不耐心). Clauses end at punctuation and
  before contrast words (但是, 不过 …), so negation never crosses them.
- Intensifiers/diminishers in the same window scale the weight. A flipped term keeps part
  of its weight (不好 is milder than 差: x0.8; 不慢 is mild praise: x0.6).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

import numpy as np

from app.pipeline._native import Vocab, scan_terms
from app.pipeline.findings import Doc, KeywordHit
from app.pipeline.lexicon import Lexicon

NEGATION_WINDOW = 3
_FLIP = {"positive": "negative", "negative": "positive"}
_FLIP_WEIGHT = {"positive": 0.8, "negative": 0.6}  # keyed by the term's own polarity


class KeywordMatcher:
    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        # term -> is it a target? Targets win where a word is in both lists (性价比 is a
        # subject, not an opinion: 性价比太低 must not read as praise).
        terms = {t: False for t in lexicon.keywords} | {t: True for t in lexicon.targets}
        self._names = list(terms)  # term id -> term
        self._is_target = list(terms.values())
        prefixes = sorted(lexicon.negators | lexicon.intensifiers.keys())
        # The search itself is compiled (app/pipeline/_native.c: scan_terms) over these tables.
        self._tables = (
            _table(self._names),
            _table({t[:2] for t in terms}),  # a term can start only where its first two characters do
            _table({w[0] for w in prefixes}),  # a token can start with glued-on prefixes only here
            _table(prefixes),
            np.array([w in lexicon.negators for w in prefixes], dtype=np.uint8),
            np.array([1.0 if w in lexicon.negators else lexicon.intensifiers[w] for w in prefixes]),
            max(map(len, terms), default=1),
        )

    def find(self, doc: Doc) -> list[KeywordHit]:
        """All keyword hits of ``doc`` (offsets in the normalised text), in text order."""
        text, tokens = doc.text, doc.tokens
        if not tokens:
            return []
        # (start, end, term id, token index, in-token negations, in-token factor): at each token
        # start the longest term ending on a token boundary, else after glued-on negators or
        # degree words (不耐烦, 太慢, 很快); terms never overlap.
        found = scan_terms(*self._tables, text, tokens if isinstance(tokens, list) else list(tokens))
        names, is_target = self._names, self._is_target
        opinions = [r for r in found if not is_target[r[2]]]
        if not opinions:
            return []
        targets = [(s, e, self.lexicon.targets[names[t]]) for s, e, t, *_ in found if is_target[t]]
        clause_starts = [a for a, _ in doc.clauses]
        hits = []
        for i, (s, e, t, ti, in_negs, in_factor) in enumerate(opinions):
            term = names[t]
            clause = max(bisect_right(clause_starts, s) - 1, 0)
            entry = self.lexicon.keywords[term]
            dimension = entry.dimension
            if dimension == "general":
                nxt = opinions[i + 1][0] if i + 1 < len(opinions) else None
                if len(term) == 1 and nxt == e:
                    continue  # 好慢: a one-character general word right before another is a degree word
                dimension = self._target_for(s, e, clause, doc, targets) or "general"
            if dimension == "attitude" and self._courier_before(s, clause, doc, targets):
                dimension = "logistics"  # a courier's or rider's manner is logistics (ANNOTATION.md)
            negations, factor = self._modifiers(tokens, ti, doc.clauses[clause][0])
            negated = (negations + in_negs) % 2 == 1
            polarity, weight = entry.polarity, entry.weight * factor * in_factor
            if negated:
                weight *= _FLIP_WEIGHT[polarity]
                polarity = _FLIP[polarity]
            hits.append(KeywordHit(term, term, dimension, polarity, negated, s, e, round(weight, 3), clause))
        return hits

    def _modifiers(self, tokens, ti: int, clause_start: int) -> tuple[int, float]:
        """Negator count and degree factor from the tokens just before token ``ti``."""
        negations, factor = 0, 1.0
        for word, s, _ in tokens[max(ti - NEGATION_WINDOW, 0) : ti]:
            if s < clause_start:
                continue
            if word in self.lexicon.negators:
                negations += 1
            elif word in self.lexicon.intensifiers:
                factor *= self.lexicon.intensifiers[word]
        return negations, factor

    def _courier_before(self, s: int, clause: int, doc: Doc, raw_targets) -> bool:
        c_start = doc.clauses[clause][0]
        return any(c_start <= ts and te <= s and doc.text[ts:te] in self.lexicon.couriers for ts, te, _ in raw_targets)

    @staticmethod
    def _target_for(s: int, e: int, clause: int, doc: Doc, targets) -> str | None:
        c_start, c_end = doc.clauses[clause]
        before = [t for t in targets if c_start <= t[0] and t[1] <= s]
        if before:
            return before[-1][2]
        after = [t for t in targets if e <= t[0] and t[1] <= c_end]
        return after[0][2] if after else None


def _table(names: Iterable[str]) -> Vocab:
    table = Vocab()
    table.add(list(names))
    return table
