"""The spine: normalise -> segment -> keywords -> sentiment -> aspects, for a batch.

No HTTP, no I/O after construction, no globals. The API, the CLI, jobs, training
evaluation and the tests all call ``Pipeline.analyze_batch``; ``analyze`` is a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.core.errors import EmptyText, InvalidInput, PingjiaError
from app.pipeline.aspect_model import load_aspect_model
from app.pipeline.aspects import AspectScorer
from app.pipeline.findings import Analysis, Doc, ItemError
from app.pipeline.keywords import KeywordMatcher
from app.pipeline.lexicon import Lexicon, load_lexicon
from app.pipeline.normalize import InvalidText, check_text, normalize
from app.pipeline.segment import Segmenter, clauses
from app.pipeline.sentiment import load_sentiment_model
from app.pipeline.terms import TfidfTerms, content_words


@dataclass(frozen=True, slots=True)
class TextItem:
    text: Any
    id: str | None = None


class Pipeline:
    def __init__(
        self, *, lexicon: Lexicon, segmenter: Segmenter, sentiment, aspects: AspectScorer, max_text_chars: int = 5000
    ):
        self.lexicon = lexicon
        self.segmenter = segmenter
        self.matcher = KeywordMatcher(lexicon)
        self.sentiment = sentiment
        self.aspects = aspects
        self.terms = TfidfTerms(lexicon.stopwords)
        self.max_text_chars = max_text_chars

    @property
    def versions(self) -> dict[str, str]:
        return {"sentiment": self.sentiment.version, "aspects": self.aspects.version, "lexicon": self.lexicon.version}

    def make_doc(self, text: Any, id: str | None = None) -> Doc:
        """Validate, normalise, segment and find keywords; raises a PingjiaError on bad input."""
        check_text(text, self.max_text_chars)
        try:
            norm = normalize(text)
        except InvalidText as exc:
            raise InvalidInput(str(exc), code="invalid_text") from None
        if not norm.text:
            raise EmptyText("text: has no visible characters")
        doc = Doc(id=id, norm=norm, tokens=self.segmenter.tokenize(norm.text))
        doc.clauses = clauses(norm.text, doc.tokens, self.lexicon.contrast)
        doc.hits = self.matcher.find(doc)
        return doc

    def analyze_batch(
        self, items: Sequence[TextItem], *, top_terms: int = 0, with_words: bool = False
    ) -> list[Analysis | ItemError]:
        """Analyse every item; a bad item gets an ItemError in its slot, the rest go on.
        ``with_words`` also returns each text's content words (for batch reports)."""
        slots: list[Doc | ItemError] = []
        for item in items:
            try:
                slots.append(self.make_doc(item.text, item.id))
            except PingjiaError as exc:
                slots.append(ItemError(item.id, exc.code, exc.message))
        docs = [d for d in slots if isinstance(d, Doc)]
        sentiments = iter(self.sentiment.predict(docs))
        aspects = iter(self.aspects.score(docs))
        out: list[Analysis | ItemError] = []
        for slot in slots:
            if isinstance(slot, ItemError):
                out.append(slot)
                continue
            out.append(
                Analysis(
                    id=slot.id,
                    sentiment=next(sentiments),
                    keywords=tuple(self._report(slot)),
                    aspects=next(aspects),
                    top_terms=self.terms.top(slot, top_terms) if top_terms else (),
                    words=content_words(slot, self.lexicon.stopwords) if with_words else (),
                )
            )
        return out

    def analyze(self, text: str, id: str | None = None, *, top_terms: int = 0) -> Analysis:
        """One text: a batch of one that raises the item's error instead of returning it."""
        (result,) = self.analyze_batch([TextItem(text, id)], top_terms=top_terms)
        if isinstance(result, ItemError):
            raise PingjiaError(result.message, code=result.code)
        return result

    @staticmethod
    def _report(doc: Doc):
        """Keyword hits as reported: dimension resolved, offsets into the original text."""
        for h in doc.hits:
            if h.dimension == "general":
                continue
            s, e = doc.norm.to_original(h.start, h.end)
            yield replace(h, text=doc.norm.original[s:e], start=s, end=e)


def build_segmenter(lexicon: Lexicon) -> Segmenter:
    """The service's segmenter: user dictionary plus every lexicon term and target."""
    return Segmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets])


def build_pipeline(
    lexicon_dir: Path, models_dir: Path, *, max_text_chars: int = 5000, segmenter: Segmenter | None = None
) -> Pipeline:
    """Load lexicons and the models that ``models/current.json`` points at."""
    lexicon = load_lexicon(lexicon_dir)
    return Pipeline(
        lexicon=lexicon,
        segmenter=segmenter or build_segmenter(lexicon),
        sentiment=load_sentiment_model(models_dir),
        aspects=load_aspect_model(models_dir, lexicon),
        max_text_chars=max_text_chars,
    )
