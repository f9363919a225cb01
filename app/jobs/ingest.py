"""Uploads to work files: validated at submit time, rewritten as rows cut into chunks.

An upload (CSV or JSONL, or the items of a JSON body) is read once, streaming
(:mod:`app.jobs.readers`), and rewritten as a work file (:mod:`app.jobs.workfile`) while
its extra columns are profiled for the report (:mod:`app.jobs.columns`). The upload itself
reached the disk through :mod:`app.jobs.upload`.

Refused at submit time (4xx naming the line or column): a missing text/id column,
bytes that are not valid in the declared encoding (or an encoding that is not a text
encoding), a line that is not JSON (or nested too deeply, or with a number over 4300
digits), a CSV quote that is never closed, a CSV field over 1 MiB, an empty file.
Accepted but recorded as a per-row error: a JSONL line that is not an object, a CSV row
with the wrong number of fields, a conversation without ``turns`` (bad texts — empty, too
long, not a string — are reported by the pipeline in the row's slot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from app.core.errors import InvalidUpload
from app.jobs.columns import ColumnProfiler
from app.jobs.readers import iter_records
from app.jobs.report import DEFAULT_CONFIG, ReportConfig
from app.jobs.workfile import WorkFileWriter, WorkRow

KINDS = ("reviews", "conversations")
MAX_ORIGINAL_COLUMNS = 500
"""Columns of a JSONL/JSON upload the readable CSV gives back (the union of the rows' keys,
first seen first, recorded here at ingest); a CSV upload keeps its header whatever its width."""


@dataclass(frozen=True)
class InputSpec:
    """How to read an upload (the multipart form fields of ``POST /v1/jobs``)."""

    kind: str = "reviews"
    fmt: str | None = None  # csv | jsonl; None: from the file name, else sniffed
    text_column: str = "text"
    id_column: str | None = None  # None: "id" when present, else the row number
    encoding: str = "utf-8"
    date_column: str | None = None  # None: detected
    group_columns: tuple[str, ...] | None = None  # None: detected


@dataclass
class Ingested:
    """What the job records about its work file: rows, bad rows, chunks, the report plan."""

    total: int = 0
    bad_rows: int = 0
    chunks: list[tuple[int, int, int]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    fmt: str = "jsonl"
    columns: list[str] = field(default_factory=list)  # the upload's own, for the readable CSV


def ingest_file(raw: IO[bytes], out: IO[bytes], spec: InputSpec, *, fmt: str, chunk_rows: int) -> Ingested:
    """Validate and rewrite an uploaded file as a work file (see the module docstring)."""
    if spec.kind not in KINDS:
        raise InvalidUpload(f"kind must be one of {list(KINDS)}", code="invalid_kind")
    if spec.kind == "conversations" and fmt != "jsonl":
        raise InvalidUpload("conversations are accepted as JSONL only", code="unsupported_format")
    header: list[str] | None = [] if fmt == "csv" else None  # a CSV's columns are its header
    records = iter_records(
        raw,
        fmt,
        encoding=spec.encoding,
        text_column=spec.text_column,
        id_column=spec.id_column,
        on_header=header.extend if header is not None else None,
    )
    return _write((rec for _, rec in records), out, spec, chunk_rows, fmt=fmt, what="row", header=header)


def ingest_items(items: Iterable[Any], out: IO[bytes], spec: InputSpec, *, chunk_rows: int) -> Ingested:
    """The ``items`` of a JSON body, read like JSONL lines."""
    return _write(_item_records(items), out, spec, chunk_rows, fmt="json", what="item")


def _item_records(items: Iterable[Any]) -> Iterator[Any]:
    for n, item in enumerate(items, 1):
        yield (
            item
            if isinstance(item, dict)
            else ("invalid_row", f"item {n}: expected an object, got {type(item).__name__}")
        )


def _write(
    records: Iterable[Any],
    out: IO[bytes],
    spec: InputSpec,
    chunk_rows: int,
    *,
    fmt: str,
    what: str,
    header: list[str] | None = None,
) -> Ingested:
    """Records to work rows on ``out``; the plan once every row has been profiled. The
    columns are ``header`` (filled while a CSV is read), else the records' keys."""
    rows = _RowMaker(spec, collect_columns=header is None)
    writer = WorkFileWriter(out, chunk_rows)
    for rec in records:
        writer.write(rows.make(writer.total, rec))
    if spec.kind == "reviews" and writer.total > rows.bad_rows and not rows.text_seen:
        raise InvalidUpload(
            f"no {what} has the field {spec.text_column!r}; pass text_column", code="missing_column"
        )  # JSONL/JSON: a wrong text_column
    if writer.total == 0:
        raise InvalidUpload("the input has no rows", code="empty_file")
    out.flush()
    plan = rows.profiler.plan(writer.total, spec.group_columns)
    columns = header if header is not None else list(rows.columns)
    return Ingested(writer.total, rows.bad_rows, writer.chunks, plan, fmt, columns)


class _RowMaker:
    """One record (a dict, or the ``(code, message)`` of a bad row) -> one work row."""

    def __init__(self, spec: InputSpec, config: ReportConfig = DEFAULT_CONFIG, *, collect_columns: bool = True):
        self.spec = spec
        self.columns: dict[str, None] | None = {} if collect_columns else None  # first seen first
        self.profiler = ColumnProfiler(spec.date_column, config)
        self.text_seen = False
        self.bad_rows = 0
        skip = {spec.text_column, spec.id_column or "id", "meta"}
        if spec.kind == "conversations":
            skip |= {"turns", "profile"}
        self.skip = skip

    def make(self, n: int, rec: Any) -> WorkRow:
        """Row ``n`` (0-based) of the input; its id falls back to the row number."""
        if isinstance(rec, tuple):
            self.bad_rows += 1
            return WorkRow(str(n + 1), None, {}, rec)
        spec = self.spec
        if self.columns is not None and len(self.columns) < MAX_ORIGINAL_COLUMNS:
            for k in rec:
                self.columns.setdefault(str(k), None)
                if len(self.columns) >= MAX_ORIGINAL_COLUMNS:
                    break
        rid = rec.get(spec.id_column or "id")
        rid = str(n + 1) if rid is None or rid == "" else str(rid)
        bad = None
        if spec.kind == "conversations":
            payload = rec
            if not isinstance(rec.get("turns"), list):
                bad = ("invalid_conversation", "a conversation needs a 'turns' list")
            rec = {**conversation_extras(rec), **rec}
        else:
            payload = rec.get(spec.text_column)
            self.text_seen = self.text_seen or spec.text_column in rec
        items = rec.items()
        meta = rec.get("meta")
        if isinstance(meta, dict):
            items = [*items, *((k, v) for k, v in meta.items() if k not in rec)]
        extras = self.profiler.extras((k, v) for k, v in items if k not in self.skip)
        if bad:
            self.bad_rows += 1
        return WorkRow(rid, payload, extras, bad)


def conversation_extras(conv: dict) -> dict:
    """agent_id (of the first agent turn that names one), channel (the conversation's
    top-level field, else ``meta.channel``) and the first turn's time, so conversations group
    by agent, channel and day and the report's QA section has its per-agent/channel tables."""
    out = {}
    meta = conv.get("meta") if isinstance(conv.get("meta"), dict) else {}
    channel = conv.get("channel", meta.get("channel"))
    if channel not in (None, "") and not isinstance(channel, (dict, list)):
        out["channel"] = channel
    turns = conv.get("turns") if isinstance(conv.get("turns"), list) else []
    for t in turns:
        if isinstance(t, dict) and t.get("agent_id") not in (None, ""):
            out["agent_id"] = t["agent_id"]
            break
    for t in turns:
        if isinstance(t, dict) and t.get("time") not in (None, ""):
            out["started_at"] = t["time"]
            break
    return out
