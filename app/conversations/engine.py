"""The spine of transcript inspection: validate, score every turn in ONE pipeline batch,
then run the rules over each conversation.

Pure: no HTTP, no I/O, no globals. The routes, batch jobs, the bench and the tests call
``analyze_conversations`` (a batch; a bad conversation gets an ItemError in its slot)
or ``analyze_conversation`` (one; raises the PingjiaError).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.conversations import agent_checks, custom_rules, customer, qa
from app.conversations.findings import ConversationReport, CustomerReport, Evidence, RootCause, TurnReport
from app.conversations.learned import escalation_with_mood, one_per_code, turn_emotion
from app.conversations.learned import findings as model_findings
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Conversation, Limits, conversation_id, parse_conversation
from app.conversations.resolution import resolve
from app.conversations.text import turn_text
from app.conversations.timing import compute_timing
from app.core.errors import InvalidInput, PingjiaError
from app.pipeline.chat_model import ChatModel
from app.pipeline.engine import Pipeline, TextItem
from app.pipeline.findings import Analysis, ItemError


def analyze_conversations(
    items: Sequence[Any], pipeline: Pipeline, rules: ConversationRules, limits: Limits = Limits()
) -> list[ConversationReport | ItemError]:
    """Inspect raw conversations (decoded JSON objects); every slot gets a report or an error."""
    slots: list[Conversation | ItemError] = []
    for raw in items:
        try:
            slots.append(parse_conversation(raw, limits, rules.profiles))
        except PingjiaError as exc:
            slots.append(ItemError(conversation_id(raw), exc.code, exc.message))
    return _inspect_all(slots, pipeline, rules, limits)


def analyze_conversation(
    raw: Any, pipeline: Pipeline, rules: ConversationRules, limits: Limits = Limits()
) -> ConversationReport:
    """Inspect one conversation; raises the PingjiaError that makes it bad input."""
    result = _inspect_all([parse_conversation(raw, limits, rules.profiles)], pipeline, rules, limits)[0]
    if isinstance(result, ItemError):
        raise InvalidInput(result.message, code=result.code)
    return result


def _inspect_all(
    slots: Sequence[Conversation | ItemError], pipeline: Pipeline, rules: ConversationRules, limits: Limits
) -> list[ConversationReport | ItemError]:
    convs = [c for c in slots if isinstance(c, Conversation)]
    chat = getattr(pipeline, "chat", None)  # the trained chat model, when one is configured
    scored = iter(
        pipeline.analyze_batch([TextItem(t.text) for c in convs for t in c.turns], with_docs=chat is not None)
    )
    versions = {**pipeline.versions, "conversation_rules": rules.version}
    words = custom_rules.word_source(pipeline)  # rules as data: similarity reads the served word vectors
    out: list[ConversationReport | ItemError] = []
    for slot in slots:
        if isinstance(slot, ItemError):
            out.append(slot)
            continue
        analyses = [next(scored) for _ in slot.turns]
        bad = next((i for i, a in enumerate(analyses) if isinstance(a, ItemError)), None)
        if bad is not None:
            out.append(ItemError(slot.id, analyses[bad].code, f"turns[{bad}].text: {analyses[bad].message}"))
        else:
            out.append(inspect(slot, analyses, rules, limits, versions, words=words, chat=chat))
    return out


def inspect(
    conv: Conversation,
    analyses: Sequence[Analysis],
    rules: ConversationRules,
    limits: Limits,
    versions: dict[str, str],
    words: Any = None,
    chat: ChatModel | None = None,
) -> ConversationReport:
    """Every finding about one validated conversation whose turns the pipeline has scored
    (with their Docs when ``chat`` is given: the trained model reads them)."""
    turns, profile = conv.turns, rules.profiles[conv.profile]
    texts = [turn_text(t.text) for t in turns]
    threshold = profile.slow_reply_seconds or limits.slow_reply_seconds
    timing = compute_timing([t.role for t in turns], [t.time for t in turns], threshold)
    polite = agent_checks.polite_phrases(turns, texts, rules)
    leaks, shared = agent_checks.pii(turns, texts)
    # rules as data (lexicons/qa_rules.json): 服务禁语 hits join the violations, the rest are rule_hits
    hits = rules.custom_rules.apply([t.role for t in turns], texts, [t.index for t in turns], words)
    phrases = agent_checks.forbidden_phrases(turns, texts, rules)
    learned = model_findings(chat, turns, analyses, texts, rules, phrases, polite) if chat is not None else None
    violations = sorted(
        one_per_code(custom_rules.violations(hits, phrases) + phrases + (learned.violations if learned else []))
        + agent_checks.greeting_and_closing(turns, polite)
        + leaks
        + agent_checks.slow_replies(turns, timing, profile.responsiveness.very_slow_factor, profile.very_slow_severity),
        key=lambda v: (v.turn, v.start, v.rule),
    )
    resolution = learned.resolution if learned else resolve(turns, texts, rules)
    resolved = resolution.status == "resolved"
    resolved_at = max((e.turn for e in resolution.evidence), default=None) if resolved else None
    escalation = customer.escalation(turns, texts, rules, resolved_at)
    if learned:
        escalation = escalation_with_mood(escalation, learned.moods, resolution)
    emotions = {
        t.index: customer.turn_emotion(t, tt, a, rules)
        for t, tt, a in zip(turns, texts, analyses)
        if t.role == "customer"
    }
    moods = learned.moods if learned else {}
    emotions = {i: turn_emotion(moods[i], i, e) if i in moods else e for i, e in emotions.items()}
    start, end = customer.sentiment_ends(turns, analyses)
    report = CustomerReport(start, end, tuple(emotions.values()), escalation, tuple(shared))
    result = qa.score(
        qa.QAInput(turns, analyses, timing, violations, polite, resolution, escalation, tuple(emotions.values())),
        profile,
    )
    return ConversationReport(
        id=conv.id,
        timing=timing,
        violations=tuple(violations),
        polite_phrases=tuple(polite),
        customer=report,
        resolution=resolution,
        root_causes=root_causes(conv, analyses),
        qa=result,
        turns=tuple(
            TurnReport(
                t.index,
                t.role,
                a,
                emotions.get(t.index),
                (moods[t.index].satisfaction, moods[t.index].satisfaction_probs) if t.index in moods else None,
            )
            for t, a in zip(turns, analyses)
        ),
        versions=versions,
        rule_hits=custom_rules.flags(hits),
    )


def root_causes(conv: Conversation, analyses: Sequence[Analysis]) -> tuple[RootCause, ...]:
    """The conversation's root causes: customer turns' negative aspects merged per cause.

    Scores combine as 1 - prod(1 - s) (more turns blaming the same thing -> more certain).
    """
    merged: dict[str, tuple[float, list[Evidence]]] = {}
    for turn, a in zip(conv.turns, analyses):
        if turn.role != "customer":
            continue
        for cause in a.root_causes:
            keep, evidence = merged.get(cause.aspect, (1.0, []))
            evidence.extend(Evidence(turn.index, s.text, s.start, s.end) for s in cause.evidence)
            merged[cause.aspect] = (keep * (1 - cause.score), evidence)
    found = [RootCause(c, round(1 - keep, 4), tuple(ev)) for c, (keep, ev) in merged.items()]
    return tuple(sorted(found, key=lambda r: -r.score))
