"""The pure patterns of personal numbers: mobile phones, ID-card (身份证) numbers, bank cards.

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
