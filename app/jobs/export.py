"""Job results as JSONL or CSV, streamed in input order in batches (memory stays flat)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

CSV_FIELDS = ["row", "id", "sentiment", "p_positive", "p_neutral", "p_negative", "root_causes",
              "aspects", "keywords", "error"]
CONVERSATION_CSV_FIELDS = ["row", "id", "qa_score", "qa_grade", "resolution", "escalation_risk",
                           "sentiment_start", "sentiment_end", "root_causes", "violations", "error"]


def flat_row(result: dict) -> dict:
    """One CSV row per review result: the figures a spreadsheet user filters on."""
    head = {"row": result.get("row", ""), "id": result["id"]}
    if "error" in result:
        return {**head, "error": result["error"]["code"]}
    probs = result["sentiment"]["probabilities"]
    return {
        **head, "sentiment": result["sentiment"]["label"],
        "p_positive": probs.get("positive"), "p_neutral": probs.get("neutral"), "p_negative": probs.get("negative"),
        "root_causes": "|".join(c["cause"] for c in result["root_causes"]),
        "aspects": "|".join(f"{a['aspect']}:{a['polarity']}" for a in result["aspects"]),
        "keywords": "|".join(f"{k['term']}:{k['polarity']}" for k in result["keywords"]),
        "error": "",
    }


def flat_conversation(result: dict) -> dict:
    """One CSV row per conversation result."""
    head = {"row": result.get("row", ""), "id": result["id"]}
    if "error" in result:
        return {**head, "error": result["error"]["code"]}
    c = result["customer"]
    return {**head, "qa_score": result["qa"]["score"], "qa_grade": result["qa"]["grade"],
            "resolution": result["resolution"]["status"], "escalation_risk": c["escalation_risk"],
            "sentiment_start": c["sentiment_start"], "sentiment_end": c["sentiment_end"],
            "root_causes": "|".join(x["cause"] for x in result["root_causes"]),
            "violations": "|".join(v["rule"] for v in result["violations"]), "error": ""}


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


def csv_stream(bodies: Iterable[tuple[int, str]], kind: str = "reviews", batch: int = 1000,
               bom: bool = False) -> Iterator[bytes]:
    """CSV with a header; ``bom`` prepends a UTF-8 BOM so Excel reads Chinese correctly."""
    fields, flat = ((CONVERSATION_CSV_FIELDS, flat_conversation) if kind == "conversations"
                    else (CSV_FIELDS, flat_row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
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
