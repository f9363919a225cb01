"""The error catalogue: stable codes every client can switch on.

Domain code raises ``PingjiaError``; one handler in ``app.main`` turns it (and request
validation errors) into ``{"error": {"code", "message"}}``. Nothing here is a 500: the
503s mean "retry", the 507 "free disk space".
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

    def __reduce__(self):
        """Pickle with ``code``/``status`` (jobs are ingested in another process; default
        exception pickling would rebuild from ``args`` alone and lose them)."""
        return _rebuild, (type(self), self.message, self.code, self.status)


def _rebuild(cls: type[PingjiaError], message: str, code: str, status: int) -> PingjiaError:
    return cls(message, code=code, status=status)


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


class JobsUnavailable(PingjiaError):
    """The job database cannot be used (damaged, unreadable, not writable): every /v1/jobs
    endpoint answers this, naming the file and what to do; the review API keeps serving."""
    status, code = 503, "jobs_unavailable"


class InsufficientStorage(PingjiaError):
    """The disk (or quota) filled up while storing a job's upload or work file: not the
    client's fault; the job was not created, retry once space is freed."""
    status, code = 507, "insufficient_storage"


class IngestInterrupted(PingjiaError):
    """The process validating an upload died (killed, out of memory); the job was not created."""
    status, code = 503, "ingest_interrupted"
