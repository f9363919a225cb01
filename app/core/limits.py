"""Request-body size limit as pure ASGI middleware (works for chunked bodies too)."""
from __future__ import annotations

import json

from fastapi import HTTPException


class BodySizeLimit:
    def __init__(self, app, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt_prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps({"error": {"code": "body_too_large", "message": self._message}}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
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
