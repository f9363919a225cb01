"""Lexicon cues the trained chat model reads (:mod:`app.pipeline.chat_model`): phrase-list and
agent-cue hits of each agent turn, resolution cues, and the codes an analyst's exception
context clears. Lexicons are conversation data, so they are read here, not in the model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.conversations.lexicons import ConversationRules
from app.conversations.text import TurnText


def agent_cues(rules: ConversationRules, tt: TurnText, phrases: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """(cue feature, original offset) of an agent turn's lexicon hits: its phrase-list hits
    (``phrases``: (category, start), as the forbidden-phrase check already found them) and its
    agent cues."""
    out = [("phrase:" + category, start) for category, start in phrases]
    for m in rules.agent_cues.find(tt):
        out.append(("cue:" + m.entry.row.cue, m.start))
        out.append((m.entry.row.cue + ":" + m.entry.key, m.start))
    return out


def resolution_cues(
    rules: ConversationRules, roles: Sequence[str], texts: Sequence[TurnText]
) -> list[tuple[int, str, str]]:
    """(turn, speaker, status) of every resolution cue said by the role it is listed for."""
    out = []
    for speaker, index in (("customer", rules.resolution_customer), ("agent", rules.resolution_agent)):
        for i, (role, tt) in enumerate(zip(roles, texts)):
            if role == speaker:
                out.extend((i, speaker, m.entry.row.status) for m in index.find(tt))
    return out


def suppressed_codes(rules: ConversationRules, tt: TurnText) -> set[str]:
    """Codes an exception context of ``forbidden_phrases.csv`` clears in this turn: an analyst's
    exception always wins over the model."""
    return {e.row.category for e in rules.forbidden_exceptions if any(c in tt.compact for c in e.exceptions)}
