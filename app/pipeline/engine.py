"""The spine: normalise -> segment -> keywords -> sentiment -> aspects, for a batch.

No HTTP, no I/O after construction, no globals. The API, the CLI, jobs, training
evaluation and the tests all call ``Pipeline.analyze_batch``; ``analyze`` is a batch of one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import EmptyText, InvalidInput, PingjiaError
from app.core.memory import collect_less_often, freeze_loaded
from app.pipeline.aspect_model import load_aspect_model
from app.pipeline.aspects import AspectScorer
from app.pipeline.chat_model import ChatModel, load_chat_model
from app.pipeline.features import FeatureSpace
from app.pipeline.findings import Analysis, Doc, ItemError, KeywordHit
from app.pipeline.keywords import KeywordMatcher
from app.pipeline.lexicon import Lexicon, load_lexicon
from app.pipeline.normalize import InvalidText, check_text, normalize
from app.pipeline.segment import Segmenter, clauses
from app.pipeline.sentiment import load_sentiment_model
from app.pipeline.terms import ContentWords, TfidfTerms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TextItem:
    text: Any
    id: str | None = None


SLICE = 64
"""Texts a batch takes through the stages together. Each stage walks every text of the slice
before the next stage starts, so a text's tokens, features and hits must still be in the CPU
caches when the next stage reads them: with a job's 500 rows at a time they were not (91-97 µs
a bench review, one core), with 64 they are (78-80 µs; 128 and 32 about the same, 16 82-89 µs:
the kernels' per-call costs)."""


class Pipeline:
    def __init__(
        self,
        *,
        lexicon: Lexicon,
        segmenter: Segmenter,
        sentiment,
        aspects: AspectScorer,
        max_text_chars: int = 5000,
        chat: ChatModel | None = None,
    ):
        self.lexicon = lexicon
        self.chat = chat  # read by the conversation engine; None: chats by lexicon rules alone
        self.segmenter = segmenter
        self.matcher = KeywordMatcher(lexicon)
        self.sentiment = sentiment
        self.aspects = aspects
        self.terms = TfidfTerms(lexicon.stopwords)
        self.content_words = ContentWords(lexicon.stopwords)
        self.max_text_chars = max_text_chars
        self.space = share_features(sentiment, aspects)
        for model in (sentiment, aspects, chat):
            trained_with = getattr(model, "segmenter", None)
            if trained_with is not None and trained_with != segmenter.name:
                log.warning(
                    "model %s was trained on tokens of %s but this pipeline segments with %s: "
                    "retrain it (training/train_*.py) so training and serving segment alike",
                    model.version,
                    trained_with,
                    segmenter.name,
                )

    @property
    def versions(self) -> dict[str, str]:
        out = {"sentiment": self.sentiment.version, "aspects": self.aspects.version, "lexicon": self.lexicon.version}
        return out | ({"chat": self.chat.version} if self.chat is not None else {})

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
        self, items: Sequence[TextItem], *, top_terms: int = 0, with_words: bool = False, with_docs: bool = False
    ) -> list[Analysis | ItemError]:
        """Analyse every item; a bad item gets an ItemError in its slot, the rest go on.
        ``with_words`` also returns each text's content words (for batch reports), ``with_docs``
        the working Doc (tokens, clauses, hits: what the chat models read, not re-segmented).
        Items go through the stages ``SLICE`` at a time (the findings do not depend on it)."""
        out: list[Analysis | ItemError] = []
        for i in range(0, len(items), SLICE):
            out += self._analyze_slice(items[i : i + SLICE], top_terms, with_words, with_docs)
        return out

    def _analyze_slice(
        self, items: Sequence[TextItem], top_terms: int, with_words: bool, with_docs: bool
    ) -> list[Analysis | ItemError]:
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
                    words=self.content_words(slot) if with_words else (),
                    doc=slot if with_docs else None,
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
            text = doc.norm.original[s:e]
            if s == h.start and e == h.end and text == h.text:
                yield h  # nothing moved (the usual case): the hit itself
                continue
            yield KeywordHit(
                term=h.term,
                text=text,
                dimension=h.dimension,
                polarity=h.polarity,
                negated=h.negated,
                start=s,
                end=e,
                weight=h.weight,
                clause=h.clause,
            )


def share_features(*models) -> FeatureSpace | None:
    """One FeatureSpace over the vocabularies of every model that reads the feature pass, bound
    to each of them: a feature string is looked up once for all models
    (:mod:`app.pipeline.features`). None when no model reads it (fallback scorers)."""
    readers = [m for m in models if hasattr(m, "feature_vocabularies")]
    if not readers:
        return None
    vocabularies = [m.feature_vocabularies() for m in readers]
    space = FeatureSpace([v for vs in vocabularies for v in vs])
    slot = 0
    for model, vs in zip(readers, vocabularies):
        model.bind(space, slot)
        slot += len(vs)
    return space


def build_segmenter(lexicon: Lexicon) -> Segmenter:
    """The service's segmenter: user dictionary plus every lexicon term and target."""
    return Segmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets])


def build_pipeline(
    lexicon_dir: Path,
    models_dir: Path,
    *,
    max_text_chars: int = 5000,
    segmenter: Segmenter | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Pipeline:
    """Load lexicons and the models that ``models/current.json`` points at; ``on_stage`` hears
    what is being loaded (a progress display: this takes about a second)."""
    say = on_stage or (lambda _stage: None)
    say("lexicons")
    lexicon = load_lexicon(lexicon_dir)
    say("segmenter")
    segmenter = segmenter or build_segmenter(lexicon)
    say("sentiment model")
    sentiment = load_sentiment_model(models_dir)
    say("aspect model")
    aspects = load_aspect_model(models_dir, lexicon)
    say("chat model")
    chat = load_chat_model(models_dir)
    say("feature space")
    pipeline = Pipeline(
        lexicon=lexicon,
        segmenter=segmenter,
        sentiment=sentiment,
        aspects=aspects,
        max_text_chars=max_text_chars,
        chat=chat,
    )
    freeze_loaded()
    collect_less_often()
    return pipeline
