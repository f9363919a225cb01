"""The transcript as the engine sees it, and the one place raw input is validated.

``parse_conversation`` accepts what a client sent (a JSON object, already decoded) and
either returns a ``Conversation`` or raises a PingjiaError whose message names the
field and turn index, so the single endpoint, each slot of a batch and a job row all
fail the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from app.conversations.timing import BadTime, first_out_of_order, parse_time
from app.core.errors import EmptyText, InvalidInput, TextTooLong, TooManyItems
from app.core.taxonomy import ROLES
from app.pipeline.normalize import check_text


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits (from Settings) and the default slow-reply threshold."""

    max_turns: int = 500
    max_text_chars: int = 5000
    max_conversation_chars: int = 100_000
    slow_reply_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            max_turns=settings.max_turns,
            max_text_chars=settings.max_text_chars,
            max_conversation_chars=settings.max_conversation_chars,
            slow_reply_seconds=settings.slow_reply_seconds,
        )


@dataclass(frozen=True, slots=True)
class Turn:
    index: int
    role: str
    text: str
    time: float | None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str | None
    profile: str
    turns: tuple[Turn, ...]


def conversation_id(raw: Any) -> str | None:
    """The caller's id, leniently (for the error slot of a conversation that fails validation)."""
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), (str, int)) and not isinstance(raw.get("id"), bool):
        return str(raw["id"])
    return None


def _turn(i: int, raw: Any, limits: Limits) -> Turn:
    where = f"turns[{i}]"
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where}: a turn must be an object with role and text, not {type(raw).__name__}")
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidInput(f"{where}.role: must be one of {', '.join(ROLES)}, not {role!r}")
    text = check_text(raw.get("text"), limits.max_text_chars, f"{where}.text")
    try:
        time = parse_time(raw.get("time"))
    except BadTime as exc:
        raise InvalidInput(f"{where}.time: {exc}", code="invalid_time") from None
    agent_id = raw.get("agent_id")
    if agent_id is not None and not isinstance(agent_id, str):
        raise InvalidInput(f"{where}.agent_id: must be a string")
    return Turn(i, role, text, time, agent_id)


def parse_conversation(raw: Any, limits: Limits, profiles: Collection[str]) -> Conversation:
    """Validate one conversation; raises InvalidInput/EmptyText/TextTooLong/TooManyItems."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"a conversation must be an object with turns, not {type(raw).__name__}")
    cid = raw.get("id")
    if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (str, int))):
        raise InvalidInput("id: must be a string")
    profile = raw.get("profile")
    profile = "default" if profile is None else profile
    if not isinstance(profile, str) or profile not in profiles:
        raise InvalidInput(
            f"profile: unknown profile {profile!r}; known profiles: {', '.join(sorted(profiles))}",
            code="unknown_profile",
        )
    turns = raw.get("turns")
    if turns is None:
        raise InvalidInput("turns: is missing")
    if not isinstance(turns, list):
        raise InvalidInput(f"turns: must be a list, not {type(turns).__name__}")
    if not turns:
        raise EmptyText("turns: is empty; send at least one turn", code="empty_conversation")
    if len(turns) > limits.max_turns:
        raise TooManyItems(f"turns: {len(turns)} turns; the limit is {limits.max_turns}", code="too_many_turns")
    parsed = tuple(_turn(i, t, limits) for i, t in enumerate(turns))
    total = sum(len(t.text) for t in parsed)
    if total > limits.max_conversation_chars:
        raise TextTooLong(
            f"turns: {total} characters in all; the limit is {limits.max_conversation_chars}",
            code="conversation_too_long",
        )
    bad = first_out_of_order([t.time for t in parsed])
    if bad is not None:
        raise InvalidInput(
            f"turns[{bad}].time: earlier than a previous turn; turns must be oldest first", code="turns_out_of_order"
        )
    return Conversation(None if cid is None else str(cid), profile, parsed)
