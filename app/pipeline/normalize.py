"""Length-aware text normalisation with an offset map back to the caller's text.

Full-width -> half-width and traditional -> simplified are character maps (length
preserving); dropping control/zero-width characters and collapsing whitespace shorten
the text, so we keep ``offsets[i]`` = index in the original of normalised char ``i``.
NFKC is deliberately not used: it changes lengths (… -> ...) without telling us where.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from app.core.errors import EmptyText, InvalidInput, TextTooLong
from app.pipeline._native import fold_width

_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters we drop: C0/C1 controls except whitespace, zero-width and bidi/format marks, BOM.
_DROP = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACE_RUN = re.compile(r"\s{2,}|[\t\n\r\x0b\x0c\u2028\u2029\u00a0]")


class InvalidText(ValueError):
    """The text cannot be analysed at all (e.g. lone surrogates from a broken client)."""


@dataclass(frozen=True, slots=True)
class NormalizedText:
    original: str
    text: str
    offsets: tuple[int, ...] | None  # None: identity map (nothing was dropped)

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open normalised range to the original text.

        >>> n = normalize("a\u200bb")
        >>> n.text, n.to_original(1, 2)
        ('ab', (2, 3))
        """
        if self.offsets is None:
            return start, end
        if start >= end:
            o = self.offsets[start] if start < len(self.offsets) else len(self.original)
            return o, o
        return self.offsets[start], self.offsets[end - 1] + 1


@lru_cache(maxsize=1)
def _t2s():
    """Traditional -> simplified converter: OpenCC when installed, SnowNLP's table otherwise."""
    try:
        import opencc

        conv = opencc.OpenCC("t2s")
        return conv.convert
    except Exception:  # pragma: no cover - exercised only where opencc is missing
        from snownlp.normal.zh import transfer

        return transfer


def to_simplified(text: str) -> str:
    """Traditional -> simplified, guaranteed to keep the length.

    OpenCC converts phrases; in the rare case a phrase changes length we fall back to
    converting character by character, which is always length preserving.
    """
    out = _t2s()(text)
    if len(out) == len(text):
        return out
    return "".join(c if len(s := _t2s()(c)) != 1 else s for c in text)


def normalize(original: str) -> NormalizedText:
    """Normalise ``original`` for analysis and remember where each character came from."""
    if _SURROGATE.search(original):
        raise InvalidText("text contains lone UTF-16 surrogates; send valid Unicode")
    text = to_simplified(fold_width(original))  # U+FF01..U+FF5E -> ASCII, U+3000 -> space
    if not _DROP.search(text) and not _SPACE_RUN.search(text) and text == text.strip():
        return NormalizedText(original, text, None)
    chars: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        if _DROP.match(ch):
            continue
        if ch.isspace() or unicodedata.category(ch) == "Zs":
            if not chars or chars[-1] == " ":
                continue
            ch = " "
        chars.append(ch)
        offsets.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        offsets.pop()
    return NormalizedText(original, "".join(chars), tuple(offsets))


def check_text(value: Any, max_chars: int, where: str = "text") -> str:
    """The one validator of a caller's text (a review, a turn, a job row): present, a string,
    not blank, within the limit. Raises the catalogued error naming ``where``."""
    if value is None:
        raise InvalidInput(f"{where}: is missing")
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: must be a string, not {type(value).__name__}")
    if not value.strip():
        raise EmptyText(f"{where}: is empty")
    if len(value) > max_chars:
        raise TextTooLong(f"{where}: has {len(value)} characters; the limit is {max_chars}")
    return value
