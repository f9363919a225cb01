"""Job results as JSONL or CSV, streamed in input order in batches (memory stays flat).

CSV exports are neutralised against spreadsheet formula injection (OWASP "CSV
Injection"): no cell of a downloaded file may be evaluated as a formula or a DDE
command when a spreadsheet opens it.

* Every *text* cell (ids come from the uploader; keyword, aspect and cause cells are
  derived from the uploaded texts; the rest are our own labels and codes, neutralised
  all the same) whose first character is one of ``= + - @``, tab (0x09) or carriage
  return (0x0D) is prefixed with a single quote ``'``. So is a cell whose first
  character *after leading whitespace* (spaces, U+3000, line breaks ...) is one of
  those, because importers that trim cells would otherwise still evaluate it.
  ``=cmd|' /C calc'!A0`` is written as ``'=cmd|' /C calc'!A0``.
* A user's id is text even when it looks like a number: ``-12`` is written as
  ``'-12``, as OWASP recommends (a spreadsheet shows the quote; that is the price of
  not guessing which "numbers" are harmless).
* Figures the service computes (``row``, ``p_*``, ``mixed``, ``qa_score``) are Python
  numbers (``mixed`` a bool, written ``True``/``False``), not text: they cannot carry a
  formula, none is negative, and they are written unchanged so a spreadsheet can still
  sum and filter them.
* Text cells are always wrapped in double quotes (embedded quotes doubled), numbers
  are bare, so a payload cannot leave its cell (also a bare carriage return, which the
  ``csv`` module would not otherwise quote with a ``\n`` line terminator).

To recover an original value, drop the one leading ``'`` of a text cell that starts
with ``'`` followed (after optional whitespace) by a trigger character. JSONL results
are data, not a spreadsheet format, and carry every value unchanged.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

CSV_FIELDS = [
    "row",
    "id",
    "sentiment",
    "p_positive",
    "p_neutral",
    "p_negative",
    "mixed",
    "root_causes",
    "aspects",
    "keywords",
    "error",
]
CONVERSATION_CSV_FIELDS = [
    "row",
    "id",
    "qa_score",
    "qa_grade",
    "resolution",
    "escalation_risk",
    "sentiment_start",
    "sentiment_end",
    "root_causes",
    "violations",
    "error",
]
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A CSV cell a spreadsheet will not evaluate: text starting (also after leading
    whitespace) with ``= + - @``, tab or CR gets a leading ``'``; numbers are unchanged."""
    if (
        isinstance(value, str)
        and value
        and (value.startswith(FORMULA_TRIGGERS) or value.lstrip().startswith(FORMULA_TRIGGERS))
    ):
        return "'" + value
    return value


def safe_row(row: dict) -> dict:
    return {k: safe_cell(v) for k, v in row.items()}


def flat_row(result: dict) -> dict:
    """One CSV row per review result: the figures a spreadsheet user filters on (text
    cells neutralised, see the module docstring)."""
    return safe_row(_flat_row(result))


def _flat_row(result: dict) -> dict:
    head = {"row": result.get("row", ""), "id": result["id"]}
    if "error" in result:
        return {**head, "error": result["error"]["code"]}
    probs = result["sentiment"]["probabilities"]
    return {
        **head,
        "sentiment": result["sentiment"]["label"],
        "p_positive": probs.get("positive"),
        "p_neutral": probs.get("neutral"),
        "p_negative": probs.get("negative"),
        "mixed": result["sentiment"].get("mixed", ""),  # absent in rows stored before sentiment.mixed
        "root_causes": "|".join(c["cause"] for c in result["root_causes"]),
        "aspects": "|".join(f"{a['aspect']}:{a['polarity']}" for a in result["aspects"]),
        "keywords": "|".join(f"{k['term']}:{k['polarity']}" for k in result["keywords"]),
        "error": "",
    }


def flat_conversation(result: dict) -> dict:
    """One CSV row per conversation result (text cells neutralised)."""
    return safe_row(_flat_conversation(result))


def _flat_conversation(result: dict) -> dict:
    head = {"row": result.get("row", ""), "id": result["id"]}
    if "error" in result:
        return {**head, "error": result["error"]["code"]}
    c = result["customer"]
    return {
        **head,
        "qa_score": result["qa"]["score"],
        "qa_grade": result["qa"]["grade"],
        "resolution": result["resolution"]["status"],
        "escalation_risk": c["escalation_risk"],
        "sentiment_start": c["sentiment_start"],
        "sentiment_end": c["sentiment_end"],
        "root_causes": "|".join(x["cause"] for x in result["root_causes"]),
        "violations": "|".join(v["rule"] for v in result["violations"]),
        "error": "",
    }


def jsonl_stream(bodies: Iterable[tuple[int, str]], batch: int = 1000) -> Iterator[bytes]:
    """Stored bodies are already compact JSON lines: join them in batches."""
    buf: list[str] = []
    for _, body in bodies:
        buf.append(body)
        if len(buf) >= batch:
            yield ("\n".join(buf) + "\n").encode()
            buf.clear()
    if buf:
        yield ("\n".join(buf) + "\n").encode()


def csv_stream(
    bodies: Iterable[tuple[int, str]], kind: str = "reviews", batch: int = 1000, bom: bool = False
) -> Iterator[bytes]:
    """CSV with a header; ``bom`` prepends a UTF-8 BOM so Excel reads Chinese correctly."""
    fields, flat = (CONVERSATION_CSV_FIELDS, flat_conversation) if kind == "conversations" else (CSV_FIELDS, flat_row)
    buf = io.StringIO()
    buf.write(",".join(fields) + "\n")
    # Text cells are always quoted: a carriage return inside one (which QUOTE_MINIMAL leaves
    # bare with a "\n" line terminator) cannot split the row; numbers stay unquoted.
    writer = csv.DictWriter(buf, fields, extrasaction="ignore", lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    n = 0
    prefix = "\ufeff" if bom else ""
    for _, body in bodies:
        writer.writerow(flat(json.loads(body)))
        n += 1
        if n % batch == 0:
            yield (prefix + buf.getvalue()).encode()
            prefix = ""
            buf.seek(0)
            buf.truncate()
    if buf.getvalue() or prefix:
        yield (prefix + buf.getvalue()).encode()
