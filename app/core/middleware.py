"""Pure ASGI middleware every request passes: a request id, the request log (and metrics),
a body-size limit and a body read timeout. Pure ASGI (not ``BaseHTTPMiddleware``) so streamed
bodies stay streamed, and each costs microseconds."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace

from fastapi import HTTPException

from app.core.errors import status_of
from app.core.logs import ACCESS_LOGGER

REQUEST_ID_HEADER = b"x-request-id"
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")

# The id of the request being served, for log lines and the 500 envelope.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def request_id_of(scope) -> str | None:
    return (scope.get("state") or {}).get("request_id")


UNMATCHED = "<unmatched>"  # the route label of a path no route serves (never the raw path)
REFUSED = SimpleNamespace(path="<refused>")  # the route of a request middleware answered before routing


def route_path(scope) -> str:
    """The path the router matches: without a proxy's ``root_path`` when the path carries it
    (as Starlette's router does), so ``--root-path /api`` moves no path in or out of a rule.

    >>> route_path({"path": "/api/v1/jobs", "root_path": "/api"}), route_path({"path": "/apiv1", "root_path": "/api"})
    ('/v1/jobs', '/apiv1')
    """
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


async def send_error(scope, send, code: str, message: str, headers: dict[bytes, bytes] | None = None) -> None:
    """The error envelope (status from the catalogue), answered by middleware before any route
    runs; logged and counted under the ``<refused>`` route."""
    scope["route"] = REFUSED
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": status_of(code), "headers": head + list((headers or {}).items())}
    )
    await send({"type": "http.response.body", "body": body})


def route_template(scope) -> str:
    """The path template of the route that served ``scope`` (``/v1/jobs/{job_id}``), set by
    the router; never the raw path, so log fields and metric labels carry no ids."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
    if "endpoint" in scope and root != app_root:  # a mounted app (static files): its mount path
        return root[len(app_root) :] + "/{path}"
    return UNMATCHED


Observer = Callable[[str, str, int, float], None]  # (method, route template, status, seconds)


class AccessLog:
    """One ``pingjia.access`` line per request — request id, method, route template, status,
    duration, key id, client; never the body or the query — and each request handed to
    ``observe`` (the metrics). Sits inside ``RequestId``, outside everything that can refuse."""

    def __init__(self, app, observe: Observer | None = None):
        self.app, self.observe, self.log = app, observe, logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before answering

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            if self.observe is not None:
                self.observe(scope["method"], route, status, seconds)
            if self.log.isEnabledFor(logging.INFO):
                self._line(scope, route, status, seconds)

    def _line(self, scope, route: str, status: int, seconds: float) -> None:
        state, client = scope.get("state") or {}, scope.get("client")
        extra = {
            "request_id": state.get("request_id"),
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "key_id": state.get("key_id"),
            "client": client[0] if client else None,
        }
        # makeRecord + handle, not .info(): the caller's file and line (a stack walk) say nothing here.
        args = (scope["method"], route, status)
        self.log.handle(self.log.makeRecord(self.log.name, logging.INFO, "", 0, "%s %s %d", args, None, extra=extra))


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
        if scope["type"] != "http" or route_path(scope).startswith(self.exempt):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await send_error(scope, send, "body_too_large", self._message)
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
                async with asyncio.timeout(self.idle):  # a timer, not wait_for's task per message
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, detail=f"no request body data for {self.idle:g} s; send the body without pauses"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
