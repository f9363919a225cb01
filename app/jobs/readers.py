"""Reading an upload's records: strict decoding, JSONL lines and CSV rows, bounded.

A problem with the file as a whole (bytes not valid in the declared encoding, a line that
is not JSON, a CSV quote never closed, a field over 1 MiB, a missing column, an empty file)
raises ``InvalidUpload`` naming the line, so the job is refused at submit time. A row that
is individually bad (a JSONL line that is not an object, a CSV row with the wrong number
of fields) comes out as a ``(code, message)`` tuple instead, and becomes that row's error.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from app.core.errors import InvalidUpload

MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_CSV_FIELD_CHARS = 1024 * 1024  # texts are 5000 characters at most; a longer field is a broken quote
MAX_CSV_ROW_CHARS = MAX_LINE_BYTES  # a row with quoted line breaks, all its lines together

_NOT_FILE_ENCODINGS = {"idna", "punycode", "undefined"}  # text codecs, but not for a file's bytes


def guess_format(filename: str | None, head: bytes) -> str:
    """csv or jsonl from the file name, else from the first non-blank byte.

    >>> guess_format("reviews.ndjson", b""), guess_format(None, b'\\xef\\xbb\\xbf {"text": 1}')
    ('jsonl', 'jsonl')
    >>> guess_format("export.txt", b"{"), guess_format(None, b"id,text")
    ('csv', 'csv')
    """
    name = (filename or "").lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if stripped.startswith(b"{") else "csv"


def check_encoding(name: str) -> str:
    """The codec's name, for a text encoding only: bytes-to-bytes codecs (base64, zlib, ...) and
    str-to-str ones (rot13) do not decode bytes to text, and would fail outside our checks.

    >>> check_encoding("GBK"), check_encoding("utf8")
    ('gbk', 'utf-8')
    """
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
            raise InvalidUpload(
                f"line {lineno}, byte {exc.start + 1}: not valid {encoding} "
                f"(0x{line[exc.start]:02x}); save the file as UTF-8 or pass encoding=gb18030",
                code="bad_encoding",
            ) from None
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield text


def iter_records(
    raw: IO[bytes],
    fmt: str,
    *,
    encoding: str = "utf-8",
    text_column: str = "text",
    id_column: str | None = None,
    on_header: Callable[[list[str]], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """(line number, record) where a record is a dict, or a ``(code, message)`` tuple for
    a row that is individually bad. Raises InvalidUpload for file-level problems; a CSV
    header must name ``text_column`` (and ``id_column`` when given), and is handed to
    ``on_header`` once checked."""
    lines = decoded_lines(raw, encoding)
    if fmt == "csv":
        yield from _csv_records(lines, text_column, id_column, on_header)
        return
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidUpload(
                f"line {n}, column {exc.colno}: not valid JSON ({exc.msg})", code="invalid_jsonl"
            ) from None
        except ValueError:  # an integer beyond Python's int/str conversion limit
            raise InvalidUpload(
                f"line {n}: a number has more than {sys.get_int_max_str_digits()} digits", code="invalid_jsonl"
            ) from None
        except RecursionError:
            raise InvalidUpload(f"line {n}: nested too deeply", code="invalid_jsonl") from None
        if not isinstance(rec, dict):
            yield n, ("invalid_row", f"line {n}: expected a JSON object, got {type(rec).__name__}")
        else:
            yield n, rec


def _csv_records(
    lines: Iterator[str], text_column: str, id_column: str | None, on_header: Callable[[list[str]], None] | None
) -> Iterator[tuple[int, Any]]:
    """Strict quoting, bounded fields and rows: a quote that is never closed would otherwise
    swallow the rest of the file into one field, silently."""
    csv.field_size_limit(MAX_CSV_FIELD_CHARS)  # process-wide (no per-reader limit), but bounded
    row_chars = 0

    def metered() -> Iterator[str]:
        nonlocal row_chars
        for text in lines:
            row_chars += len(text)
            if row_chars > MAX_CSV_ROW_CHARS:
                raise InvalidUpload(
                    f"line {start}: the row starting here is longer than {MAX_CSV_ROW_CHARS} "
                    "characters (a quote that is never closed?)",
                    code="line_too_long",
                )
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
        if text_column not in header:
            raise InvalidUpload(
                f"column {text_column!r} not found; the header (line 1) has {header}", code="missing_column"
            )
        if id_column is not None and id_column not in header:
            raise InvalidUpload(
                f"id column {id_column!r} not found; the header (line 1) has {header}", code="missing_column"
            )
        if on_header is not None:
            on_header(list(header))
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
        return InvalidUpload(
            f"line {line}: a field is longer than {MAX_CSV_FIELD_CHARS} characters (a quote that is never closed?)",
            code="field_too_long",
        )
    if error == "unexpected end of data":
        return InvalidUpload(
            f"line {line}: a quoted field is never closed (the file ends inside it)", code="invalid_csv"
        )
    return InvalidUpload(f'line {line}: {error}; inside a quoted field, write a quote as two ("")', code="invalid_csv")
