"""The pure patterns of personal numbers (mobile phones, ID-card (身份证) numbers, bank cards)
and how a number is masked.

They live here, in core, so the log filter (``app.core.logs``) masks the same numbers the
chat inspection finds (``app.conversations.pii`` adds checksums and masked copies on top).

>>> bool(PHONE.search("电话13812345678")), bool(ID_CARD.search("11010519491231002X"))
(True, True)
"""

from __future__ import annotations

import re

PHONE = re.compile(r"(?<![\d])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?!\d)")
ID_CARD = re.compile(r"(?<![\dA-Za-z])\d{6}[\s-]?\d{8}[\s-]?\d{3}[\dXx](?![\dA-Za-z])")
CARD = re.compile(r"(?<![\dA-Za-z])[3-6](?:[\s-]?\d){15,18}(?![\dA-Za-z])")


def mask(text: str, head: int, tail: int) -> str:
    """Star the significant characters (digits, X) of ``text`` except ``head`` first and ``tail`` last.

    >>> mask("138 1234 5678", 3, 4)
    '138 **** 5678'
    """
    sig = [i for i, ch in enumerate(text) if ch.isdigit() or ch in "Xx"]
    hide = set(sig[head : len(sig) - tail] if tail else sig[head:])
    return "".join("*" if i in hide else ch for i, ch in enumerate(text))
