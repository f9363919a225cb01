"""Running the service: uvicorn with the timeouts a port open to the network needs.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but never times out a
client that opens a connection and trickles its request headers (slow loris): each such
connection is held for ever. ``HeaderTimeoutProtocol`` (uvicorn's httptools protocol plus
a timer) answers 408 and closes the connection when the headers are not complete within
``PINGJIA_HEADER_TIMEOUT_SECONDS``. Bodies are timed by ``app.core.middleware.BodyTimeout``.

    uvicorn app.main:app --http app.serve:HeaderTimeoutProtocol     # what `pingjia serve` runs
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.config import get_settings
from app.core.logs import logging_config

KEEP_ALIVE_SECONDS = 5  # idle keep-alive connections are closed after this (uvicorn's timer)
_408_BODY = b'{"error":{"code":"request_timeout","message":"request headers were not complete in time"}}'
_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_408_BODY), _408_BODY)
)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """httptools with a deadline from the connection (or a request's first byte) to the end
    of its headers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = get_settings().header_timeout_seconds
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_408)
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # Between requests the keep-alive timer rules; the next request's first byte re-arms.
        self._disarm()
        super().on_response_complete()


def serve(host: str, port: int, workers: int | None = None) -> None:
    """uvicorn with the header timeout, and the service's logging (``PINGJIA_LOG_FORMAT``:
    JSON lines by default, PII masked; uvicorn applies it in every worker process). Our
    ``pingjia.access`` line replaces uvicorn's access log, which would print raw paths."""
    settings = get_settings()
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        log_config=logging_config(settings.log_format, settings.log_level),  # levels too
        access_log=False,
        http=HeaderTimeoutProtocol,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
