"""Response times of a transcript: who waited how long for the agent.

A *customer run* is one customer turn or several in a row; it is answered by the next
AGENT turn. Bot and system turns are transparent: they neither end a run nor answer it
(an auto-reply is not a response). The wait is measured from the first timed turn of
the run, which is what the customer experienced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from app.conversations.findings import ResponseTime, Timing

DEFAULT_TZ = timezone(timedelta(hours=8))  # a timestamp without an offset is read as China time
_MAX_EPOCH = 1e11  # larger numbers are almost surely milliseconds


class BadTime(ValueError):
    """A timestamp that is neither ISO 8601 nor epoch seconds."""


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 string or an epoch-seconds number; None when absent.

    >>> parse_time("2026-11-20T10:00:40+08:00") - parse_time("2026-11-20T10:00:00+08:00")
    40.0
    >>> parse_time(1700000000), parse_time(None)
    (1700000000.0, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadTime("must be an ISO 8601 string or epoch seconds, not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise BadTime(f"{value!r} is not a valid epoch time")
        if seconds > _MAX_EPOCH:
            raise BadTime(f"{value!r} looks like milliseconds; send epoch seconds")
        return seconds
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadTime(f"{value!r} is not ISO 8601 (e.g. 2026-11-20T10:00:00+08:00) nor epoch seconds") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=DEFAULT_TZ)
        return moment.timestamp()
    raise BadTime(f"must be an ISO 8601 string or epoch seconds, not {type(value).__name__}")


def first_out_of_order(times: Sequence[float | None]) -> int | None:
    """Index of the first turn timed earlier than a turn before it (untimed turns are skipped)."""
    latest: float | None = None
    for i, t in enumerate(times):
        if t is None:
            continue
        if latest is not None and t < latest:
            return i
        latest = t
    return None


def response_times(roles: Sequence[str], times: Sequence[float | None]) -> tuple[list[ResponseTime], int | None]:
    """Each customer run paired with the agent turn that answered it, and the first turn of
    a final run nobody answered (None when every run was answered)."""
    pairs: list[ResponseTime] = []
    run_start: int | None = None
    run_time: float | None = None
    for i, (role, t) in enumerate(zip(roles, times)):
        if role == "customer":
            if run_start is None:
                run_start, run_time = i, t
            elif run_time is None:
                run_time = t
        elif role == "agent" and run_start is not None:
            seconds = None if run_time is None or t is None else round(t - run_time, 3)
            pairs.append(ResponseTime(run_start, i, seconds))
            run_start = run_time = None
    return pairs, run_start


def compute_timing(roles: Sequence[str], times: Sequence[float | None], threshold: float) -> Timing:
    """The timing block: first/avg/max agent response and the slow replies over ``threshold``.

    Figures are None when no customer->agent pair has both timestamps.
    """
    pairs, unanswered = response_times(roles, times)
    measured = [p.seconds for p in pairs if p.seconds is not None]
    first = pairs[0].seconds if pairs else None
    return Timing(
        first_response_seconds=first,
        avg_response_seconds=round(sum(measured) / len(measured), 3) if measured else None,
        max_response_seconds=max(measured) if measured else None,
        slow_replies=sum(1 for s in measured if s > threshold),
        threshold_seconds=threshold,
        responses=tuple(pairs),
        unanswered_turn=unanswered,
    )
