"""Was the customer's problem solved? resolved / unresolved / unknown, with the deciding turn.

The customer has the last word: the LAST customer cue of ``resolution_cues.csv``
(好的解决了, 收到了谢谢 vs 还是没解决, 算了不买了) decides. Without one, the last agent cue
(已为您退款 / 无法处理) decides, marked ``source: agent`` because nobody confirmed it.
Otherwise the status is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.conversations.findings import Evidence, Resolution
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Turn
from app.conversations.text import Match, TurnText


def _last(index, turns: Sequence[Turn], texts: Sequence[TurnText], role: str) -> tuple[int, Match] | None:
    for turn, tt in zip(reversed(turns), reversed(texts)):
        if turn.role == role and (found := index.find(tt)):
            return turn.index, found[-1]
    return None


def resolve(turns: Sequence[Turn], texts: Sequence[TurnText], rules: ConversationRules) -> Resolution:
    """The resolution status and its evidence (the deciding cue)."""
    for role, index in (("customer", rules.resolution_customer), ("agent", rules.resolution_agent)):
        found = _last(index, turns, texts, role)
        if found:
            turn, m = found
            return Resolution(m.entry.row.status, role, (Evidence(turn, m.text, m.start, m.end),))
    return Resolution("unknown", None, ())
