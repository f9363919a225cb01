"""Streaming readers and writers for CSV/JSONL review files (CLI and jobs share them)."""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

csv.field_size_limit(sys.maxsize)


class InputFormatError(ValueError):
    """The input file cannot be read as asked; the message names the line or column."""


def file_format(path: Path | str) -> str:
    name = str(path).lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    raise InputFormatError(f"{path}: unknown format; use .csv or .jsonl")


def read_rows(stream: IO[str], fmt: str, *, text_column: str = "text",
              id_column: str = "id") -> Iterator[tuple[int, dict]]:
    """Yield (row number, record) with ``record['id']`` and ``record['text']`` filled in.

    Rows are numbered from 1 (the CSV header is not a row). A missing text column is an
    error at the first row; a row whose own text is bad is passed on for the pipeline to
    report in its slot.
    """
    if fmt == "csv":
        reader = csv.DictReader(stream)
        if reader.fieldnames is None or text_column not in reader.fieldnames:
            raise InputFormatError(f"column {text_column!r} not found; columns are {reader.fieldnames}")
        for n, rec in enumerate(reader, 1):
            yield n, _fill(rec, n, text_column, id_column)
        return
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise InputFormatError(f"line {n}: expected a JSON object")
        yield n, _fill(rec, n, text_column, id_column)


def _fill(rec: dict, n: int, text_column: str, id_column: str) -> dict:
    rid = rec.get(id_column)
    return {**rec, "id": str(n) if rid in (None, "") else str(rid), "text": rec.get(text_column)}


def open_text(path: Path | str, mode: str = "r") -> IO[str]:
    if str(path) == "-":
        return sys.stdin if "r" in mode else sys.stdout
    return open(path, mode, encoding="utf-8", newline="" if str(path).endswith(".csv") else None)
