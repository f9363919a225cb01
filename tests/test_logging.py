"""Logs: one access line per request (ids, route template, status, duration, key; never the
text), JSON lines, and phone / ID-card / bank-card numbers masked in whatever is logged."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.logs import ACCESS_FIELDS, JsonFormatter, PiiFilter, TextFormatter, logging_config, mask_pii
from app.main import create_app
from tests.conftest import ROOT, clean_env

PHONE, ID_NO, CARD = "13812345678", "11010519491231002X", "6222021234567890123"


@pytest.mark.parametrize(
    "text, gone, kept",
    [
        (f"客户电话{PHONE}", PHONE, "138****5678"),
        ("手机 +86 138-1234-5678 联系", "1234", "+86 1**-****-5678"),
        (f"身份证{ID_NO}", ID_NO, "110***********002X"),
        (f"卡号{CARD}已绑定", CARD, "622************0123"),
        ("卡号 6222 0212 3456 7890 123", "0212 3456", "622* **** **** ***0 123"),
    ],
)
def test_personal_numbers_are_masked(text, gone, kept):
    masked = mask_pii(text)
    assert gone not in masked and kept in masked, masked


@pytest.mark.parametrize("text", ["order 20261205 took 13.5 ms", "请求 a1b2c3 完成", "status 200 in 12345 ms", ""])
def test_other_text_is_left_alone(text):
    assert mask_pii(text) == text


def capture(formatter=None, name: str | None = None) -> tuple[logging.Logger, io.StringIO]:
    """The logger ``name`` (else a fresh one) writing INFO and up to the stream only, through
    the PII filter; the caller restores a named logger's handlers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or JsonFormatter())
    handler.addFilter(PiiFilter())
    logger = logging.getLogger(name or f"test.pingjia.{id(stream)}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)  # setLevel, not .level: it clears the isEnabledFor cache
    return logger, stream


def test_the_filter_masks_arguments_and_tracebacks():
    logger, stream = capture()
    logger.info("customer %s called about card %s", PHONE, CARD)
    try:
        raise ValueError(f"bad row: 身份证 {ID_NO}")
    except ValueError:
        logger.exception("row failed")
    out = stream.getvalue()
    assert PHONE not in out and CARD not in out and ID_NO not in out
    first, second = (json.loads(line) for line in out.splitlines() if line.startswith("{"))
    assert first["message"] == "customer 138****5678 called about card 622************0123"
    assert second["level"] == "error" and "ValueError" in second["exc"] and "110***********002X" in second["exc"]


def test_json_lines_carry_extras_and_text_lines_too():
    logger, stream = capture()
    logger.warning("hello %d", 3, extra={"request_id": "abc", "status": 200})
    line = json.loads(stream.getvalue())
    assert {k: line[k] for k in ("level", "logger", "message", "request_id", "status")} == {
        "level": "warning",
        "logger": logger.name,
        "message": "hello 3",
        "request_id": "abc",
        "status": 200,
    }
    assert line["ts"].endswith("Z")
    logger, stream = capture(TextFormatter())
    logger.info("hi", extra={"route": "/v1/jobs/{job_id}"})
    assert stream.getvalue().rstrip().endswith("INFO " + logger.name + " hi route=/v1/jobs/{job_id}")


@pytest.fixture
def access_lines():
    logger = logging.getLogger("pingjia.access")
    old = logger.handlers[:], logger.level, logger.propagate
    _, stream = capture(name="pingjia.access")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.handlers, logger.propagate = old[0], old[2]
    logger.setLevel(old[1])


def test_one_access_line_per_request_without_the_text(access_lines, fake_pipeline, tmp_path):
    key = "alice-key-0123456789abcdef"
    app = create_app(Settings(data_dir=tmp_path, api_keys=f"alice:{key}"), pipeline=fake_pipeline)
    with TestClient(app) as c:
        ok = c.post(
            "/v1/analyze",
            json={"text": f"我的电话{PHONE}，发货太慢"},
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-1"},
        )
        refused = c.get("/v1/jobs/" + "a" * 32)
        c.get("/healthz")
    lines = access_lines()
    assert len(lines) == 3
    first, second, third = lines
    assert set(ACCESS_FIELDS) <= set(first)
    assert first["request_id"] == "req-1" == ok.headers["x-request-id"]
    assert (first["method"], first["route"], first["status"], first["key_id"]) == ("POST", "/v1/analyze", 200, "alice")
    assert first["client"] == "testclient" and first["duration_ms"] > 0 and first["logger"] == "pingjia.access"
    assert second["request_id"] == refused.headers["x-request-id"] and second["status"] == 401
    assert second["key_id"] is None and "a" * 32 not in json.dumps(second)  # no raw path
    assert third["route"] == "/healthz"
    everything = json.dumps(lines, ensure_ascii=False)
    assert "发货太慢" not in everything and PHONE not in everything


def test_logging_config_masks_every_logger_in_a_fresh_process():
    code = (
        "import logging, logging.config\n"
        "from app.core.logs import logging_config\n"
        "logging.config.dictConfig(logging_config('json', 'info'))\n"
        f"logging.getLogger('uvicorn.error').info('client sent {PHONE}')\n"
        f"logging.getLogger('pingjia.jobs').warning('row with %s', '{CARD}')\n"
        "logging.getLogger('uvicorn.access').info('GET /v1/jobs/secret 200')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert [ln["logger"] for ln in lines] == ["uvicorn.error", "pingjia.jobs"], out.stderr  # no uvicorn access
    assert lines[0]["message"] == "client sent 138****5678" and CARD not in out.stderr


def test_serve_configures_logging_from_the_settings(monkeypatch):
    import app.serve as serve_module

    seen = {}
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda *a, **kw: seen.update(kw))
    monkeypatch.setenv("PINGJIA_LOG_FORMAT", "text")
    serve_module.serve("127.0.0.1", 0)
    assert seen["access_log"] is False
    assert seen["log_config"] == logging_config("text", "info")
    assert seen["log_config"]["formatters"]["default"]["()"].endswith("TextFormatter")
