"""Aspects and root causes behind one small interface.

``AspectScorer.score`` takes a batch of documents (after keywords) and returns each
document's aspect findings. The lexicon scorer below is the first implementation; a
trained model plugs in behind the same interface.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from app.core.taxonomy import ASPECTS
from app.pipeline.findings import AspectFinding, Doc, Span


class AspectScorer(Protocol):
    version: str

    def score(self, docs: Sequence[Doc]) -> list[tuple[AspectFinding, ...]]: ...


def clause_evidence(doc: Doc, clause_ids: Sequence[int]) -> tuple[Span, ...]:
    """The clauses that carried a decision, as spans of the original text, in text order."""
    spans = []
    for c in sorted(set(clause_ids)):
        a, b = doc.clauses[c]
        spans.append(doc.span(a, b))
    return tuple(spans)


class LexiconAspectScorer:
    """Aspect polarity from lexicon hits.

    score = 1 - exp(-sum of hit weights): a monotone map of how much lexicon evidence
    there is (one ordinary term -> 0.63, two -> 0.86), not a calibrated probability.
    """

    def __init__(self, lexicon_version: str):
        self.version = f"lexicon-{lexicon_version}"

    def score(self, docs: Sequence[Doc]) -> list[tuple[AspectFinding, ...]]:
        return [self._one(doc) for doc in docs]

    @staticmethod
    def _one(doc: Doc) -> tuple[AspectFinding, ...]:
        groups: dict[tuple[str, str], list] = {}
        for hit in doc.hits:
            if hit.dimension in ASPECTS:
                groups.setdefault((hit.dimension, hit.polarity), []).append(hit)
        findings = []
        for (aspect, polarity), hits in groups.items():
            strength = sum(h.weight for h in hits)
            findings.append(
                AspectFinding(
                    aspect, polarity, round(1 - math.exp(-strength), 4), clause_evidence(doc, [h.clause for h in hits])
                )
            )
        findings.sort(key=lambda f: -f.score)
        return tuple(findings)
