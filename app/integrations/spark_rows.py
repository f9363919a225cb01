"""Findings -> rows of the Spark output table (:mod:`app.integrations.spark_schema`).

The shapes come from the API's presenters (``app.pipeline.present``,
``app.conversations.present``) and the report facts from the jobs' scorers
(``ReviewScorer.facts``, ``ConversationScorer.facts``), so a Spark row says what a job row says
and ``report()`` counts what a job counts. Imported by a worker on its first batch.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from app.conversations import Limits, analyze_conversations
from app.conversations import present as conversation_present
from app.integrations.spark_schema import VIOLATION_FIELDS
from app.jobs.columns import scalar
from app.jobs.ingest import conversation_extras
from app.jobs.report import RowFacts
from app.jobs.scoring import ConversationScorer, ReviewScorer
from app.pipeline import present
from app.pipeline.engine import TextItem
from app.pipeline.findings import Analysis, ItemError


def _guarded(run: Callable[[list], list], items: list, id_of: Callable[[Any], str | None]) -> list:
    """``run(items)``, or, when it raises (a bug, not bad input: bad input is an ItemError in its
    slot), each item alone, the ones that still raise becoming ``scoring_failed``."""
    try:
        return run(items)
    except Exception:  # one row must not fail the task: each row is retried alone
        out = []
        for item in items:
            try:
                out.extend(run([item]))
            except Exception as exc:  # a bug: reported in the row, with its traceback in the log
                traceback.print_exc()
                out.append(ItemError(id_of(item), "scoring_failed", f"{type(exc).__name__}: {exc}"))
        return out


def facts_row(f: RowFacts) -> dict:
    """A ``RowFacts`` as the ``report_facts`` struct (sets sorted, so a row reads the same every run)."""
    qa = f.qa
    return {
        "label": f.label,
        "causes": list(f.causes),
        "aspects": [{"aspect": a, "polarity": p} for a, p in sorted(f.aspects)],
        "terms": sorted(f.terms),
        "mixed": f.mixed,
        "qa": None
        if qa is None
        else {
            "score": qa.score,
            "grade": qa.grade,
            "resolution": qa.resolution,
            "first_response_seconds": qa.first_response_seconds,
            "applicable": qa.applicable,
            "violations": [{"code": c, "turn": t, "text": x} for c, t, x in qa.violations],
            "dimensions": [{"code": c, "score": v} for c, v in qa.dimensions],
        },
    }


def error_row(e: ItemError, versions: dict) -> dict:
    return {"error_code": e.code, "error_message": e.message, "model": versions}


def review_rows(
    pipeline, texts: Sequence[Any], ids: Sequence[str], known: Sequence[tuple[str, str] | None]
) -> list[dict]:
    """One ``analyze_batch`` over the batch's texts (with content words, for complaint terms);
    a row ``known`` to be bad keeps its ``(code, message)``."""
    items = [TextItem(t, i) for t, i, k in zip(texts, ids, known) if k is None]
    found = iter(_guarded(lambda xs: pipeline.analyze_batch(xs, with_words=True), items, lambda x: x.id))
    versions = dict(pipeline.versions)
    out = []
    for rid, k in zip(ids, known):
        r = ItemError(rid, *k) if k is not None else next(found)
        out.append(error_row(r, versions) if isinstance(r, ItemError) else review_row(r, versions))
    return out


def review_row(a: Analysis, versions: dict) -> dict:
    return {
        "sentiment": a.sentiment.label,
        "probabilities": dict(a.sentiment.probabilities),
        "mixed": a.mixed,
        "keywords": [present.keyword(h) for h in a.keywords],
        "aspects": [present.aspect(x) for x in a.aspects],
        "root_causes": [present.root_cause(x) for x in a.root_causes],
        "model": versions,
        "report_facts": facts_row(ReviewScorer.facts(a)),
    }


def conversation_rows(
    pipeline,
    rules,
    limits: dict[str, Any],
    payloads: Sequence[dict | tuple[str, str]],
    ids: Sequence[str],
    rows: Sequence[int],
    derived: Sequence[str],
) -> list[dict]:
    """``analyze_conversations`` over the batch's good transcripts (each with the row's id, as a
    job gives it); a bad transcript keeps its ``(code, message)``."""
    lim = Limits(**limits)
    good = [{**p, "id": i} for p, i in zip(payloads, ids) if isinstance(p, dict)]
    found = iter(
        _guarded(
            lambda xs: analyze_conversations(xs, pipeline, rules, lim),
            good,
            lambda x: x.get("id"),
        )
    )
    versions = {**pipeline.versions, "conversation_rules": rules.version}
    out = []
    for payload, rid, row in zip(payloads, ids, rows):
        extras = _derived(payload, derived)
        if isinstance(payload, tuple):
            out.append({**error_row(ItemError(rid, *payload), versions), **extras})
            continue
        result = next(found)
        if isinstance(result, ItemError):
            out.append({**error_row(result, versions), **extras})
        else:
            out.append({**conversation_row(result, rid, row, versions), **extras})
    return out


def _derived(payload: dict | tuple, names: Sequence[str]) -> dict:
    """agent_id, channel and started_at as ``pingjia score`` derives them (as text; None: absent)."""
    if not names:
        return {}
    values = conversation_extras(payload) if isinstance(payload, dict) else {}
    out = {}
    for name in names:
        text = scalar(values.get(name))
        out[name] = text or None
    return out


def conversation_row(r, rid: str, row: int, versions: dict) -> dict:
    body = conversation_present.report(r)
    body.pop("model", None)
    body["id"] = rid
    t, q, res = r.timing, r.qa, r.resolution
    return {
        "customer_sentiment_start": r.customer.sentiment_start,
        "customer_sentiment_end": r.customer.sentiment_end,
        "escalation_risk": r.customer.escalation.risk,
        "qa_score": q.score,
        "qa_grade": q.grade,
        "qa_applicable": q.applicable,
        "qa_profile": q.profile,
        "resolution": res.status,
        "resolution_source": res.source,
        "first_response_seconds": t.first_response_seconds,
        "avg_response_seconds": t.avg_response_seconds,
        "slow_replies": t.slow_replies,
        "violations": [_violation(shown, v.code) for v, shown in zip(r.violations, body["violations"])],
        "root_causes": body["root_causes"],
        "result_json": json.dumps({"row": row, **body}, ensure_ascii=False, separators=(",", ":")),
        "model": versions,
        "report_facts": facts_row(ConversationScorer.facts(r)),
    }


def _violation(shown: dict, code: str) -> dict:
    """The API's violation, with the code, as ``VIOLATION`` has them."""
    merged = {**shown, "code": code}
    return {k: merged.get(k) for k in VIOLATION_FIELDS}
