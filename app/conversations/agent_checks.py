"""Agent service checks: forbidden phrases, greeting and closing, PII leaks, slow replies.

The rules themselves are data (:class:`ConversationRules`, loaded from ``lexicons/``); these
functions apply them to a transcript's turns.

Only AGENT turns are judged (a bot or system message is not the agent's wording, and a
customer may say 不知道 or give a phone number freely). Every violation spans the
agent's original text; a missing greeting/closing spans the whole turn that lacked it.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.conversations.findings import PiiFinding, PoliteHit, Timing, Violation
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Turn
from app.conversations.pii import find_pii, mask_text, pii_key
from app.conversations.text import TurnText


def forbidden_phrases(turns: Sequence[Turn], texts: Sequence[TurnText], rules: ConversationRules) -> list[Violation]:
    """A ``forbidden_phrase`` violation per lexicon hit in an agent turn."""
    out = []
    for turn, tt in zip(turns, texts):
        if turn.role != "agent":
            continue
        for m in rules.forbidden.find(tt):
            row = m.entry.row
            out.append(
                Violation(
                    turn.index,
                    "forbidden_phrase",
                    m.text,
                    m.start,
                    m.end,
                    row.severity,
                    {"category": row.category, "phrase": row.phrase},
                )
            )
    return out


def polite_phrases(turns: Sequence[Turn], texts: Sequence[TurnText], rules: ConversationRules) -> list[PoliteHit]:
    """Polite phrases the agent used, with their kind (greeting, closing, apology ...)."""
    return [
        PoliteHit(turn.index, m.text, m.start, m.end, m.entry.row.kind, m.entry.row.phrase)
        for turn, tt in zip(turns, texts)
        if turn.role == "agent"
        for m in rules.polite.find(tt)
    ]


def greeting_and_closing(turns: Sequence[Turn], polite: Sequence[PoliteHit]) -> list[Violation]:
    """``missing_greeting`` on the first agent turn, ``missing_closing`` on the last, when absent.

    A conversation without an agent turn has nothing to judge here.
    """
    agent = [t for t in turns if t.role == "agent"]
    if not agent:
        return []
    kinds = {}
    for p in polite:
        kinds.setdefault(p.turn, set()).add(p.kind)
    out = []
    first, last = agent[0], agent[-1]
    if "greeting" not in kinds.get(first.index, ()):
        out.append(
            Violation(first.index, "missing_greeting", first.text, 0, len(first.text), "low", {"expected": "greeting"})
        )
    if "closing" not in kinds.get(last.index, ()):
        out.append(
            Violation(last.index, "missing_closing", last.text, 0, len(last.text), "low", {"expected": "closing"})
        )
    return out


def pii(turns: Sequence[Turn], texts: Sequence[TurnText]) -> tuple[list[Violation], list[PiiFinding]]:
    """``pii_leak`` violations for agent turns, and the PII customers shared themselves (not a leak)."""
    shared: list[PiiFinding] = []
    leaks: list[Violation] = []
    for turn, tt in zip(turns, texts):
        if turn.role not in ("customer", "agent"):
            continue
        found = find_pii(tt, turn.index)
        if turn.role == "customer":
            shared.extend(found)
            continue
        masked_turn = mask_text(turn.text, found)
        known = {pii_key(f) for f in shared}
        for f in found:
            leaks.append(
                Violation(
                    turn.index,
                    "pii_leak",
                    f.text,
                    f.start,
                    f.end,
                    "high",
                    {
                        "pii_type": f.pii_type,
                        "masked": f.masked,
                        "masked_text": masked_turn,
                        "echoes_customer": pii_key(f) in known,
                    },
                )
            )
    return leaks, shared


def slow_replies(
    turns: Sequence[Turn], timing: Timing, very_slow_factor: float, very_slow_severity: str
) -> list[Violation]:
    """A ``slow_reply`` violation on each agent turn that answered later than the threshold."""
    out = []
    for r in timing.responses:
        if r.seconds is None or r.seconds <= timing.threshold_seconds:
            continue
        turn = turns[r.agent_turn]
        severity = very_slow_severity if r.seconds > timing.threshold_seconds * very_slow_factor else "medium"
        out.append(
            Violation(
                turn.index,
                "slow_reply",
                turn.text,
                0,
                len(turn.text),
                severity,
                {"seconds": r.seconds, "threshold_seconds": timing.threshold_seconds, "customer_turn": r.customer_turn},
            )
        )
    return out
