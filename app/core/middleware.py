"""Pure ASGI middleware every request passes: a request id, a body-size limit and a body
read timeout. Pure ASGI (not ``BaseHTTPMiddleware``) so streamed bodies stay streamed."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import uuid

from fastapi import HTTPException

REQUEST_ID_HEADER = b"x-request-id"
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")

# The id of the request being served, for log lines and the 500 envelope.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def request_id_of(scope) -> str | None:
    return (scope.get("state") or {}).get("request_id")


class RequestId:
    """Every response carries ``X-Request-ID``: the client's own (when it is short and plain)
    or a fresh one. The id is kept in ``scope["state"]`` and a context variable so the error
    handler and log lines can name it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or ()).get(REQUEST_ID_HEADER)
        rid = given.decode() if given and _CLIENT_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` (413) before reading them when declared, while
    reading them when chunked."""

    def __init__(self, app, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt_prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps({"error": {"code": "body_too_large", "message": self._message}}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            return await send({"type": "http.response.body", "body": body})
        seen = 0

        async def counting_receive():
            # A chunked body has no Content-Length: count as it arrives. FastAPI re-raises
            # HTTPException from body reading, so the app's handler answers 413.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, detail=self._message)
            return message

        await self.app(scope, counting_receive, send)

    @property
    def _message(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes"


class BodyTimeout:
    """A client that stops sending its body is answered 408 after ``idle_seconds`` without a
    byte (slow-loris bodies); headers are timed out by ``app.serve``'s protocol."""

    def __init__(self, app, idle_seconds: float):
        self.app, self.idle = app, idle_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        body_done = False

        async def timed_receive():
            # Only while the body is arriving: afterwards receive() waits for a disconnect
            # during a (possibly long) streamed response, which must not time out.
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle)
            except TimeoutError:
                raise HTTPException(
                    408, detail=f"no request body data for {self.idle:g} s; send the body without pauses"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
