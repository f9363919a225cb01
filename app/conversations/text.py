"""Robust phrase matching over a turn: traditional, full-width, spaces and punctuation inside.

``TurnText`` keeps three views of one turn: the caller's original, the pipeline's
normalised text (full-width -> half-width, traditional -> simplified, same offsets map)
and a *compact* copy that also drops whitespace, punctuation and symbols, with the index
of every kept character in the original. A phrase is matched on the compact copy, so
不 归 我 管 / 不歸我管！ hit 不归我管, and the span is mapped back to the original.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.pipeline.normalize import NormalizedText, normalize

# A match (or an exception context) never reaches across the end of a sentence.
SENTENCE_BREAKS = frozenset("。！？!?；;\n\r")


@lru_cache(maxsize=8192)
def _dropped(ch: str) -> bool:
    """Whitespace, punctuation, symbols and invisible characters are not part of a phrase."""
    return unicodedata.category(ch)[0] in "ZPSC"


@dataclass(frozen=True, slots=True)
class TurnText:
    original: str
    norm: NormalizedText
    compact: str
    origin: tuple[int, ...]  # origin[k]: index in ``original`` of compact character k

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) of a compact range."""
        return self.origin[start], self.origin[end - 1] + 1


def turn_text(original: str) -> TurnText:
    """Build the three views of ``original`` (raises InvalidText on lone surrogates)."""
    norm = normalize(original)
    offsets = norm.offsets
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(norm.text):
        if _dropped(ch):
            continue
        chars.append(ch.lower() if ch.isascii() else ch)
        origin.append(offsets[i] if offsets is not None else i)
    return TurnText(original, norm, "".join(chars), tuple(origin))


def compact(phrase: str) -> str:
    """The compact key of a lexicon phrase (same folding as the turns)."""
    return turn_text(phrase).compact


@dataclass(frozen=True, slots=True)
class Entry:
    """One lexicon row ready for matching: its compact key, compact exception contexts and the row."""

    key: str
    exceptions: tuple[str, ...]
    row: Any


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry
    text: str
    start: int  # into the original turn text
    end: int


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class PhraseIndex:
    """Leftmost, then longest, non-overlapping phrase matches with exception contexts."""

    def __init__(self, entries: Iterable[Entry]):
        table: dict[str, list[Entry]] = {}
        for e in entries:
            table.setdefault(e.key[0], []).append(e)
        for bucket in table.values():
            bucket.sort(key=lambda e: -len(e.key))
        self._table = table

    def __len__(self) -> int:
        return sum(len(b) for b in self._table.values())

    def find(self, tt: TurnText) -> list[Match]:
        """All matches in ``tt``, in text order, with original-text spans."""
        text, out, i = tt.compact, [], 0
        while i < len(text):
            for e in self._table.get(text[i], ()):
                end = i + len(e.key)
                if text.startswith(e.key, i) and self._fits(tt, e, i, end):
                    s, o_end = tt.span(i, end)
                    out.append(Match(e, tt.original[s:o_end], s, o_end))
                    i = end
                    break
            else:
                i += 1
        return out

    @staticmethod
    def _fits(tt: TurnText, e: Entry, i: int, end: int) -> bool:
        text = tt.compact
        if _alnum(e.key[0]) and i > 0 and _alnum(text[i - 1]):
            return False  # 12315 only as a whole number, never inside 3123156
        if _alnum(e.key[-1]) and end < len(text) and _alnum(text[end]):
            return False
        s, o_end = tt.span(i, end)
        if any(c in SENTENCE_BREAKS for c in tt.original[s:o_end]):
            return False
        return not any(_excepted(tt, ctx, e.key, i) for ctx in e.exceptions)


def _excepted(tt: TurnText, ctx: str, key: str, i: int) -> bool:
    """Does exception context ``ctx`` stand around the match at compact index ``i``?"""
    text = tt.compact
    k = ctx.find(key)
    while k != -1:
        a = i - k
        if a >= 0 and text.startswith(ctx, a):
            s, o_end = tt.span(a, a + len(ctx))
            if not any(c in SENTENCE_BREAKS for c in tt.original[s:o_end]):
                return True
        k = ctx.find(key, k + 1)
    return False
