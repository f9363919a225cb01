"""The error catalogue: stable codes every client can switch on.

Domain code raises ``PingjiaError``; one handler in ``app.main`` turns it (and request
validation errors) into ``{"error": {"code", "message"}}``. Nothing here is a 5xx.
"""
from __future__ import annotations


class PingjiaError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class InvalidInput(PingjiaError):
    status, code = 422, "invalid_input"


class EmptyText(PingjiaError):
    status, code = 422, "empty_text"


class TextTooLong(PingjiaError):
    status, code = 413, "text_too_long"


class TooManyItems(PingjiaError):
    status, code = 413, "too_many_items"


class BodyTooLarge(PingjiaError):
    status, code = 413, "body_too_large"


class InvalidJSON(PingjiaError):
    status, code = 400, "invalid_json"


class NotReady(PingjiaError):
    status, code = 503, "not_ready"  # the only non-4xx: models not loaded yet, retry later


class NotFound(PingjiaError):
    status, code = 404, "not_found"


class Unauthorized(PingjiaError):
    status, code = 401, "unauthorized"


class Conflict(PingjiaError):
    status, code = 409, "conflict"


class InvalidUpload(PingjiaError):
    """A job upload refused at submit time; the message names the line or column."""
    status, code = 422, "invalid_upload"
