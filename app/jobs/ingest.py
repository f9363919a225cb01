"""Uploads to work files: spooled to disk, validated at submit time, cut into chunks.

An upload (CSV or JSONL, or the items of a JSON body) is read once, streaming, and
rewritten as a *work file*: one compact JSON array per row, ``[id, payload, extras]``
(plus ``[code, message]`` when the row is individually bad). Chunk boundaries
``(start_row, n_rows, byte_offset)`` are fixed here, so a worker can seek straight to
any chunk and a resumed job re-reads exactly the rows it had not committed.

Refused at submit time (4xx naming the line or column): a missing text/id column,
bytes that are not valid in the declared encoding (or an encoding that is not a text
encoding), a line that is not JSON (or nested too deeply, or with a number over 4300
digits), a CSV quote that is never closed, a CSV field over 1 MiB, an empty file.
Accepted but recorded as a per-row error: a JSONL line that is not an object, a CSV row
with the wrong number of fields, a conversation without ``turns`` (bad texts — empty, too
long, not a string — are reported by the pipeline in the row's slot).

Every file written here (spooled upload, JSON body, work file) is 0600: they hold
customers' texts.

While reading, each extra column is profiled (distinct values, how many parse as dates)
to decide the report's group columns and its date column.
"""
from __future__ import annotations

import codecs
import csv
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartState, parse_options_header

from app.core.errors import BodyTooLarge, InvalidUpload
from app.jobs.report import DATE_HINT, DEFAULT_CONFIG, ReportConfig, parse_day

MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_CSV_FIELD_CHARS = 1024 * 1024  # texts are 5000 characters at most; a longer field is a broken quote
MAX_CSV_ROW_CHARS = MAX_LINE_BYTES  # a row with quoted line breaks, all its lines together
MAX_VALUE_CHARS = 64     # a longer value is neither a group label nor a date (never parsed)
MAX_FIELD_BYTES = 64 * 1024
MAX_COLUMNS = 200        # extra columns profiled; keys beyond these are ignored
KINDS = ("reviews", "conversations")


@dataclass(frozen=True)
class InputSpec:
    """How to read an upload (the multipart form fields of ``POST /v1/jobs``)."""
    kind: str = "reviews"
    fmt: str | None = None            # csv | jsonl; None: from the file name, else sniffed
    text_column: str = "text"
    id_column: str | None = None      # None: "id" when present, else the row number
    encoding: str = "utf-8"
    date_column: str | None = None    # None: detected
    group_columns: tuple[str, ...] | None = None  # None: detected


@dataclass
class Ingested:
    total: int = 0
    bad_rows: int = 0
    chunks: list[tuple[int, int, int]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    fmt: str = "jsonl"


# --- spooling a multipart upload ------------------------------------------------------
@dataclass
class Spooled:
    fields: dict[str, str]
    filename: str | None
    size: int


async def spool_multipart(chunks: AsyncIterator[bytes], content_type: str, dest: Path,
                          max_bytes: int) -> Spooled:
    """Stream a multipart body: the ``file`` part goes to ``dest`` as it arrives, small
    form fields are kept. Never holds more than one network chunk of the file in memory."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("multipart body without a boundary", code="invalid_multipart", status=400)
    sink = _FormSink(dest, max_bytes)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidUpload(f"malformed multipart body: {exc}", code="invalid_multipart", status=400) from None
    finally:
        sink.close()
    if parser.state != MultipartState.END:  # a cut-off body: the last part may be truncated
        raise InvalidUpload("malformed multipart body: no closing boundary", code="invalid_multipart", status=400)
    if sink.filename is None and not sink.has_file:
        raise InvalidUpload("multipart field 'file' is missing", code="missing_file")
    return Spooled(sink.fields, sink.filename, sink.size)


class _FormSink:
    def __init__(self, dest: Path, max_bytes: int):
        self.dest, self.max_bytes = dest, max_bytes
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.has_file = False
        self.size = 0
        self._out: IO[bytes] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._hname = self._hvalue = b""
        self._name: str | None = None
        self._buf = bytearray()
        self._is_file = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield,
                "on_header_value": self._hval, "on_header_end": self._hend,
                "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end}

    def _begin(self):
        self._headers, self._hname, self._hvalue, self._buf = {}, b"", b"", bytearray()

    def _hfield(self, data, start, end):
        self._hname += data[start:end]

    def _hval(self, data, start, end):
        self._hvalue += data[start:end]

    def _hend(self):
        self._headers[self._hname.lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def _headers_done(self):
        _, disp = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = disp.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = self._name == "file"
        if self._is_file:
            if self.has_file:
                raise InvalidUpload("send one file per job", code="invalid_multipart")
            self.has_file = True
            fname = disp.get(b"filename")
            self.filename = fname.decode("utf-8", "replace") if fname is not None else ""
            self._out = open_private(self.dest)

    def _data(self, data, start, end):
        n = end - start
        if self._is_file:
            self.size += n
            if self.size > self.max_bytes:
                raise BodyTooLarge(f"upload exceeds {self.max_bytes} bytes")
            self._out.write(data[start:end])
        else:
            if len(self._buf) + n > MAX_FIELD_BYTES:
                raise InvalidUpload(f"form field {self._name!r} is too long", code="invalid_multipart")
            self._buf += data[start:end]

    def _end(self):
        if self._is_file:
            self._out.close()
            self._out = None
        elif self._name:
            self.fields[self._name] = self._buf.decode("utf-8", "replace")

    def close(self):
        if self._out is not None:
            self._out.close()


async def spool_body(chunks: AsyncIterator[bytes], dest: Path, max_bytes: int) -> None:
    """A (JSON) body to ``dest``, refused past ``max_bytes`` without reading the rest; it is
    parsed later, in the ingest process."""
    size = 0
    with open_private(dest) as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise BodyTooLarge(f"JSON body exceeds {max_bytes} bytes; upload large inputs as a "
                                   "multipart CSV/JSONL file")
            out.write(chunk)


def open_private(path: Path) -> IO[bytes]:
    """A new file only its owner can read, whatever the umask: uploads hold customers' texts."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


# --- reading ------------------------------------------------------------------------
def guess_format(filename: str | None, head: bytes) -> str:
    """csv or jsonl from the file name, else from the first non-blank byte."""
    name = (filename or "").lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if stripped.startswith(b"{") else "csv"


_NOT_FILE_ENCODINGS = {"idna", "punycode", "undefined"}  # text codecs, but not for a file's bytes


def check_encoding(name: str) -> str:
    """The codec's name, for a text encoding only: bytes-to-bytes codecs (base64, zlib, ...) and
    str-to-str ones (rot13) do not decode bytes to text, and would fail outside our checks."""
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        raise InvalidUpload(f"unknown encoding {name!r}; use utf-8 or gb18030", code="bad_encoding") from None
    if not info._is_text_encoding or info.name in _NOT_FILE_ENCODINGS:
        raise InvalidUpload(f"{name!r} is not a text encoding; use utf-8 or gb18030", code="bad_encoding")
    return info.name


def decoded_lines(raw: IO[bytes], encoding: str) -> Iterator[str]:
    """Lines of ``raw`` decoded strictly; a bad byte is refused with its line and column."""
    enc = check_encoding(encoding)
    lineno = 0
    while True:
        line = raw.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        lineno += 1
        if len(line) > MAX_LINE_BYTES:
            raise InvalidUpload(f"line {lineno} is longer than {MAX_LINE_BYTES} bytes", code="line_too_long")
        try:
            text = line.decode(enc)
        except UnicodeDecodeError as exc:
            raise InvalidUpload(f"line {lineno}, byte {exc.start + 1}: not valid {encoding} "
                                f"(0x{line[exc.start]:02x}); save the file as UTF-8 or pass encoding=gb18030",
                                code="bad_encoding") from None
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield text


def iter_records(raw: IO[bytes], fmt: str, spec: InputSpec) -> Iterator[tuple[int, Any]]:
    """(line number, record) where a record is a dict, or a ``(code, message)`` tuple for
    a row that is individually bad. Raises InvalidUpload for file-level problems."""
    lines = decoded_lines(raw, spec.encoding)
    if fmt == "csv":
        yield from _csv_records(lines, spec)
        return
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidUpload(f"line {n}, column {exc.colno}: not valid JSON ({exc.msg})",
                                code="invalid_jsonl") from None
        except ValueError:  # an integer beyond Python's int/str conversion limit
            raise InvalidUpload(f"line {n}: a number has more than {sys.get_int_max_str_digits()} digits",
                                code="invalid_jsonl") from None
        except RecursionError:
            raise InvalidUpload(f"line {n}: nested too deeply", code="invalid_jsonl") from None
        if not isinstance(rec, dict):
            yield n, ("invalid_row", f"line {n}: expected a JSON object, got {type(rec).__name__}")
        else:
            yield n, rec


def _csv_records(lines: Iterator[str], spec: InputSpec) -> Iterator[tuple[int, Any]]:
    """Strict quoting, bounded fields and rows: a quote that is never closed would otherwise
    swallow the rest of the file into one field, silently."""
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)  # process-wide (no per-reader limit), but bounded
    row_chars = 0

    def metered() -> Iterator[str]:
        nonlocal row_chars
        for text in lines:
            row_chars += len(text)
            if row_chars > MAX_CSV_ROW_CHARS:
                raise InvalidUpload(f"line {start}: the row starting here is longer than {MAX_CSV_ROW_CHARS} "
                                    "characters (a quote that is never closed?)", code="line_too_long")
            yield text

    reader = csv.reader(metered(), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if not header:
            raise InvalidUpload("the file is empty (no header row)", code="empty_file")
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise InvalidUpload(f"line 1: duplicate column names {dupes}", code="invalid_csv")
        if spec.text_column not in header:
            raise InvalidUpload(f"column {spec.text_column!r} not found; the header (line 1) has {header}",
                                code="missing_column")
        if spec.id_column is not None and spec.id_column not in header:
            raise InvalidUpload(f"id column {spec.id_column!r} not found; the header (line 1) has {header}",
                                code="missing_column")
        start, row_chars = reader.line_num + 1, 0
        for fields in reader:
            line = start
            start, row_chars = reader.line_num + 1, 0
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                yield line, ("invalid_row", f"line {line}: {len(fields)} fields, the header has {len(header)}")
                continue
            yield line, dict(zip(header, fields))
    except csv.Error as exc:
        raise _csv_problem(start, str(exc)) from None


def _csv_problem(line: int, error: str) -> InvalidUpload:
    """A refusal naming the line where the bad row (its field, its quote) starts."""
    if error.startswith("field larger than"):
        return InvalidUpload(f"line {line}: a field is longer than {MAX_CSV_FIELD_CHARS} characters "
                             "(a quote that is never closed?)", code="field_too_long")
    if error == "unexpected end of data":
        return InvalidUpload(f"line {line}: a quoted field is never closed (the file ends inside it)",
                             code="invalid_csv")
    return InvalidUpload(f"line {line}: {error}; inside a quoted field, write a quote as two (\"\")",
                         code="invalid_csv")


# --- profiling extra columns -------------------------------------------------------------
class _Column:
    __slots__ = ("values", "nonempty", "dates", "hint")

    def __init__(self, name: str, hint: bool = False):
        self.values: set[str] | None = set()
        self.nonempty = self.dates = 0
        self.hint = hint or bool(DATE_HINT.search(name))  # a time-like name: epoch numbers are times

    def see(self, value: str, cap: int) -> bool:
        """Profile one value; False once the column can be neither group nor date."""
        if value == "":
            return True
        self.nonempty += 1
        if len(value) > MAX_VALUE_CHARS:  # neither a label nor a date: never parsed
            self.values = None
            return self.date_like
        if self.nonempty <= 100 or self.dates >= 0.95 * (self.nonempty - 1):  # still date-like
            if parse_day(value, allow_epoch=self.hint):
                self.dates += 1
        if self.values is not None:
            self.values.add(value)
            if len(self.values) > cap:
                self.values = None
        return self.values is not None or self.date_like

    @property
    def date_like(self) -> bool:
        return self.nonempty > 0 and self.dates >= 0.95 * self.nonempty


def _scalar(v: Any) -> str | None:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    return None


# --- the work file --------------------------------------------------------------------
class WorkWriter:
    """Writes work rows and records chunk boundaries and column profiles."""

    def __init__(self, out: IO[bytes], spec: InputSpec, chunk_rows: int, config: ReportConfig = DEFAULT_CONFIG):
        self.out, self.spec, self.chunk_rows, self.cfg = out, spec, chunk_rows, config
        self.result = Ingested()
        self.offset = 0
        self.columns: dict[str, _Column] = {}
        self.dead: set[str] = set()
        self.text_seen = False
        skip = {spec.text_column, spec.id_column or "id"}
        if spec.kind == "conversations":
            skip |= {"turns", "profile"}
        self.skip = skip

    def add(self, rec: Any) -> None:
        n = self.result.total
        if n % self.chunk_rows == 0:
            self.result.chunks.append((n, 0, self.offset))
        start, size, off = self.result.chunks[-1]
        self.result.chunks[-1] = (start, size + 1, off)
        self.result.total += 1
        if isinstance(rec, tuple):
            self.result.bad_rows += 1
            row = [str(n + 1), None, {}, list(rec)]
        else:
            row = self._row(n, rec)
        data = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self.out.write(data)
        self.offset += len(data)

    def _row(self, n: int, rec: dict) -> list:
        spec = self.spec
        rid = rec.get(spec.id_column or "id")
        rid = str(n + 1) if rid is None or rid == "" else str(rid)
        if spec.kind == "conversations":
            payload = rec
            bad = None if isinstance(rec.get("turns"), list) else ("invalid_conversation",
                                                                   "a conversation needs a 'turns' list")
            rec = {**_conversation_extras(rec), **rec}
        else:
            payload, bad = rec.get(spec.text_column), None
            self.text_seen = self.text_seen or spec.text_column in rec
        extras = {}
        items = rec.items()
        meta = rec.get("meta")
        if isinstance(meta, dict):
            items = [*items, *((k, v) for k, v in meta.items() if k not in rec)]
        for key, value in items:
            if key in self.skip or key in self.dead or key == "meta":
                continue
            text = _scalar(value)
            if text is None:
                continue
            col = self.columns.get(key)
            if col is None:
                if len(self.columns) >= MAX_COLUMNS:
                    continue
                col = self.columns[key] = _Column(key, hint=key == self.spec.date_column)
            if col.see(text, self.cfg.max_group_values):
                extras[key] = text
            else:
                self.dead.add(key)
        row = [rid, payload, extras]
        if bad:
            self.result.bad_rows += 1
            row.append(list(bad))
        return row

    def finish(self) -> Ingested:
        if self.result.total == 0:
            raise InvalidUpload("the input has no rows", code="empty_file")
        self.out.flush()
        self.result.plan = self._plan()
        return self.result

    def _plan(self) -> dict:
        """Which columns the report groups by, and which one gives the day."""
        spec, total, cfg = self.spec, self.result.total, self.cfg
        cols = self.columns
        for name in [spec.date_column, *(spec.group_columns or ())]:
            if name is not None and name not in cols:
                raise InvalidUpload(f"column {name!r} not found; extra columns are {sorted(cols)}",
                                    code="missing_column")
        for name in spec.group_columns or ():
            if cols[name].values is None:
                raise InvalidUpload(f"column {name!r} has more than {cfg.max_group_values} distinct values "
                                    f"(or values over {MAX_VALUE_CHARS} characters); it cannot be a group column",
                                    code="invalid_column")
        date_col = spec.date_column
        if date_col and not cols[date_col].date_like:
            raise InvalidUpload(f"column {date_col!r} does not hold dates (e.g. 2026-11-20 or 2026-11-20 10:00)",
                                code="invalid_column")
        if date_col is None:
            dated = [(c.hint, c.nonempty, k) for k, c in cols.items()
                     if c.date_like and c.nonempty >= 0.5 * total]
            date_col = max(dated)[2] if dated else None
        if spec.group_columns is not None:
            groups = [g for g in spec.group_columns if g != date_col]
        else:
            groups = [k for k, c in cols.items() if k != date_col and c.values is not None
                      and 2 <= len(c.values) <= cfg.max_group_values
                      and len(c.values) <= max(2, cfg.max_group_share * total)]
        described = {}
        for k, c in cols.items():
            role = "date" if k == date_col else "group" if k in groups else "ignored"
            described[k] = {"role": role, "distinct": len(c.values) if c.values is not None
                            else f">{cfg.max_group_values} or long values",
                            "date_share": round(c.dates / c.nonempty, 3) if c.nonempty else 0.0}
        return {"group_columns": groups, "date_column": date_col,
                "date_epoch": bool(date_col and cols[date_col].hint), "columns": described,
                "rule": f"group columns: 2..{cfg.max_group_values} distinct values, at most one per "
                        f"{round(1 / cfg.max_group_share)} rows; date column: >= 95% of its non-empty "
                        "values parse as a date and it is filled in >= half the rows"}


def _conversation_extras(conv: dict) -> dict:
    """agent_id and the first turn's time, so conversations group by agent and day."""
    out = {}
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


def ingest_file(raw: IO[bytes], out: IO[bytes], spec: InputSpec, *, fmt: str, chunk_rows: int) -> Ingested:
    """Validate and rewrite an uploaded file as a work file (see the module docstring)."""
    if spec.kind not in KINDS:
        raise InvalidUpload(f"kind must be one of {list(KINDS)}", code="invalid_kind")
    if spec.kind == "conversations" and fmt != "jsonl":
        raise InvalidUpload("conversations are accepted as JSONL only", code="unsupported_format")
    writer = WorkWriter(out, spec, chunk_rows)
    for _, rec in iter_records(raw, fmt, spec):
        writer.add(rec)
    _check_text_seen(writer, "row")
    result = writer.finish()
    result.fmt = fmt
    return result


def _check_text_seen(writer: WorkWriter, what: str) -> None:
    """A JSONL/JSON input where no object has the text field is a wrong ``text_column``."""
    if (writer.spec.kind == "reviews" and writer.result.total > writer.result.bad_rows
            and not writer.text_seen):
        raise InvalidUpload(f"no {what} has the field {writer.spec.text_column!r}; pass text_column",
                            code="missing_column")


def ingest_items(items: Iterable[Any], out: IO[bytes], spec: InputSpec, *, chunk_rows: int) -> Ingested:
    """The ``items`` of a JSON body, read like JSONL lines."""
    writer = WorkWriter(out, spec, chunk_rows)
    for n, item in enumerate(items, 1):
        writer.add(item if isinstance(item, dict) else
                   ("invalid_row", f"item {n}: expected an object, got {type(item).__name__}"))
    _check_text_seen(writer, "item")
    result = writer.finish()
    result.fmt = "json"
    return result


def read_chunk(path: str | Path, offset: int, n_rows: int) -> list[list]:
    """The ``n_rows`` work rows starting at byte ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        return [json.loads(f.readline()) for _ in range(n_rows)]
