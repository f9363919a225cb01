"""Inspection findings -> JSON-ready dicts in the shape of API.md (POST /v1/conversations/analyze).

Kept apart from the findings so internal fields stay inside; turn-level keyword and aspect
shapes are the review endpoint's own (``app.pipeline.present``), so both endpoints agree.
Every code a person reads has its Chinese name beside it (``rule_zh``, ``status_zh`` ...).
"""

from __future__ import annotations

from collections import Counter

from app.conversations.custom_rules import RuleHit
from app.conversations.findings import (
    ConversationReport,
    CueHit,
    Evidence,
    PiiFinding,
    PoliteHit,
    TurnEmotion,
    Violation,
)
from app.core.taxonomy import EMOTIONS_ZH, SATISFACTION_ZH, zh
from app.pipeline import present as review
from app.pipeline.findings import ItemError


def evidence(e: Evidence | CueHit) -> dict:
    return {"turn": e.turn, "text": e.text, "start": e.start, "end": e.end}


def violation(v: Violation) -> dict:
    out = {
        "turn": v.turn,
        "rule": v.rule,
        "rule_zh": zh("rule", v.rule),
        "text": v.text,
        "start": v.start,
        "end": v.end,
        "severity": v.severity,
        "severity_zh": zh("severity", v.severity),
        **v.detail,
    }
    if v.detail.get("category") is not None:
        out["category_zh"] = zh("category", v.detail["category"])
    if v.detail.get("pii_type") is not None:
        out["pii_type_zh"] = zh("pii", v.detail["pii_type"])
    return out


def rule_hit(h: RuleHit) -> dict:
    return {
        "rule_id": h.rule_id,
        "code": h.code,
        "code_zh": zh("violation", h.code),
        "role": h.role,
        "turn": h.turn,
        "text": h.text,
        "start": h.start,
        "end": h.end,
        "severity": h.severity,
        "severity_zh": zh("severity", h.severity),
        "similarity": h.similarity,
        "example": h.example,
    }


def polite(p: PoliteHit) -> dict:
    return {
        "turn": p.turn,
        "text": p.text,
        "start": p.start,
        "end": p.end,
        "kind": p.kind,
        "kind_zh": zh("polite", p.kind),
        "phrase": p.phrase,
    }


def cue(h: CueHit, value_name: str) -> dict:
    return {**evidence(h), "phrase": h.phrase, "kind": h.kind, value_name: h.value}


def emotion(e: TurnEmotion) -> dict:
    return {
        "turn": e.turn,
        "emotion": e.emotion,
        "emotion_zh": EMOTIONS_ZH[e.emotion],
        "score": e.score,
        "source": e.source,
        "evidence": [cue(h, "weight") for h in e.evidence],
    }


def satisfaction(label: str, probabilities: dict[str, float]) -> dict:
    return {"label": label, "label_zh": SATISFACTION_ZH[label], "probabilities": probabilities}


def pii_shared(f: PiiFinding) -> dict:
    return {"turn": f.turn, "pii_type": f.pii_type, "start": f.start, "end": f.end, "masked": f.masked}


def report(r: ConversationReport) -> dict:
    """The full response body of one conversation."""
    c, q, t = r.customer, r.qa, r.timing
    return {
        "id": r.id,
        "timing": {
            "first_response_seconds": t.first_response_seconds,
            "avg_response_seconds": t.avg_response_seconds,
            "max_response_seconds": t.max_response_seconds,
            "slow_replies": t.slow_replies,
            "threshold_seconds": t.threshold_seconds,
            "unanswered_turn": t.unanswered_turn,
            "responses": [
                {"customer_turn": x.customer_turn, "agent_turn": x.agent_turn, "seconds": x.seconds}
                for x in t.responses
            ],
        },
        "violations": [violation(v) for v in r.violations],
        "polite_phrases": [polite(p) for p in r.polite_phrases],
        "rule_hits": [rule_hit(h) for h in r.rule_hits],
        "customer": {
            "sentiment_start": c.sentiment_start,
            "sentiment_start_zh": zh("sentiment", c.sentiment_start),
            "sentiment_end": c.sentiment_end,
            "sentiment_end_zh": zh("sentiment", c.sentiment_end),
            "escalation_risk": c.escalation.risk,
            "escalation_risk_zh": zh("escalation", c.escalation.risk),
            "escalation_evidence": [cue(h, "level") for h in c.escalation.evidence],
            "escalation_reasons": list(c.escalation.reasons),
            "emotions": [emotion(e) for e in c.emotions],
            "pii_shared": [pii_shared(f) for f in c.pii_shared],
        },
        "resolution": {
            "status": r.resolution.status,
            "status_zh": zh("resolution", r.resolution.status),
            "source": r.resolution.source,
            "evidence": [evidence(e) for e in r.resolution.evidence],
            **({"probabilities": r.resolution.probabilities} if r.resolution.probabilities else {}),
        },
        "root_causes": [
            {
                "cause": x.cause,
                "cause_zh": zh("cause", x.cause),
                "score": x.score,
                "evidence": [evidence(e) for e in x.evidence],
            }
            for x in r.root_causes
        ],
        "qa": {
            "score": q.score,
            "grade": q.grade,
            "grade_zh": q.grade_zh,
            "profile": q.profile,
            "dimensions": {d.name: d.score for d in q.dimensions},
            "dimensions_zh": {d.name: zh("qa_dimension", d.name) for d in q.dimensions},
            "explanations": {
                d.name: [
                    {"effect": x.effect, "reason": x.reason, "finding": x.finding, "turn": x.turn}
                    for x in d.explanations
                ]
                for d in q.dimensions
            },
            "weights": q.weights,
            "weighted_score": q.weighted_score,
            "deductions": [
                {
                    "rule": d.rule,
                    "rule_zh": zh("violation", d.rule),
                    "severity": d.severity,
                    "severity_zh": zh("severity", d.severity),
                    "turn": d.turn,
                    "points": d.points,
                }
                for d in q.deductions
            ],
            "applicable": q.applicable,
            "notes": list(q.notes),
        },
        "turns": [
            {
                "index": x.index,
                "role": x.role,
                "role_zh": zh("role", x.role),
                "sentiment": review.sentiment(x.analysis, "sentiment"),
                "keywords": [review.keyword(h) for h in x.analysis.keywords],
                "aspects": [review.aspect(a) for a in x.analysis.aspects],
                "emotion": x.emotion.emotion if x.emotion else None,
                "emotion_zh": zh("emotion", x.emotion.emotion) if x.emotion else None,
                **({"satisfaction": satisfaction(*x.satisfaction)} if x.satisfaction else {}),
            }
            for x in r.turns
        ],
        "model": r.versions,
    }


def result(r: ConversationReport | ItemError) -> dict:
    """A batch slot: the report, or ``{"id", "error": {code, message}}``."""
    return review.item_error(r) if isinstance(r, ItemError) else report(r)


def summary(results: list[ConversationReport | ItemError]) -> dict:
    """Batch totals: how many analysed, errors, grades, resolution and escalation counts."""
    ok = [r for r in results if not isinstance(r, ItemError)]
    return {
        "total": len(results),
        "analysed": len(ok),
        "errors": len(results) - len(ok),
        "grades": dict(sorted(Counter(r.qa.grade for r in ok).items())),
        "resolution": dict(sorted(Counter(r.resolution.status for r in ok).items())),
        "escalation_risk": dict(sorted(Counter(r.customer.escalation.risk for r in ok).items())),
        "avg_score": round(sum(r.qa.score for r in ok) / len(ok), 1) if ok else None,
    }
