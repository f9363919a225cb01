"""The trained chat model's findings as inspection findings: violations with their clause,
per-customer-turn satisfaction and emotion, and the resolution with its deciding turns.

The model (:mod:`app.pipeline.chat_model`) reads what the pipeline pass already built for each
turn; the lexicons add their cues (:mod:`app.conversations.cues`) and keep the last word: a
listed phrase always fires (``forbidden_phrases.csv``), an exception context always clears, and
a clause made only of listed polite phrases (``polite_phrases.csv``) is never a violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.conversations.cues import agent_cues, resolution_cues, suppressed_codes
from app.conversations.findings import CueHit, Escalation, Evidence, PoliteHit, Resolution, TurnEmotion, Violation
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Turn
from app.conversations.text import TurnText
from app.core.taxonomy import ESCALATION_LEVELS, SERVICE_CODE_SEVERITY
from app.pipeline.chat_model import ChatModel, TurnMood, TurnView
from app.pipeline.findings import Analysis


@dataclass(frozen=True, slots=True)
class ModelFindings:
    violations: list[Violation]
    moods: dict[int, TurnMood]
    resolution: Resolution


def views_of(turns: Sequence[Turn], analyses: Sequence[Analysis]) -> list[TurnView]:
    return [TurnView(t.index, t.role, a.doc, a) for t, a in zip(turns, analyses)]


def findings(
    chat: ChatModel,
    turns: Sequence[Turn],
    analyses: Sequence[Analysis],
    texts: Sequence[TurnText],
    rules: ConversationRules,
    phrases: Sequence[Violation],
    polite: Sequence[PoliteHit] = (),
) -> ModelFindings:
    """The model's findings; ``phrases`` are the turns' forbidden-phrase hits (model features),
    ``polite`` the agents' polite-phrase hits: a violation the model finds in a clause that holds
    nothing but them is dropped (it read 感谢您的耐心等待 as dismissive, p 0.78)."""
    views = views_of(turns, analyses)
    agent = [i for i, t in enumerate(turns) if t.role == "agent"]
    listed = {i: [(v.code, v.start) for v in phrases if v.turn == i] for i in agent}
    cues = {i: agent_cues(rules, texts[i], listed[i]) for i in agent}
    cleared = {i: suppressed_codes(rules, texts[i]) for i in agent}
    found = chat.violations(views, cues, cleared)
    violations = [
        Violation(
            i,
            "forbidden_phrase",
            turns[i].text[f.start : f.end],
            f.start,
            f.end,
            SERVICE_CODE_SEVERITY[f.code],
            {"category": f.code, "source": "model", "probability": f.probability},
        )
        for i, codes in found.items()
        for f in codes
        if not only_polite(turns[i].text, f.start, f.end, [p for p in polite if p.turn == i])
    ]
    call = chat.resolution(views, resolution_cues(rules, [t.role for t in turns], texts))
    evidence = tuple(Evidence(i, turns[i].text, 0, len(turns[i].text)) for i in call.turns)
    resolution = Resolution(call.status, "model", evidence, call.probabilities)
    return ModelFindings(violations, chat.moods(views), resolution)


def only_polite(text: str, start: int, end: int, hits: Sequence[PoliteHit]) -> bool:
    """Whether ``hits`` cover every letter and digit of ``text[start:end]`` (punctuation, spaces
    and emoji between them aside), and at least one of them lies there.

    >>> hit = PoliteHit(1, "感谢您的耐心等待", 3, 11, "waiting", "感谢您的耐心等待")
    >>> text = "您好，感谢您的耐心等待！你自己查吧"
    >>> only_polite(text, 3, 12, [hit]), only_polite(text, 3, 17, [hit]), only_polite(text, 3, 12, [])
    (True, False, False)
    """
    covered = {i for h in hits for i in range(max(h.start, start), min(h.end, end))}
    return bool(covered) and all(i in covered for i in range(start, end) if text[i].isalnum())


def turn_emotion(mood: TurnMood, turn: int, cue_emotion: TurnEmotion) -> TurnEmotion:
    """The model's emotion with the cue hits of that emotion as its evidence."""
    evidence: tuple[CueHit, ...] = tuple(h for h in cue_emotion.evidence if h.kind == mood.emotion)
    return TurnEmotion(turn, mood.emotion, mood.emotion_probs[mood.emotion], "model", evidence)


def one_per_code(violations: Sequence[Violation]) -> list[Violation]:
    """One 服务禁语 violation per (turn, code): a phrase-list hit first, then a rule of
    qa_rules.json, then the model (one utterance costs one deduction)."""
    rank = {None: 0, "similar_rule": 1, "keyword_rule": 1, "model": 2}
    seen: set[tuple[int, str]] = set()
    out = []
    for v in sorted(violations, key=lambda v: rank.get(v.detail.get("source"), 0)):
        if v.rule == "forbidden_phrase":
            key = (v.turn, v.code)
            if v.detail.get("source") is not None and key in seen:
                continue
            seen.add(key)
        out.append(v)
    return out


def escalation_with_mood(esc: Escalation, moods: dict[int, TurnMood], resolution: Resolution) -> Escalation:
    """The cue-based escalation risk, raised by how the customer ends (the chat model): an
    angry ending of an unresolved chat is at least medium, a dissatisfied one at least low."""
    if not moods:
        return esc
    last = moods[max(moods)]
    floor, why = "none", ""
    if last.emotion == "anger" and resolution.status != "resolved":
        floor, why = "medium", "the customer ends angry and unresolved (chat model)"
    elif last.satisfaction == "dissatisfied":
        floor, why = "low", "the customer ends dissatisfied (chat model)"
    if ESCALATION_LEVELS.index(floor) <= ESCALATION_LEVELS.index(esc.risk):
        return esc
    return replace(esc, risk=floor, reasons=(*esc.reasons, f"{why}: at least {floor}"))
