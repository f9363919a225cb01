"""Request bodies to private files on disk, streamed: never a whole upload in memory.

``POST /v1/jobs`` spools its multipart ``file`` part (or its JSON body) here before the
ingest process reads it. Every file written here is 0600: uploads hold customers' texts.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartState, parse_options_header

from app.core.errors import BodyTooLarge, InvalidUpload

MAX_FIELD_BYTES = 64 * 1024  # a small form field (kind, encoding, ...), never a text


@dataclass
class Spooled:
    """What a multipart body held besides the file: its small fields, the file's name and size."""

    fields: dict[str, str]
    filename: str | None
    size: int


async def spool_multipart(chunks: AsyncIterator[bytes], content_type: str, dest: Path, max_bytes: int) -> Spooled:
    """Stream a multipart body: the ``file`` part goes to ``dest`` as it arrives, small
    form fields are kept. Never holds more than one network chunk of the file in memory."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUpload("multipart body without a boundary", code="invalid_multipart")
    sink = _FormSink(dest, max_bytes)
    parser = MultipartParser(boundary, sink.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidUpload(f"malformed multipart body: {exc}", code="invalid_multipart") from None
    finally:
        sink.close()
    if parser.state != MultipartState.END:  # a cut-off body: the last part may be truncated
        raise InvalidUpload("malformed multipart body: no closing boundary", code="invalid_multipart")
    if sink.filename is None and not sink.has_file:
        raise InvalidUpload("multipart field 'file' is missing", code="missing_file")
    return Spooled(sink.fields, sink.filename, sink.size)


class _FormSink:
    """The multipart parser's callbacks: the ``file`` part to disk, other parts to ``fields``."""

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
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._hfield,
            "on_header_value": self._hval,
            "on_header_end": self._hend,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

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
                raise BodyTooLarge(
                    f"JSON body exceeds {max_bytes} bytes; upload large inputs as a multipart CSV/JSONL file"
                )
            out.write(chunk)


def open_private(path: Path) -> IO[bytes]:
    """A new file only its owner can read, whatever the umask: uploads hold customers' texts."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")
