"""Personal data in a turn: mobile numbers, ID-card numbers, bank cards, full addresses.

Recognisers run over the pipeline's normalised text (full-width digits folded) and map
spans back to the original. Checksums cut false alarms: ID numbers must pass the
GB 11643-1999 check digit and carry a real birth date; bank cards must pass Luhn, start
like a card (3-6) and not follow an order-number word. An address is "full" when an
administrative unit (省/市/区/县 ...) comes before a street (路/街/道/巷 ...) and a house
number (…号). Every finding carries a masked copy (138****5678).

>>> from app.conversations.text import turn_text
>>> [(f.pii_type, f.masked) for f in find_pii(turn_text("电话13812345678"), 0)]
[('phone', '138****5678')]
"""

from __future__ import annotations

import re
from datetime import date

from app.conversations.findings import PiiFinding
from app.conversations.text import TurnText
from app.core.pii_patterns import CARD, ID_CARD, PHONE, mask  # shared with the log filter

STREET = re.compile(
    r"(?:路|街|大道|大街|巷|弄|胡同)\s?[\d一二三四五六七八九十百零]+(?:-\d+)?\s?号"
    r"(?:\s?[\dA-Za-z]+(?:号楼|栋|幢|座|单元|楼|层|室|号))*(?:\d{3,4}(?!\d))?"
)
ADMIN = re.compile(r"自治区|特别行政区|省|市|区|县|州|旗|镇")
LEAD_INS = (
    "收货地址",
    "地址是",
    "地址",
    "寄到",
    "送到",
    "发到",
    "改成",
    "改为",
    "住在",
    "住",
    "在",
    "是",
    "到",
    "为",
    "好的",
)
PROVINCES = (
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
)
ORDER_WORDS = re.compile(r"(?:订单|单号|运单|物流|快递单|工单|编号)[号码是为:：\s]*$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def id_check_ok(number: str) -> bool:
    """GB 11643-1999: 17 digits, a check character, and a plausible birth date.

    >>> id_check_ok("11010519491231002X"), id_check_ok("110105194912310021")
    (True, False)
    """
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not date(1900, 1, 1) <= born <= date.today():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return "10X98765432"[total % 11] == number[17].upper()


def luhn_ok(number: str) -> bool:
    """The Luhn checksum of bank-card numbers.

    >>> luhn_ok("6222021234567890128"), luhn_ok("6222021234567890123")
    (True, False)
    >>> luhn_ok("4111111111111111")
    True
    """
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit() or c in "Xx").upper()


def _address_start(text: str, anchor: int) -> tuple[int, int] | None:
    """Start of a full address whose street part begins at ``anchor``, and where its admin prefix ends."""
    left = anchor
    while left > 0 and anchor - left < 30 and (_CJK.match(text[left - 1]) or text[left - 1].isdigit()):
        left -= 1
    segment = text[left:anchor]
    markers = list(ADMIN.finditer(segment))
    if not markers:
        return None
    first = markers[0].start()
    cut = 0
    for word in LEAD_INS:
        k = segment.rfind(word, 0, first)
        if k != -1:
            cut = max(cut, k + len(word))
    province = [segment.find(p, cut) for p in PROVINCES if segment.find(p, cut) != -1]
    if province and min(province) < first:
        start = min(province)
    else:
        start = max(cut, first - 2)
    admin_end = max(m.end() for m in markers if m.start() >= start)
    return left + start, left + admin_end


def _addresses(text: str) -> list[tuple[int, int, str]]:
    out = []
    for m in STREET.finditer(text):
        # the street name stands right before 路/街: walk back to the previous admin marker or lead-in
        found = _address_start(text, m.start())
        if found is None:
            continue
        start, admin_end = found
        if admin_end > m.start() or start >= m.start():
            continue
        street = text[admin_end : m.end()]
        out.append((start, m.end(), text[start:admin_end] + "*" * len(street)))
    return out


def find_pii(tt: TurnText, turn: int) -> list[PiiFinding]:
    """Every PII item in one turn, in text order, spans into the original text."""
    text = tt.norm.text
    spans: list[tuple[int, int, str, str]] = []  # normalised start, end, type, masked (None: mask later)

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b, *_ in spans)

    for m in ID_CARD.finditer(text):
        if id_check_ok(_digits(m.group())):
            spans.append((m.start(), m.end(), "id_card", ""))
    for m in CARD.finditer(text):
        digits = _digits(m.group())
        if (
            16 <= len(digits) <= 19
            and luhn_ok(digits)
            and free(m.start(), m.end())
            and not ORDER_WORDS.search(text[max(0, m.start() - 12) : m.start()])
        ):
            spans.append((m.start(), m.end(), "bank_card", ""))
    for m in PHONE.finditer(text):
        if free(m.start(), m.end()):
            spans.append((m.start(), m.end(), "phone", ""))
    for s, e, masked in _addresses(text):
        if free(s, e):
            spans.append((s, e, "address", masked))
    out = []
    for s, e, kind, masked in sorted(spans):
        o_s, o_e = tt.norm.to_original(s, e)
        original = tt.original[o_s:o_e]
        if kind == "phone":
            masked = mask(original, len(_digits(original)) - 8, 4)
        elif kind in ("id_card", "bank_card"):
            masked = mask(original, 3 if kind == "id_card" else 4, 4)
        out.append(PiiFinding(turn, kind, original, o_s, o_e, masked))
    return out


def mask_text(original: str, findings: list[PiiFinding]) -> str:
    """``original`` with every PII finding replaced by its masked copy (same length when digits)."""
    out, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(original[last : f.start])
        out.append(f.masked)
        last = f.end
    out.append(original[last:])
    return "".join(out)


def pii_key(f: PiiFinding) -> str:
    """What identifies the item across turns (digits only for numbers), to see an agent echoing it."""
    return (
        _digits(f.text)[-11:]
        if f.pii_type == "phone"
        else (_digits(f.text) if f.pii_type != "address" else re.sub(r"\W", "", f.text))
    )
