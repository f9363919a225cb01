"""Hostile inputs to ``POST /v1/jobs`` (an audit's reproducers): no upload freezes the API,
none is answered with a 500, none is silently half-read, none is left world-readable.

The freeze test runs the real app (fake sentiment) under uvicorn on a loopback port and
polls ``/healthz`` while the hostile upload is ingested.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import pickle
import signal
import stat
import threading
import time

import httpx
import pytest

from app.core.config import Settings
from app.core.errors import IngestInterrupted, InsufficientStorage, InvalidUpload, PingjiaError
from app.jobs import ingest, service, upload
from app.jobs.ingest_pool import IngestPool
from app.jobs.report import _DATE, parse_day
from tests.test_jobs_api import error_code, make_client, rules  # noqa: F401 - fixtures
from tests.test_jobs_crash import Service

HOSTILE_DATE = "2026-11-20" + " " * 100_000 + "x"  # the old date regex was quadratic on this


# --- 1. no upload freezes the API ---------------------------------------------------------
def test_parse_day_refuses_a_long_value_at_once():
    t = time.perf_counter()
    assert parse_day(HOSTILE_DATE) is None and parse_day(HOSTILE_DATE, allow_epoch=True) is None
    assert time.perf_counter() - t < 0.05
    t = time.perf_counter()  # and the pattern itself is linear (was about 70 s on this value)
    assert _DATE.fullmatch(HOSTILE_DATE) is None and _DATE.fullmatch(HOSTILE_DATE.replace(" ", "T")) is None
    assert time.perf_counter() - t < 0.25
    assert parse_day("  2026-11-20 10:00 +08:00 ") == "2026-11-20" and parse_day("2026/1/5\tZ") == "2026-01-05"


def _submit_while_polling(svc: Service, **request) -> tuple[httpx.Response, list[float]]:
    """POST /v1/jobs from a thread, polling /healthz until it is answered: (response, latencies)."""
    out = {}

    def post():
        with httpx.Client(base_url=svc.http.base_url, timeout=600) as c:
            out["response"] = c.post("/v1/jobs", **request)

    poster = threading.Thread(target=post)
    latencies = []
    with httpx.Client(base_url=svc.http.base_url, timeout=600) as c:
        poster.start()
        while poster.is_alive():
            t = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - t)
            time.sleep(0.02)
    poster.join()
    return out["response"], latencies


@pytest.mark.slow
def test_healthz_answers_while_hostile_uploads_are_ingested(tmp_path):
    n = 100_000  # about a second of ingest after the hostile row, so there is time to poll
    rows = [f"{i},发货太慢了,2026-11-{1 + i % 28:02d}" for i in range(1, n)]
    data = ("id,text,date\n" + f"0,发货太慢了,{HOSTILE_DATE}\n" + "\n".join(rows) + "\n").encode()
    items = [{"id": "0", "text": "发货太慢了", "date": HOSTILE_DATE}]
    items += [{"id": str(i), "text": "发货太慢了", "date": f"2026-11-{1 + i % 28:02d}"} for i in range(1, n)]
    svc = Service(tmp_path, "tests.test_jobs_crash:fake_app", factory=True, workers=1)
    try:
        svc.wait_ready()
        for request in ({"files": {"file": ("hostile.csv", data)}}, {"json": {"items": items}}):
            r, latencies = _submit_while_polling(svc, **request)
            assert r.status_code == 202 and r.json()["total"] == n, r.text
            svc.http.delete(f"/v1/jobs/{r.json()['job_id']}")  # leave the cores to the next submit
            print(f"healthz during submit: {len(latencies)} polls, max {max(latencies) * 1000:.0f} ms")
            assert len(latencies) >= 5 and max(latencies) < 0.5, latencies
    finally:
        svc.stop()


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_ingest_process_is_a_clear_error_and_the_next_submission_works():
    async def go():
        pool = IngestPool(1)
        with pytest.raises(IngestInterrupted) as e:
            await pool.run(_die)
        assert e.value.status == 503 and "not created" in e.value.message
        assert await pool.run(os.getpid) != os.getpid()

    asyncio.run(go())


def test_errors_keep_their_code_and_status_across_processes():
    for err in (InvalidUpload("line 3: x", code="invalid_csv"), InsufficientStorage("full")):
        back = pickle.loads(pickle.dumps(err))
        assert (type(back), back.message, back.code, back.status) == (type(err), err.message, err.code, err.status)
    assert pickle.loads(pickle.dumps(PingjiaError("x"))).code == "bad_request"


# --- 2. no 500s --------------------------------------------------------------------------
@pytest.mark.slow
def test_non_text_codecs_are_refused(make_client):
    c = make_client(workers=0)
    for enc in ["rot13", "base64", "zlib", "punycode", "hex", "bz2", "uu", "quopri", "idna"]:
        r = c.post("/v1/jobs", files={"file": ("x.csv", b"id,text\n1,abc\n")}, data={"encoding": enc})
        assert error_code(r, 422)["code"] == "bad_encoding", enc


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b'{"text": "ok"}\n{"text": ' + b"1" * 5000 + b"}\n", 422, "invalid_jsonl"),
        (b'{"text": "ok"}\n' + b"[" * 200_000 + b"\n", 422, "invalid_jsonl"),
    ],
)
def test_jsonl_beyond_the_parser_is_refused_naming_the_line(make_client, body, status, code):
    err = error_code(make_client(workers=0).post("/v1/jobs", files={"file": ("x.jsonl", body)}), status)
    assert err["code"] == code and err["message"].startswith("line 2")


def test_json_jobs_nested_too_deeply_or_naming_an_empty_column_are_refused(make_client, tmp_path):
    c = make_client(workers=0)
    deep = b'{"items": [{"text": "x", "meta": ' + b"[" * 200_000 + b"]" * 200_000 + b"}]}"
    assert (
        error_code(c.post("/v1/jobs", content=deep, headers={"content-type": "application/json"}), 400)["code"]
        == "invalid_json"
    )
    err = error_code(c.post("/v1/jobs", json={"items": [{"text": "x"}], "group_columns": [""]}), 422)
    assert err["code"] == "invalid_input" and "group_columns" in err["message"]
    assert not any((tmp_path / "jobs").iterdir())


class _FullDisk:
    """A file whose writes fail as on a full disk (or quota)."""

    def __init__(self, f, err: int):
        self.f, self.err = f, err

    def write(self, data):
        raise OSError(self.err, os.strerror(self.err))

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
@pytest.mark.parametrize("where", ["upload", "json body", "work file"])
def test_a_full_disk_is_507_and_leaves_nothing_behind(make_client, monkeypatch, tmp_path, where, err):
    module = service if where == "work file" else upload
    real = module.open_private
    monkeypatch.setattr(module, "open_private", lambda path: _FullDisk(real(path), err))
    c = make_client(workers=0, inline=True)  # in this process, so the patch applies
    if where == "json body":
        r = c.post("/v1/jobs", json={"items": [{"text": "好"}]})
    else:
        r = c.post("/v1/jobs", files={"file": ("x.csv", "id,text\n1,好\n".encode())})
    body = error_code(r, 507)
    assert body["code"] == "insufficient_storage" and "disk is full" in body["message"]
    assert not any((tmp_path / "jobs").iterdir())


# --- 3/4. nothing silently half-read ----------------------------------------------------------
def test_an_unclosed_csv_quote_or_a_huge_field_is_refused(make_client):
    c = make_client(workers=0)
    err = error_code(c.post("/v1/jobs", files={"file": ("x.csv", b'id,text\n1,"abc\n2,def\n')}), 422)
    assert err["code"] == "invalid_csv" and err["message"].startswith("line 2:")
    huge = b'id,text\n1,"' + b"x" * (2 * 1024 * 1024) + b'"\n'
    err = error_code(c.post("/v1/jobs", files={"file": ("x.csv", huge)}), 422)
    assert err["code"] == "field_too_long" and err["message"].startswith("line 2:")


def _multipart(data: bytes, closed: bool) -> bytes:
    head = b'--BB\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
    return head + data + (b"\r\n--BB--\r\n" if closed else b"")


def test_a_multipart_body_without_its_closing_boundary_is_refused(make_client, tmp_path):
    c = make_client(workers=0)
    headers = {"content-type": "multipart/form-data; boundary=BB"}
    err = error_code(c.post("/v1/jobs", content=_multipart(b"id,text\n1,a\n2,b", False), headers=headers), 400)
    assert err["code"] == "invalid_multipart" and "closing boundary" in err["message"]
    assert not any((tmp_path / "jobs").iterdir())
    r = c.post("/v1/jobs", content=_multipart(b"id,text\n1,a\n2,b", True), headers=headers)
    assert r.status_code == 202 and r.json()["total"] == 2


# --- 5. nothing world-readable ----------------------------------------------------------------
def test_job_folders_are_0700_and_their_files_0600_whatever_the_umask(make_client, monkeypatch, tmp_path):
    seen = {}

    def modes():
        (folder,) = (tmp_path / "jobs").iterdir()
        return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}

    def spy(real):
        def wrapper(*args, **kw):
            seen.update(modes())  # the spooled input, the work file being written
            return real(*args, **kw)

        return wrapper

    monkeypatch.setattr(service, "ingest_file", spy(service.ingest_file))
    monkeypatch.setattr(service, "ingest_items", spy(service.ingest_items))
    c = make_client(workers=0, inline=True)
    old = os.umask(0)
    try:
        job_id = c.post("/v1/jobs", files={"file": ("x.csv", b"id,text\n1,x\n")}).json()["job_id"]
        assert seen == {job_id: 0o700, "upload.raw": 0o600, "work.jsonl": 0o600}
        # the upload is kept, private, for the readable CSV export's original rows
        assert modes() == {job_id: 0o700, "upload.raw": 0o600, "work.jsonl": 0o600}
        service.discard(tmp_path / "jobs" / job_id)
        seen.clear()
        job_id = c.post("/v1/jobs", json={"items": [{"text": "x"}]}).json()["job_id"]
        assert seen == {job_id: 0o700, "body.json": 0o600, "work.jsonl": 0o600}
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "jobs").stat().st_mode) == 0o700


def test_the_work_file_of_a_local_score_is_private_too(tmp_path):
    settings = Settings(data_dir=tmp_path)
    job_id, folder = service.new_job_dir(settings)
    service.ingest_stream(folder, ingest.InputSpec(), io.BytesIO(b"id,text\n1,x\n"), "x.csv", 10)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / service.WORK_FILE).stat().st_mode) == 0o600
    assert json.loads((folder / service.WORK_FILE).read_text())[0] == "1"
