"""Job results as JSONL or CSV, streamed in input order in batches (memory stays flat).

Two CSVs. The default one is for a person with a spreadsheet: the upload's own columns
(every one, in the upload's order, each row as it was uploaded), then the findings under
Chinese headers with Chinese names (情感 好评/中评/差评, 根因, 证据 ...). The original rows are
re-read from the job's kept upload (or JSON body) and zipped with the stored results, row
for row (:class:`OriginalRows`). ``columns=codes`` gives the older machine-readable one
(English headers, codes; ``CSV_FIELDS``) for integrations.

CSV exports are neutralised against spreadsheet formula injection (OWASP "CSV
Injection"): no cell of a downloaded file may be evaluated as a formula or a DDE
command when a spreadsheet opens it.

* Every *text* cell (the upload's own columns and header names, and ids, come from the
  uploader; keyword, aspect, cause and evidence cells are derived from the uploaded texts;
  the rest are our own labels and codes, neutralised all the same) whose first character
  is one of ``= + - @``, tab (0x09) or carriage return (0x0D) is prefixed with a single
  quote ``'``. So is a cell whose first character *after leading whitespace* (spaces,
  U+3000, line breaks ...) is one of those, because importers that trim cells would
  otherwise still evaluate it.
  ``=cmd|' /C calc'!A0`` is written as ``'=cmd|' /C calc'!A0``.
* A user's id is text even when it looks like a number: ``-12`` is written as
  ``'-12``, as OWASP recommends (a spreadsheet shows the quote; that is the price of
  not guessing which "numbers" are harmless).
* Figures the service computes (``row``, ``p_*``, ``mixed``, ``qa_score``, 情感分,
  质检得分) are Python numbers (``mixed`` a bool, written ``True``/``False``), not text: they cannot carry a
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
from pathlib import Path
from typing import IO, Any

from app.core.taxonomy import zh
from app.jobs.columns import scalar
from app.jobs.ingest import MAX_ORIGINAL_COLUMNS
from app.jobs.readers import iter_records
from app.jobs.service import BODY_FILE, UPLOAD_FILE
from app.jobs.workfile import WorkRow

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
    """The machine-readable CSV (``columns=codes``): English headers and codes; ``bom``
    prepends a UTF-8 BOM so Excel reads Chinese correctly."""
    fields, flat = (CONVERSATION_CSV_FIELDS, flat_conversation) if kind == "conversations" else (CSV_FIELDS, flat_row)
    return _csv_chunks(fields, (flat(json.loads(body)) for _, body in bodies), batch, bom, quote_header=False)


def _csv_chunks(
    fields: list[str], rows: Iterable[dict], batch: int, bom: bool, quote_header: bool = True
) -> Iterator[bytes]:
    """Header and rows as CSV bytes in batches. Text cells are always quoted: a carriage return
    inside one (which QUOTE_MINIMAL leaves bare with a "\n" line terminator) cannot split the
    row; numbers stay unquoted. Header cells are neutralised and quoted like text (uploads name
    columns), except our own fixed names (``quote_header=False``: the codes CSV's header as it was)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    if quote_header:
        writer.writerow([safe_cell(f) for f in fields])
    else:
        buf.write(",".join(fields) + "\n")
    n = 0
    prefix = "\ufeff" if bom else ""
    for row in rows:
        writer.writerow([row.get(f, "") for f in fields])
        n += 1
        if n % batch == 0:
            yield (prefix + buf.getvalue()).encode()
            prefix = ""
            buf.seek(0)
            buf.truncate()
    if buf.getvalue() or prefix:
        yield (prefix + buf.getvalue()).encode()


# --- the readable CSV ----------------------------------------------------------------------
SEP = "；"  # between items of one cell (a full-width semicolon: never inside a cause name)
REVIEW_HEADERS = ["情感", "情感分", "混合评价", "根因", "证据", "方面", "关键词", "错误"]
CONVERSATION_HEADERS = [
    "质检得分",
    "质检等级",
    "违规",
    "问题解决",
    "升级风险",
    "客户情绪（开始）",
    "客户情绪（结束）",
    "根因",
    "证据",
    "错误",
]


def sentiment_score(probabilities: dict) -> float | None:
    """情感分, 0-100: the expected rating with 好评 = 100, 中评 = 50, 差评 = 0 under the model's
    probabilities (a 差评 the model is sure of is near 0, a sure 好评 near 100).

    >>> sentiment_score({"positive": 0.9, "neutral": 0.1, "negative": 0.0})
    95.0
    """
    if not probabilities:
        return None
    return round(100 * probabilities.get("positive", 0.0) + 50 * probabilities.get("neutral", 0.0), 1)


def _error_cell(error: dict) -> str:
    return f"{error.get('code', '')}: {error.get('message', '')}"


def _evidence(causes: list[dict]) -> str:
    return SEP.join(f"{zh('cause', c['cause'])}：{'、'.join(e['text'] for e in c.get('evidence', []))}" for c in causes)


def readable_review(result: dict) -> dict:
    """The findings of one review row under ``REVIEW_HEADERS``, in Chinese (names from the
    taxonomy, so rows stored before the ``*_zh`` fields read the same)."""
    if "error" in result:
        return {"错误": _error_cell(result["error"])}
    sent = result["sentiment"]
    terms = dict.fromkeys(f"{k['term']}（{zh('polarity', k['polarity'])}）" for k in result.get("keywords", []))
    mixed = sent.get("mixed")
    return {
        "情感": zh("review_sentiment", sent["label"]),
        "情感分": sentiment_score(sent.get("probabilities") or {}),
        "混合评价": "" if mixed is None else ("是" if mixed else "否"),
        "根因": SEP.join(zh("cause", c["cause"]) for c in result["root_causes"]),
        "证据": _evidence(result["root_causes"]),
        "方面": SEP.join(f"{zh('aspect', a['aspect'])}（{zh('polarity', a['polarity'])}）" for a in result["aspects"]),
        "关键词": SEP.join(terms),
        "错误": "",
    }


def _violation_cell(v: dict) -> str:
    """``推诿（第3条）：不归我管``: the code's name, the message (from 1) and the text; a PII
    leak shows the masked value only (``138****5678``)."""
    name = zh("violation", v.get("category") or v["rule"])
    return f"{name}（第{v['turn'] + 1}条）：{v.get('masked') or v.get('text', '')}"


def readable_conversation(result: dict) -> dict:
    """The findings of one conversation row under ``CONVERSATION_HEADERS``, in Chinese."""
    if "error" in result:
        return {"错误": _error_cell(result["error"])}
    c, qa = result["customer"], result["qa"]
    return {
        "质检得分": qa["score"],
        "质检等级": zh("grade", qa["grade"]),
        "违规": SEP.join(_violation_cell(v) for v in result["violations"]),
        "问题解决": zh("resolution", result["resolution"]["status"]),
        "升级风险": zh("escalation", c["escalation_risk"]),
        "客户情绪（开始）": zh("sentiment", c["sentiment_start"]) or "",
        "客户情绪（结束）": zh("sentiment", c["sentiment_end"]) or "",
        "根因": SEP.join(zh("cause", x["cause"]) for x in result["root_causes"]),
        "证据": _evidence(result["root_causes"]),
        "错误": "",
    }


def cell(value: Any, key: str = "") -> str:
    """An original value as the text of its cell: scalars as the upload had them, a
    conversation's ``turns`` as one line per turn (客户：…), other lists/objects as JSON."""
    text = scalar(value)
    if text is not None:
        return text
    if key == "turns" and isinstance(value, list):
        return "\n".join(_turn_line(t) for t in value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _turn_line(turn: Any) -> str:
    """``客户：…``: a string role by its Chinese name, any other role and the text as cells; a
    turn that is not an object as its own cell."""
    if not isinstance(turn, dict):
        return cell(turn)
    role = turn.get("role")
    return f"{zh('role', role) if isinstance(role, str) else cell(role)}：{cell(turn.get('text', ''))}"


class OriginalRows:
    """The upload's rows again, in input order (``None`` for a row the reader refused), read from
    wherever the job kept them: the upload file (CSV/JSONL, re-read with the job's own reader
    settings), a JSON body's items, or, for a job that kept neither, its work file (id, text and
    the report's columns only). ``columns`` are those ingest recorded (``Ingested.columns``);
    for a job created before it recorded them (None), and for the work file, the rows are read
    once more for them."""

    def __init__(self, open_rows, columns: list[str]):
        self._open, self.columns = open_rows, columns

    def __iter__(self) -> Iterator[dict | None]:
        return self._open()

    @classmethod
    def from_upload(cls, path: Path, input_params: dict, columns: list[str] | None = None) -> OriginalRows:
        """An upload file read exactly as ingest read it (format, encoding, text/id column)."""
        fmt = "jsonl" if input_params.get("format") in ("jsonl", "json") else "csv"

        def rows() -> Iterator[dict | None]:
            with open(path, "rb") as raw:
                yield from _records(raw, fmt, input_params)

        return cls(rows, columns if columns is not None else _columns(rows(), first_only=fmt == "csv"))

    @classmethod
    def from_body(cls, path: Path, columns: list[str] | None = None) -> OriginalRows:
        """A JSON job's spooled body ``{"items": [...]}`` (at most ``max_body_bytes``)."""

        def rows() -> Iterator[dict | None]:
            items = json.loads(path.read_bytes()).get("items") or []
            return (item if isinstance(item, dict) else None for item in items)

        return cls(rows, columns if columns is not None else _columns(rows()))

    @classmethod
    def from_work_file(cls, path: Path, input_params: dict, kind: str) -> OriginalRows:
        """What the work file still has: the id, the text (or transcript) and the columns the
        report kept (a job submitted before uploads were kept)."""
        id_col = input_params.get("id_column") or "id"
        text_col = input_params.get("text_column") or "text"

        def rows() -> Iterator[dict | None]:
            with open(path, "rb") as f:
                for line in f:
                    row = WorkRow.decode(line)
                    if row.error is not None:
                        yield None
                    elif kind == "conversations" and isinstance(row.payload, dict):
                        yield {id_col: row.id, **row.payload, **row.extras}
                    else:
                        yield {id_col: row.id, text_col: row.payload, **row.extras}

        return cls(rows, _columns(rows()))  # not the upload's columns: only those the work file kept


def _records(raw: IO[bytes], fmt: str, params: dict) -> Iterator[dict | None]:
    records = iter_records(
        raw,
        fmt,
        encoding=params.get("encoding") or "utf-8",
        text_column=params.get("text_column") or "text",
        id_column=params.get("id_column"),
    )
    for _, rec in records:
        yield rec if isinstance(rec, dict) else None


def _columns(rows: Iterable[dict | None], first_only: bool = False) -> list[str]:
    """Column names, first seen first: a CSV's header (its first good row's keys), else the
    union of every row's keys up to ``MAX_ORIGINAL_COLUMNS``. Only for a job created before
    ingest recorded them."""
    seen: dict[str, None] = {}
    for row in rows:
        if row is None:
            continue
        for k in row:
            if len(seen) < MAX_ORIGINAL_COLUMNS:
                seen.setdefault(str(k), None)
        if first_only:
            break
    return list(seen)


def readable_csv_stream(
    bodies: Iterable[tuple[int, str]],
    originals: OriginalRows | None,
    kind: str = "reviews",
    batch: int = 1000,
    bom: bool = True,
) -> Iterator[bytes]:
    """The readable CSV: each original row as uploaded, then its findings in Chinese. Both
    sides are in input order; a result ``(row_index, body)`` is paired with original row
    ``row_index`` (a cancelled job has results for some rows only); every text cell is neutralised."""
    findings, readable = (
        (CONVERSATION_HEADERS, readable_conversation) if kind == "conversations" else (REVIEW_HEADERS, readable_review)
    )
    own = originals.columns if originals is not None else ["id"]
    taken = set(own)
    headers = {h: h if h not in taken else f"{h}（评价）" for h in findings}  # an upload may have a 情感 column
    fields = [*own, *headers.values()]
    source = iter(originals) if originals is not None else None

    def rows() -> Iterator[dict]:
        read = 0  # originals consumed: a cancelled job's results can skip rows, so align by index
        for index, body in bodies:
            result = json.loads(body)
            if source is None:
                orig = {"id": result.get("id")}
            else:
                for _ in range(index - read):
                    next(source, None)
                read = index + 1
                orig = next(source, None)
            row = {k: cell(v, k) for k, v in (orig or {}).items() if k in taken}
            row |= {headers[k]: v for k, v in readable(result).items()}
            yield safe_row(row)

    return _csv_chunks(fields, rows(), batch, bom)


def job_originals(
    folder: Path,
    input_params: dict,
    kind: str,
    work_path: str | Path,
    columns: list[str] | None = None,
    upload: Path | None = None,
) -> OriginalRows | None:
    """The original rows of a job: ``upload`` (the file ``pingjia score`` read), else from its
    folder (``upload.raw``, ``body.json``, else the work file); ``columns`` as ingest recorded them."""
    upload = upload or folder / UPLOAD_FILE
    if upload.is_file():
        return OriginalRows.from_upload(upload, input_params, columns)
    if (folder / BODY_FILE).is_file():
        return OriginalRows.from_body(folder / BODY_FILE, columns)
    if Path(work_path).is_file():
        return OriginalRows.from_work_file(Path(work_path), input_params, kind)
    return None


def job_csv(
    rec,
    bodies: Iterable[tuple[int, str]],
    *,
    columns: str = "readable",
    bom: bool = True,
    upload: Path | None = None,
) -> Iterator[bytes]:
    """A finished job's CSV: readable (default) or ``codes``. ``upload``: where the input is
    when the job folder does not keep it (``pingjia score`` reads the file in place)."""
    if columns == "codes":
        return csv_stream(bodies, rec.kind, bom=bom)
    work = Path(rec.work_path)
    params = rec.params
    originals = job_originals(work.parent, params.get("input", {}), rec.kind, work, params.get("columns"), upload)
    return readable_csv_stream(bodies, originals, rec.kind, bom=bom)
