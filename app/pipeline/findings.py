"""Result types shared by every stage.

Findings are small frozen values so no stage can edit another's output in place.
Every span carries offsets into the caller's *original* text: ``original[start:end] == text``.
The codes the findings carry (aspects, polarities, sentiment labels) are in
:mod:`app.core.taxonomy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from app.pipeline.features import DocFeatures
from app.pipeline.normalize import NormalizedText

Token = tuple[str, int, int]
"""(word, start, end) in the *normalised* text, as jieba's ``Tokenizer.tokenize`` yields."""


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A lexicon term found in the text, with the polarity left after negation.

    ``term`` is the lexicon entry (simplified); ``text`` is what stands at [start, end).
    """

    term: str
    text: str
    dimension: str
    polarity: str
    negated: bool
    start: int
    end: int
    weight: float
    clause: int  # index into Doc.clauses


@dataclass(frozen=True, slots=True)
class SentimentFinding:
    label: str
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class AspectFinding:
    aspect: str
    polarity: str
    score: float
    evidence: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class TermScore:
    term: str
    weight: float


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the pipeline says about one text."""

    id: str | None
    sentiment: SentimentFinding
    keywords: tuple[KeywordHit, ...]
    aspects: tuple[AspectFinding, ...]
    top_terms: tuple[TermScore, ...] = ()
    words: tuple[str, ...] = ()  # distinct content words, when asked for (batch statistics)
    doc: Doc | None = field(default=None, repr=False, compare=False)  # when asked for (chat models read it)

    @property
    def root_causes(self) -> tuple[AspectFinding, ...]:
        """The negative aspects asserted, best first (the API's ``root_causes``)."""
        neg = [a for a in self.aspects if a.polarity == "negative"]
        return tuple(sorted(neg, key=lambda a: -a.score))

    @property
    def mixed(self) -> bool:
        """Praise and blame on different evidence (the API's ``sentiment.mixed``): :func:`is_mixed`."""
        return is_mixed(self.aspects)


def is_mixed(aspects: Iterable[AspectFinding]) -> bool:
    """True when the text both praises and blames, each on its own evidence: some positive and
    some negative aspect whose evidence spans do not overlap (a typical 中评:
    东西不错，就是物流太慢了).

    Why: one sentiment label cannot say "good goods, slow courier"; the flag finds such texts
    whatever their label (it is independent of it). Both polarities on the very same evidence
    are one clause read two ways, not praise *and* blame, so they do not count.

    >>> good = AspectFinding("quality", "positive", 0.9, (Span("东西不错", 0, 4),))
    >>> slow = AspectFinding("logistics", "negative", 0.9, (Span("就是物流太慢了", 5, 12),))
    >>> same = AspectFinding("quality", "negative", 0.5, good.evidence)
    >>> is_mixed([good, slow]), is_mixed([slow]), is_mixed([good, same])
    (True, False, False)
    """
    found = [a for a in aspects if a.evidence]
    pos = [a.evidence for a in found if a.polarity == "positive"]
    neg = [a.evidence for a in found if a.polarity == "negative"]
    return any(not _overlap(p, n) for p in pos for n in neg)


def _overlap(a: tuple[Span, ...], b: tuple[Span, ...]) -> bool:
    """Whether any span of ``a`` shares a character with any span of ``b``."""
    return any(x.start < y.end and y.start < x.end for x in a for y in b)


@dataclass(frozen=True, slots=True)
class ItemError:
    """A bad item in a batch: it gets this in its slot and the others are still analysed."""

    id: str | None
    code: str
    message: str


@dataclass(slots=True)
class Doc:
    """The working document the stages fill in, in order (spaCy-style).

    Mutable on purpose while the pipeline runs; only frozen findings leave it.
    ``clauses`` are ``(start, end)`` ranges of the normalised text.
    """

    id: str | None
    norm: NormalizedText
    tokens: list[Token] = field(default_factory=list)
    clauses: list[tuple[int, int]] = field(default_factory=list)
    hits: list[KeywordHit] = field(default_factory=list)
    cached_features: DocFeatures | None = field(default=None, repr=False, compare=False)

    @property
    def text(self) -> str:
        return self.norm.text

    @property
    def features(self) -> DocFeatures:
        """The one feature pass every model reads (:mod:`app.pipeline.features`): built from
        ``text`` and ``tokens`` the first time it is read, after segmentation, then cached."""
        if self.cached_features is None:
            self.cached_features = DocFeatures(self.norm.text, self.tokens)
        return self.cached_features

    def span(self, start: int, end: int) -> Span:
        """A Span over the *original* text for a normalised range."""
        o_start, o_end = self.norm.to_original(start, end)
        return Span(self.norm.original[o_start:o_end], o_start, o_end)
