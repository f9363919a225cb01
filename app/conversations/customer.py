"""The customer's side: emotion per turn and the risk that the case escalates.

Emotion: cue weights from ``emotion_cues.csv`` summed per emotion; the strongest wins
(ties: anger > anxiety > disappointment > satisfaction). Without a cue, a positive or
negative sentiment label gives satisfaction or disappointment (source "sentiment"),
else neutral.

Escalation: the highest level among the cues in ``escalation_cues.csv`` (投诉, 12315,
曝光, 差评, 转人工 ...); one level up when two or more kinds of threat appear; repeated
demands (the customer pressing in 2 / 3-4 / 5+ turns) give at least low / medium / high;
one level down (never below low) when the case ends resolved after the last cue.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.conversations.findings import CueHit, Escalation, TurnEmotion
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Turn
from app.conversations.text import TurnText
from app.core.taxonomy import CUE_EMOTIONS, ESCALATION_LEVELS, PRESSING_KINDS, THREAT_KINDS
from app.pipeline.findings import Analysis


def _emotion_cues(rules: ConversationRules, tt: TurnText, turn: int) -> list[CueHit]:
    return [
        CueHit(turn, m.text, m.start, m.end, m.entry.row.phrase, m.entry.row.emotion, m.entry.row.weight)
        for m in rules.emotion.find(tt)
    ]


def _escalation_cues(rules: ConversationRules, tt: TurnText, turn: int) -> list[CueHit]:
    return [
        CueHit(turn, m.text, m.start, m.end, m.entry.row.phrase, m.entry.row.kind, m.entry.row.level)
        for m in rules.escalation.find(tt)
    ]


def turn_emotion(turn: Turn, tt: TurnText, analysis: Analysis, rules: ConversationRules) -> TurnEmotion:
    """The emotion of one customer turn, with the cues behind it."""
    hits = _emotion_cues(rules, tt, turn.index)
    if hits:
        totals: dict[str, float] = {}
        for h in hits:
            totals[h.kind] = totals.get(h.kind, 0.0) + h.value
        best = max(CUE_EMOTIONS, key=lambda e: (totals.get(e, 0.0), -CUE_EMOTIONS.index(e)))
        return TurnEmotion(turn.index, best, round(totals[best], 3), "cues", tuple(h for h in hits if h.kind == best))
    label = analysis.sentiment.label
    if label in ("positive", "negative"):
        emotion = "satisfaction" if label == "positive" else "disappointment"
        return TurnEmotion(
            turn.index, emotion, round(analysis.sentiment.probabilities.get(label, 0.0), 4), "sentiment", ()
        )
    return TurnEmotion(turn.index, "neutral", 0.0, "none", ())


def _raise(level: str, steps: int = 1) -> str:
    return ESCALATION_LEVELS[min(ESCALATION_LEVELS.index(level) + steps, len(ESCALATION_LEVELS) - 1)]


def escalation(
    turns: Sequence[Turn], texts: Sequence[TurnText], rules: ConversationRules, resolved_at: int | None
) -> Escalation:
    """Escalation risk of the conversation from the customer's turns, with evidence and reasons.

    ``resolved_at``: the turn whose cue resolved the case, when it was resolved.
    """
    customer = [(t, tt) for t, tt in zip(turns, texts) if t.role == "customer"]
    hits = [h for t, tt in customer for h in _escalation_cues(rules, tt, t.index)]
    risk, reasons = "none", []
    threats = [h for h in hits if h.value != "none"]
    if threats:
        top = max(threats, key=lambda h: ESCALATION_LEVELS.index(h.value))
        risk = top.value
        reasons.append(f"{top.kind} cue {top.phrase} at turn {top.turn} ({top.value})")
    kinds = sorted({h.kind for h in threats if h.kind in THREAT_KINDS})
    if len(kinds) >= 2 and risk != "high":
        risk = _raise(risk)
        reasons.append(f"threats of {len(kinds)} kinds ({', '.join(kinds)}): one level up")
    demand_turns = _demand_turns(customer, hits)
    if len(demand_turns) >= 2:
        floor = "low" if len(demand_turns) == 2 else "medium" if len(demand_turns) <= 4 else "high"
        if ESCALATION_LEVELS.index(floor) > ESCALATION_LEVELS.index(risk):
            risk = floor
        reasons.append(f"customer pressed in {len(demand_turns)} turns: at least {floor}")
    last_cue = max([h.turn for h in threats] + demand_turns, default=None)
    if resolved_at is not None and risk in ("medium", "high") and last_cue is not None and resolved_at > last_cue:
        risk = ESCALATION_LEVELS[ESCALATION_LEVELS.index(risk) - 1]
        reasons.append(f"resolved at turn {resolved_at} after the last cue: one level down")
    evidence = tuple(threats) + tuple(h for h in hits if h.value == "none" and h.turn in demand_turns)
    return Escalation(
        risk, tuple(sorted(evidence, key=lambda h: (h.turn, h.start))), tuple(reasons), tuple(demand_turns)
    )


def _demand_turns(customer: Sequence[tuple[Turn, TurnText]], hits: Sequence[CueHit]) -> list[int]:
    """Customer turns that press for an answer: a demand or transfer cue, or the same words as an earlier turn."""
    turns = {h.turn for h in hits if h.kind in PRESSING_KINDS}
    seen: set[str] = set()
    for t, tt in customer:
        if len(tt.compact) >= 2 and tt.compact in seen:
            turns.add(t.index)
        seen.add(tt.compact)
    return sorted(turns)


def sentiment_ends(turns: Sequence[Turn], analyses: Sequence[Analysis]) -> tuple[str | None, str | None]:
    """Sentiment label of the first and the last customer turn (None without customer turns)."""
    labels = [a.sentiment.label for t, a in zip(turns, analyses) if t.role == "customer"]
    return (labels[0], labels[-1]) if labels else (None, None)
