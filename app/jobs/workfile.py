"""The work file: a job's rows, one compact JSON array per line, cut into chunks.

A line is ``[id, payload, extras]``, plus ``[code, message]`` when the row is individually
bad (it is reported as that row's error, never scored). The layout on disk is fixed: work
files of jobs still running must read the same after an upgrade. Chunk boundaries
``(start_row, n_rows, byte_offset)`` are recorded while writing, so a worker seeks straight
to any chunk and a resumed job re-reads exactly the rows it had not committed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.core import jsonbytes


@dataclass(frozen=True, slots=True)
class WorkRow:
    """One row to score: its id, what to analyse (a review's text, a conversation object),
    its extra column values for the report, and the ``(code, message)`` of a bad row.

    >>> row = WorkRow("r1", "ok", {"channel": "app"})
    >>> row.encode()
    b'["r1","ok",{"channel":"app"}]\\n'
    >>> WorkRow.decode(row.encode()) == row
    True
    >>> WorkRow.decode(b'["7",null,{},["invalid_row","line 8: 3 fields"]]').error
    ('invalid_row', 'line 8: 3 fields')
    """

    id: str
    payload: Any
    extras: dict[str, str]
    error: tuple[str, str] | None = None

    def encode(self) -> bytes:
        """The row's line in the work file (with its newline)."""
        row = [self.id, self.payload, self.extras]
        if self.error is not None:
            row.append(list(self.error))
        return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> WorkRow:
        """A row from its line."""
        row = jsonbytes.loads(line)
        return cls(row[0], row[1], row[2], tuple(row[3]) if len(row) >= 4 else None)


class WorkFileWriter:
    """Appends rows to a work file and fixes the chunk boundaries as it goes."""

    def __init__(self, out: IO[bytes], chunk_rows: int):
        self.out, self.chunk_rows = out, chunk_rows
        self.total = 0
        self.offset = 0
        self.chunks: list[tuple[int, int, int]] = []

    def write(self, row: WorkRow) -> None:
        n = self.total
        if n % self.chunk_rows == 0:
            self.chunks.append((n, 0, self.offset))
        start, size, off = self.chunks[-1]
        self.chunks[-1] = (start, size + 1, off)
        self.total += 1
        data = row.encode()
        self.out.write(data)
        self.offset += len(data)


def read_chunk(path: str | Path, offset: int, n_rows: int) -> list[WorkRow]:
    """The ``n_rows`` work rows starting at byte ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        return [WorkRow.decode(f.readline()) for _ in range(n_rows)]
