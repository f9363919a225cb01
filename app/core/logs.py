"""Log lines an operator can ship and search: one JSON object per line (or plain text), with
phone, ID-card and bank-card numbers masked in whatever a message or traceback carries.

``pingjia serve`` passes :func:`logging_config` to uvicorn, which applies it in every worker
process. The request log (``pingjia.access``, written by ``app.core.middleware.AccessLog``)
puts its fields in ``extra``; they are structured values (ids, a route template, numbers),
never the request's text, and are not masked (a hex request id can look like a phone number).

>>> mask_pii("客户电话13812345678，卡号6222021234567890123")
'客户电话138****5678，卡号622************0123'
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from app.core.pii_patterns import CARD, ID_CARD, PHONE, mask

ACCESS_LOGGER = "pingjia.access"
# The fields of a request's log line (its ``extra``), as ``middleware.AccessLog`` writes them.
ACCESS_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "key_id", "client")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}  # uvicorn's ANSI copy


def _mask(match) -> str:
    return mask(match.group(0), 3, 4)


# Every pattern needs 11 digits in a row (spaces or hyphens between them allowed): one scan
# for that spares the three patterns on almost every log line.
_ELEVEN_DIGITS = re.compile(r"\d(?:[\s-]?\d){10}")


def mask_pii(text: str) -> str:
    """``text`` with ID-card, bank-card and phone numbers masked (first 3 and last 4 digits kept).
    No checksums here: in a log a false alarm costs nothing, a leak does."""
    if not _ELEVEN_DIGITS.search(text):
        return text
    for pattern in (ID_CARD, CARD, PHONE):
        text = pattern.sub(_mask, text)
    return text


class PiiFilter(logging.Filter):
    """Masks the message and the traceback of every record a handler writes (attach it to
    the handler, so records of every logger that reach it are covered)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: the handler reports them as usual
            return True
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and k[0] != "_"}


_second: tuple[int, str] = (-1, "")  # the last whole second formatted (time.strftime is slow)


def _timestamp(created: float, msecs: float) -> str:
    global _second
    whole, cached = int(created), _second  # one read: another thread may replace it
    if cached[0] != whole:
        cached = _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601 with ms), level, logger, message, the
    record's ``extra`` fields, and ``exc`` for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": _timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for people reading a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if not extras:
            return text
        head, sep, tail = text.partition("\n")  # key=values on the first line, before a traceback
        return head + " " + " ".join(f"{k}={v}" for k, v in extras.items()) + sep + tail


def logging_config(fmt: str = "json", level: str = "info") -> dict:
    """A ``logging.config.dictConfig`` for the service (uvicorn's loggers included): one
    stderr handler with the PII filter. uvicorn's own access log is replaced by ours."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"pii": {"()": f"{__name__}.PiiFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["pii"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level.upper()},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
