"""One chunk of work rows -> result rows + report counters. The jobs worker and
``pingjia score`` both call this; it only needs a pipeline-like object
(``analyze_batch(items, with_words=True)`` and ``versions``), so tests can pass a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.conversations import Limits, analyze_conversations, load_conversation_rules
from app.conversations import present as conversation_present
from app.core import jsonbytes
from app.jobs.qa_report import qa_columns
from app.jobs.report import Accumulator, QAFacts, RowFacts, parse_day
from app.jobs.store import ChunkOutput
from app.jobs.workfile import WorkRow
from app.pipeline import present
from app.pipeline.engine import TextItem, build_pipeline
from app.pipeline.findings import Analysis, ItemError


def _dumps(obj: dict) -> str:
    return jsonbytes.dumps(obj).decode()


class RowContext:
    """Reads a work row's group values and day according to the job's report plan."""

    def __init__(self, plan: Mapping[str, Any]):
        self.groups: list[str] = list(plan.get("group_columns") or [])
        self.date_column: str | None = plan.get("date_column")
        self.epoch = bool(plan.get("date_epoch"))
        self.qa_columns = qa_columns(plan)

    def group_values(self, extras: Mapping[str, str]) -> dict[str, str]:
        return {g: extras.get(g, "") for g in self.groups}

    def qa_values(self, extras: Mapping[str, str]) -> dict[str, str]:
        """A conversation's agent_id and channel (empty when absent: left out of those tables)."""
        return {c: extras.get(c, "") for c in self.qa_columns}

    def day(self, extras: Mapping[str, str]) -> str | None:
        if not self.date_column:
            return None
        return parse_day(extras.get(self.date_column), allow_epoch=self.epoch)


class ReviewScorer:
    """Reviews: one ``analyze_batch`` call per chunk, with each text's content words for the
    complaint-term counts."""

    kind = "reviews"

    def __init__(self, pipeline):
        self.pipeline = pipeline

    @property
    def versions(self) -> dict[str, str]:
        return dict(self.pipeline.versions)

    def score(self, start_row: int, rows: Sequence[WorkRow], plan: Mapping[str, Any]) -> ChunkOutput:
        items = [TextItem(r.payload, r.id) for r in rows if r.error is None]
        analysed = iter(self.pipeline.analyze_batch(items, with_words=True))
        versions = self.versions
        return _collect(start_row, rows, plan, versions, lambda: next(analysed), self._body, self.facts)

    @staticmethod
    def _body(result: Analysis, versions: dict) -> dict:
        body = present.analysis(result, versions)
        body.pop("model", None)  # once per job (GET /v1/jobs/{id}), not once per row
        return body

    @staticmethod
    def facts(a: Analysis) -> RowFacts:
        """What the report counts of one analysed review (also read by the Spark integration)."""
        terms = frozenset(a.words)
        if a.keywords:
            terms = terms.union([k.term for k in a.keywords])
        return RowFacts(
            a.sentiment.label,
            tuple(c.aspect for c in a.root_causes),
            tuple({(x.aspect, x.polarity) for x in a.aspects}),
            terms,
            mixed=a.mixed,
        )


class ConversationScorer:
    """Help-desk transcripts, through ``app.conversations.analyze_conversations``.

    A conversation's report sentiment is the customer's sentiment at the end; its terms
    are the lexicon keywords of the customer's turns."""

    kind = "conversations"

    def __init__(self, pipeline, rules, limits):
        self.pipeline, self.rules, self.limits = pipeline, rules, limits

    @property
    def versions(self) -> dict[str, str]:
        return {**self.pipeline.versions, "conversation_rules": self.rules.version}

    def score(self, start_row: int, rows: Sequence[WorkRow], plan: Mapping[str, Any]) -> ChunkOutput:
        convs = [{**r.payload, "id": r.id} for r in rows if r.error is None]
        analysed = iter(analyze_conversations(convs, self.pipeline, self.rules, self.limits))
        return _collect(start_row, rows, plan, self.versions, lambda: next(analysed), self._body, self.facts, qa=True)

    def _body(self, result, versions: dict) -> dict:
        body = conversation_present.report(result)
        body.pop("model", None)
        return body

    @staticmethod
    def facts(r) -> RowFacts:
        """What the report counts of one analysed conversation (also read by the Spark integration)."""
        customer = [t for t in r.turns if t.role == "customer"]
        aspects = {(x.aspect, x.polarity) for t in customer for x in t.analysis.aspects}
        terms = {k.term for t in customer for k in t.analysis.keywords}
        return RowFacts(
            r.customer.sentiment_end or "neutral",
            tuple(c.cause for c in r.root_causes),
            tuple(aspects),
            frozenset(terms),
            ConversationScorer.qa_facts(r),
        )

    @staticmethod
    def qa_facts(r) -> QAFacts:
        """Score, grade, resolution, first response, the four dimension scores and each
        violation's code, turn and text, with every PII leak of that turn masked (a
        missing_closing's text is the whole turn: the report never repeats a leaked number)."""
        leaks: dict[int, list[tuple[str, str]]] = {}
        for v in r.violations:
            if v.rule == "pii_leak" and v.detail.get("masked"):
                leaks.setdefault(v.turn, []).append((v.text, str(v.detail["masked"])))

        def masked(v) -> str:
            text = v.text
            for raw, mask in leaks.get(v.turn, ()):
                text = text.replace(raw, mask)
            return text

        violations = tuple((v.code, v.turn, masked(v)) for v in sorted(r.violations, key=lambda v: (v.turn, v.start)))
        return QAFacts(
            r.qa.score,
            r.qa.grade,
            r.resolution.status,
            r.timing.first_response_seconds,
            violations,
            r.qa.applicable,
            tuple((d.name, d.score) for d in r.qa.dimensions),
        )


def _collect(
    start_row: int,
    rows: Sequence[WorkRow],
    plan: Mapping[str, Any],
    versions: dict,
    next_result: Callable[[], Any],
    body_of: Callable,
    facts_of: Callable,
    *,
    qa: bool = False,
) -> ChunkOutput:
    """Result rows in input order plus the chunk's report counters (``qa``: with the QA
    counters of conversations)."""
    ctx = RowContext(plan)
    acc = Accumulator()
    out: list[tuple[int, str, int, str]] = []
    for i, row in enumerate(rows):
        index = start_row + i
        rid, extras = row.id, row.extras
        if row.error is not None:
            result: Any = ItemError(rid, *row.error)
        else:
            result = next_result()
        head = {"row": index + 1, "id": rid}
        if isinstance(result, ItemError):
            body = {**head, "error": {"code": result.code, "message": result.message}}
            facts = None
        else:
            body = {**head, **body_of(result, versions)}
            body["id"] = rid
            facts = facts_of(result)
        acc.add(
            index,
            facts,
            error=None if facts else result.code,
            groups=ctx.group_values(extras),
            day=ctx.day(extras),
            dated=ctx.date_column is not None,
            qa_groups=ctx.qa_values(extras) if qa else None,
            row_id=rid,
        )
        out.append((index, rid, facts is None, _dumps(body)))
    return ChunkOutput(out, acc.counts, acc.terms, versions, acc.examples)


class Scorers:
    """The scorers a worker holds: reviews always, conversations built on first use."""

    def __init__(self, pipeline, conversation_factory: Callable[[], Any] | None = None):
        self.reviews = ReviewScorer(pipeline)
        self._conv_factory = conversation_factory
        self._conv = None

    def for_kind(self, kind: str):
        if kind == "reviews":
            return self.reviews
        if kind == "conversations":
            if self._conv is None:
                if self._conv_factory is None:
                    raise LookupError("this worker has no conversation engine")
                self._conv = self._conv_factory()
            return self._conv
        raise LookupError(f"unknown job kind {kind!r}")


def load_scorers(settings) -> Scorers:
    """Scorers over the served pipeline (loads lexicons and models: seconds, once per worker)."""
    pipeline = build_pipeline(settings.lexicon_dir, settings.models_dir, max_text_chars=settings.max_text_chars)

    def conversations():
        return ConversationScorer(
            pipeline, load_conversation_rules(settings.lexicon_dir), Limits.from_settings(settings)
        )

    return Scorers(pipeline, conversations)
