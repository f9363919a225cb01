"""The error catalogue: every code the service can answer, with its HTTP status and meaning.

Clients switch on ``code``; its status never varies. Domain code raises ``PingjiaError`` (or a
subclass) with a catalogued code; one handler in ``app.main`` turns it (and request validation
errors) into ``{"error": {"code", "message"}}``. A code with no status is never an answer of its
own: it is reported in a batch item's slot, a job's result row, or a job's status. docs/errors.md
lists the catalogue, and a test keeps it, the README and the OpenAPI enum equal to it.
Nothing here is a 500 but ``internal_error`` (a bug): the 503s mean "retry", the 507 "free
disk space".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status: int | None  # None: reported in a slot, a result row or a job's status
    meaning: str


CATALOGUE: dict[str, ErrorCode] = {
    e.code: e
    for e in (
        # malformed requests
        ErrorCode("invalid_json", 400, "the body is not valid JSON"),
        ErrorCode("bad_request", 400, "the request is malformed"),
        ErrorCode("invalid_multipart", 400, "a malformed or truncated multipart upload"),
        ErrorCode("invalid_input", 422, "a field is missing, of the wrong type or out of range; the message names it"),
        ErrorCode("not_found", 404, "no such path or job"),
        ErrorCode("method_not_allowed", 405, "the path does not take this method"),
        ErrorCode("request_timeout", 408, "request headers or body were not sent in time"),
        ErrorCode("unsupported_media_type", 415, "send multipart/form-data or application/json"),
        ErrorCode("http_error", None, "any other HTTP-level refusal, with the status answered"),
        # texts and batches
        ErrorCode("empty_text", 422, "the text is empty or has no visible characters"),
        ErrorCode("invalid_text", 422, "the text holds characters that cannot be text (lone surrogates)"),
        ErrorCode("text_too_long", 413, "a text over PINGJIA_MAX_TEXT_CHARS"),
        ErrorCode(
            "body_too_large", 413, "a body over PINGJIA_MAX_BODY_BYTES, or an upload over PINGJIA_MAX_UPLOAD_BYTES"
        ),
        ErrorCode("too_many_items", 413, "a batch over PINGJIA_MAX_BATCH_ITEMS (or _CONVERSATIONS) items"),
        ErrorCode("batch_too_large", 413, "a batch over PINGJIA_MAX_BATCH_CHARS characters in all"),
        ErrorCode("empty_batch", 422, "a batch without items"),
        ErrorCode("invalid_item", None, "a batch item that is not an object with a text"),
        # conversations
        ErrorCode("empty_conversation", 422, "a conversation without turns"),
        ErrorCode("too_many_turns", 413, "a conversation over PINGJIA_MAX_TURNS turns"),
        ErrorCode("conversation_too_long", 413, "a conversation over PINGJIA_MAX_CONVERSATION_CHARS characters"),
        ErrorCode("invalid_time", 422, "a turn's time is neither ISO 8601 nor epoch seconds"),
        ErrorCode("turns_out_of_order", 422, "a turn's time is earlier than a previous turn's"),
        ErrorCode("unknown_profile", 422, "no QA profile of that name"),
        # job uploads
        ErrorCode("invalid_upload", 422, "the upload cannot be read as a job"),
        ErrorCode("missing_file", 422, "the multipart field 'file' is missing"),
        ErrorCode("invalid_kind", 422, "kind is neither reviews nor conversations"),
        ErrorCode("unsupported_format", 422, "conversations are accepted as JSONL only"),
        ErrorCode("empty_file", 422, "the upload has no rows (or no CSV header)"),
        ErrorCode("missing_column", 422, "the text, id, date or group column is not in the upload"),
        ErrorCode("invalid_column", 422, "a column cannot be the date or group column asked for"),
        ErrorCode("bad_encoding", 422, "bytes invalid in the encoding, or an encoding that is not a text encoding"),
        ErrorCode("invalid_jsonl", 422, "a JSONL line that is not JSON (or nested too deeply, or a huge integer)"),
        ErrorCode(
            "invalid_csv", 422, "malformed CSV: an unclosed quote, text after a closing quote, duplicate columns"
        ),
        ErrorCode("line_too_long", 422, "a line or CSV row over 16 MiB"),
        ErrorCode("field_too_long", 422, "a CSV field over 1 MiB"),
        ErrorCode("invalid_row", None, "a job row that is not an object or has the wrong number of CSV fields"),
        ErrorCode("invalid_conversation", None, "a job row without a turns list"),
        # jobs
        ErrorCode("conflict", 409, "the request conflicts with the current state"),
        ErrorCode("job_not_done", 409, "results are ready when the job has finished"),
        ErrorCode("job_finished", 409, "a finished job cannot be cancelled"),
        ErrorCode(
            "jobs_unavailable", 503, "the job database cannot be used; the message names the file and what to do"
        ),
        ErrorCode("ingest_interrupted", 503, "the process checking the upload died; the job was not created, retry"),
        ErrorCode("insufficient_storage", 507, "the disk filled up while storing the upload; the job was not created"),
        ErrorCode("scoring_failed", None, "a job failed: a chunk could not be scored (the message names its rows)"),
        ErrorCode("worker_crashed", None, "a job failed: its rows stopped a worker three times"),
        ErrorCode("disk_full", None, "a job's notice: workers wait for disk space; the job resumes by itself"),
        ErrorCode("disk_error", None, "a job's notice: workers wait out a disk I/O error; the job resumes by itself"),
        # service state and admin
        ErrorCode("not_ready", 503, "models are still loading; retry"),
        ErrorCode("busy", 503, "more analyses are waiting than PINGJIA_ANALYSIS_QUEUE; retry after Retry-After"),
        ErrorCode("unauthorized", 401, "a missing or wrong API key (PINGJIA_API_KEYS), admin or metrics token"),
        ErrorCode("rate_limited", 429, "over the key's request rate or hourly upload bytes; retry after Retry-After"),
        ErrorCode(
            "too_many_jobs", 429, "the key has PINGJIA_MAX_QUEUED_JOBS_PER_KEY jobs queued or running; retry later"
        ),
        ErrorCode("admin_disabled", 403, "admin is disabled (no PINGJIA_ADMIN_TOKEN)"),
        ErrorCode("reload_in_progress", 409, "another reload is running"),
        ErrorCode(
            "model_rejected", 409, "the new models failed to load or their smoke checks; the old ones keep serving"
        ),
        ErrorCode("internal_error", 500, "a bug: the answer names a request id, the log its traceback"),
    )
}


def status_of(code: str) -> int:
    """The HTTP status of a catalogued code (422 for codes that live in a slot or a row)."""
    return CATALOGUE[code].status or 422


class PingjiaError(Exception):
    """A refusal with a catalogued code; its HTTP status comes from the catalogue."""

    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or type(self).code
        if self.code not in CATALOGUE:
            raise ValueError(f"error code {self.code!r} is not in the catalogue (app/core/errors.py)")

    @property
    def status(self) -> int:
        return status_of(self.code)

    def __reduce__(self):
        """Pickle with ``code`` (jobs are ingested in another process; default exception
        pickling would rebuild from ``args`` alone and lose it)."""
        return _rebuild, (type(self), self.message, self.code)


def _rebuild(cls: type[PingjiaError], message: str, code: str) -> PingjiaError:
    return cls(message, code=code)


class InvalidInput(PingjiaError):
    code = "invalid_input"


class EmptyText(PingjiaError):
    code = "empty_text"


class TextTooLong(PingjiaError):
    code = "text_too_long"


class TooManyItems(PingjiaError):
    code = "too_many_items"


class BodyTooLarge(PingjiaError):
    code = "body_too_large"


class NotReady(PingjiaError):
    code = "not_ready"


class NotFound(PingjiaError):
    code = "not_found"


class Unauthorized(PingjiaError):
    code = "unauthorized"


class TooManyJobs(PingjiaError):
    """A key already has its maximum of queued and running jobs."""

    code = "too_many_jobs"
    retry_after = 10


class Conflict(PingjiaError):
    code = "conflict"


class InvalidUpload(PingjiaError):
    """A job upload refused at submit time; the message names the line or column."""

    code = "invalid_upload"


class JobsUnavailable(PingjiaError):
    """The job database cannot be used (damaged, unreadable, not writable): every /v1/jobs
    endpoint answers this, naming the file and what to do; the review API keeps serving."""

    code = "jobs_unavailable"


class InsufficientStorage(PingjiaError):
    """The disk (or quota) filled up while storing a job's upload or work file: not the
    client's fault; the job was not created, retry once space is freed."""

    code = "insufficient_storage"


class IngestInterrupted(PingjiaError):
    """The process validating an upload died (killed, out of memory); the job was not created."""

    code = "ingest_interrupted"
