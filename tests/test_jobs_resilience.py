"""Batch jobs against a hostile environment: a disk that fills mid-job (the job pauses, says
why, and finishes with every row once when space is back), a job database that is damaged,
emptied or read-only (the review API serves, /v1/jobs answers 503 ``jobs_unavailable``
naming the file), damage found at run time (503, or a download cut off — never a clean
short file) and the job workers' lower CPU priority."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing as mp
import os
import socket
import sqlite3
import subprocess
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.jobs import service
from app.jobs.ingest import InputSpec
from app.jobs.scoring import Scorers
from app.jobs.store import MAX_ATTEMPTS, SQLiteJobStore, open_store
from app.jobs.worker import JobRunner, Notices, ThreadRunner
from app.main import create_app
from tests.test_jobs_crash import fake_factory

FAST = (0.01, 0.05)  # the workers' disk back-off in these tests (1 s .. 60 s in service)
TEXTS = ["发货太慢了，客服态度很差", "质量很好，物流很快", "价格有点贵，但是质量不错"]


def items(n: int) -> list[dict]:
    return [{"id": f"r{i}", "text": TEXTS[i % 3]} for i in range(n)]


def until(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.01)
    raise AssertionError(f"{what}: not reached within {timeout}s")


class Disk:
    """A disk that is full after ``room`` more chunk commits (per process), until ``free()``:
    SQLite's ``max_page_count``, set on the committing connection, keeps the database file
    from growing (SQLITE_FULL). ``free()`` leaves a file, so forked workers see it too."""

    def __init__(self, monkeypatch, folder: Path, room: int):
        self.room, self.freed, self._lock = room, folder / "space-freed", threading.Lock()
        self.unlimited = sqlite3.connect(":memory:").execute("PRAGMA max_page_count").fetchone()[0]
        real = SQLiteJobStore._commit

        def commit(c, claim, *rest):
            with self._lock:  # one check-and-take: two workers may not both get the last room
                full = self.room <= 0 and not self.freed.exists()
                self.room -= 1
            c.execute(f"PRAGMA max_page_count = {1 if full else self.unlimited}")  # 1: no growth at all
            real(c, claim, *rest)

        monkeypatch.setattr(SQLiteJobStore, "_commit", staticmethod(commit))

    def free(self) -> None:
        self.freed.touch()


def job_app(data_dir: Path, fake_pipeline, *, workers: int = 2, chunk_rows: int = 20, scorers=None, **settings):
    settings = Settings(data_dir=data_dir, job_chunk_rows=chunk_rows, **settings)
    app = create_app(settings, pipeline=fake_pipeline)
    store = app.state.job_store = open_store(service.db_url(settings))
    app.state.job_runner = ThreadRunner(store, scorers or Scorers(fake_pipeline), workers=workers, backoff=FAST)
    return app


def result_ids(client, job_id: str) -> list[str]:
    r = client.get(f"/v1/jobs/{job_id}/results")
    assert r.status_code == 200, r.text
    return [json.loads(line)["id"] for line in r.text.splitlines()]


def attempts(db: Path) -> list[int]:
    with sqlite3.connect(db) as c:
        return [a for (a,) in c.execute("SELECT attempts FROM chunks ORDER BY chunk_index")]


# --- 1. a full disk ----------------------------------------------------------------------
def test_a_disk_that_fills_mid_job_pauses_it_and_it_finishes_once_space_is_back(tmp_path, fake_pipeline, monkeypatch):
    disk = Disk(monkeypatch, tmp_path, room=4)
    with TestClient(job_app(tmp_path, fake_pipeline)) as c:
        job_id = c.post("/v1/jobs", json={"items": items(400)}).json()["job_id"]
        paused = until(lambda: c.get("/readyz").json()["jobs"].get("notice"), what="a disk_full notice")
        assert paused["code"] == "disk_full" and "jobs.db" in paused["message"] and paused["since"]
        time.sleep(0.5)  # many retries (back-off 10..50 ms): none may fail the job or count as an attempt
        st = c.get(f"/v1/jobs/{job_id}").json()
        assert (st["status"], st["error"], st["done"]) == ("running", None, 80)
        assert max(attempts(tmp_path / "jobs.db")) == 1
        assert c.app.state.job_runner.notice()["code"] == "disk_full"  # what GET /v1/jobs/{id} shows
        disk.free()
        st = until(lambda: (s := c.get(f"/v1/jobs/{job_id}").json())["status"] == "done" and s)
        assert (st["done"], st["errors"]) == (400, 0)
        assert result_ids(c, job_id) == [f"r{i}" for i in range(400)]
        assert c.get("/readyz").json()["jobs"] == {"status": "ok"}
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("SELECT count(*), count(DISTINCT row_index) FROM results").fetchone() == (400, 400)


class NoSpace(Scorers):
    """Scorers whose chunks hit ENOSPC (a full scratch disk, say) while ``full`` is set."""

    def __init__(self, pipeline):
        super().__init__(pipeline)
        self.full, self.calls = False, 0
        review = self.reviews

        class Scorer:
            def score(inner, start_row, rows, plan):
                self.calls += 1
                if self.calls == 3:
                    self.full = True
                if self.full:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return review.score(start_row, rows, plan)

        self.reviews = Scorer()


def test_enospc_while_scoring_is_waited_out_not_blamed_on_the_input(tmp_path, fake_pipeline):
    scorers = NoSpace(fake_pipeline)
    with TestClient(job_app(tmp_path, fake_pipeline, workers=1, scorers=scorers)) as c:
        job_id = c.post("/v1/jobs", json={"items": items(200)}).json()["job_id"]
        until(lambda: c.get("/readyz").json()["jobs"]["status"] == "paused", what="paused")
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
        scorers.full = False
        st = until(lambda: (s := c.get(f"/v1/jobs/{job_id}").json())["status"] in ("done", "failed") and s)
        assert (st["status"], st["done"], st["error"]) == ("done", 200, None)
        assert result_ids(c, job_id) == [f"r{i}" for i in range(200)]


def test_restarts_while_the_disk_is_full_never_count_as_poison_attempts(tmp_path, fake_pipeline, monkeypatch):
    disk = Disk(monkeypatch, tmp_path, room=0)
    settings = Settings(data_dir=tmp_path, job_chunk_rows=20)
    store = open_store(service.db_url(settings))
    job_id, folder = service.new_job_dir(settings)
    service.submit_items(store, settings, job_id, folder, InputSpec(), items(60))
    for _ in range(MAX_ATTEMPTS + 2):
        runner = ThreadRunner(store, Scorers(fake_pipeline), backoff=FAST)
        runner.start()
        until(runner.notice, what="the worker waiting for the disk")
        runner.stop()  # the waiting worker hands its chunk back, attempt uncounted
        assert store.get_job(job_id).status in ("queued", "running")
    assert attempts(tmp_path / "jobs.db") == [0, 0, 0]
    disk.free()
    runner = ThreadRunner(store, Scorers(fake_pipeline), backoff=FAST)
    runner.start()
    try:
        until(lambda: store.get_job(job_id).status == "done", what="done")
    finally:
        runner.stop()
    assert [r for r, _ in store.iter_results(store.get_job(job_id).jid)] == list(range(60))
    store.close()


@pytest.mark.slow  # a forked worker process
def test_forked_workers_wait_for_the_disk_and_the_service_process_shows_why(tmp_path, fake_pipeline, monkeypatch):
    disk = Disk(monkeypatch, tmp_path, room=3)  # inherited by the forked worker
    settings = Settings(data_dir=tmp_path, job_workers=1, job_chunk_rows=20)
    url = service.db_url(settings)
    store = open_store(url)
    job_id, folder = service.new_job_dir(settings)
    service.submit_items(store, settings, job_id, folder, InputSpec(), items(200))
    runner = JobRunner(url, settings, inherit=Scorers(fake_pipeline))
    runner.start()
    try:
        notice = until(runner.notice, what="the worker's disk_full notice, in this process")
        assert notice["code"] == "disk_full" and url in notice["message"]
        job = store.get_job(job_id)
        assert (job.status, job.done) == ("running", 60) and runner.deaths == 0
        disk.free()
        until(lambda: store.get_job(job_id).status == "done", what="done")
        assert runner.notice() is None and runner.deaths == 0
    finally:
        runner.stop()
    assert [r for r, _ in store.iter_results(store.get_job(job_id).jid)] == list(range(200))
    assert max(attempts(tmp_path / "jobs.db")) == 1
    store.close()


@pytest.mark.slow
def test_a_spawned_worker_reports_its_wait_to_the_service_process():
    notices = Notices(2, "var/jobs.db")
    proc = mp.get_context("spawn").Process(target=notices.put, args=(1, "disk_full"))
    proc.start()
    proc.join(60)
    notice = notices.current()
    assert proc.exitcode == 0 and notice["code"] == "disk_full" and "var/jobs.db" in notice["message"]
    notices.put(1, None)
    assert notices.current() is None


# --- 2. a job database that cannot be used at start-up ------------------------------------
def finished_job(data_dir: Path, fake_pipeline, n: int = 600, chunk_rows: int = 50) -> str:
    """A done job in a closed (checkpointed: no -wal file) job database."""
    settings = Settings(data_dir=data_dir, job_chunk_rows=chunk_rows)
    store = open_store(service.db_url(settings))
    job_id, folder = service.new_job_dir(settings)
    service.submit_items(store, settings, job_id, folder, InputSpec(), items(n))
    runner = ThreadRunner(store, Scorers(fake_pipeline), workers=2)
    runner.start()
    try:
        until(lambda: store.get_job(job_id).status == "done", what="done")
    finally:
        runner.stop()
        store.close()
    assert not (data_dir / "jobs.db-wal").exists()
    return job_id


def damage(db: Path, table: str, pick=slice(None)) -> None:
    """Overwrite leaf pages of ``table`` (b-tree order; ``pick`` of them) with zeros."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = [
        p
        for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path", (table,)
        )
    ]
    conn.close()
    chosen = pages[pick] if isinstance(pick, slice) else [pages[pick]]
    with open(db, "r+b") as f:
        for page in chosen:
            f.seek((page - 1) * size)
            f.write(b"\0" * size)


@contextmanager
def read_only(folder: Path):
    """``folder`` made read-only (root ignores modes, so then the immutable attribute)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _header(db: Path):
    with open(db, "r+b") as f:
        f.write(b"definitely not SQLite" * 4)


BREAKAGES = {
    "corrupt_header": _header,
    "truncated": lambda db: os.truncate(db, db.stat().st_size // 2),
    "damaged_mid_file": lambda db: damage(db, "results", slice(10, 14)),
    "emptied": lambda db: os.truncate(db, 0),
    "deleted": lambda db: db.unlink(),
}


@pytest.mark.parametrize("breakage", [*BREAKAGES, "read_only_data_dir"])
def test_a_bad_job_database_leaves_the_review_api_serving(tmp_path, fake_pipeline, caplog, breakage):
    job_id = finished_job(tmp_path, fake_pipeline)
    db = tmp_path / "jobs.db"
    if breakage != "read_only_data_dir":
        BREAKAGES[breakage](db)
    before = db.read_bytes() if db.exists() else None
    app = create_app(Settings(data_dir=tmp_path, job_workers=1), pipeline=fake_pipeline)
    with read_only(tmp_path) if breakage == "read_only_data_dir" else nullcontext():
        with caplog.at_level(logging.ERROR, logger="pingjia.jobs"), TestClient(app) as c:
            assert c.post("/v1/analyze", json={"text": TEXTS[0]}).status_code == 200
            ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            jobs = ready.json()["jobs"]
            assert jobs["status"] == "unavailable" and str(db) in jobs["message"], jobs
            for method, path in [("get", ""), ("get", "/results"), ("get", "/summary"), ("delete", "")]:
                r = getattr(c, method)(f"/v1/jobs/{job_id}{path}")
                assert r.status_code == 503, r.text
                assert r.json()["error"] == {"code": "jobs_unavailable", "message": jobs["message"]}
            r = c.post("/v1/jobs", json={"items": items(3)})
            assert r.status_code == 503 and r.json()["error"]["code"] == "jobs_unavailable"
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and str(db) in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    after = db.read_bytes() if db.exists() else None
    assert (after and after[100:]) == (before and before[100:])  # left as found (bar the header's counters)


def test_a_new_database_without_job_folders_is_a_fresh_start(tmp_path, fake_pipeline):
    (tmp_path / "jobs.db").touch()
    with TestClient(job_app(tmp_path, fake_pipeline)) as c:
        assert c.get("/readyz").json()["jobs"] == {"status": "ok"}
        job_id = c.post("/v1/jobs", json={"items": items(30)}).json()["job_id"]
        until(lambda: c.get(f"/v1/jobs/{job_id}").json()["status"] == "done", what="done")


# --- 2b. damage found at run time ---------------------------------------------------------
def test_damage_found_at_run_time_is_a_503_not_a_500(tmp_path, fake_pipeline):
    job_id = finished_job(tmp_path, fake_pipeline)
    db = tmp_path / "jobs.db"
    app = create_app(Settings(data_dir=tmp_path, job_workers=1), pipeline=fake_pipeline)
    with TestClient(app) as c:
        assert c.get("/readyz").json()["jobs"] == {"status": "ok"}
        damage(db, "chunk_reports")
        damage(db, "results", slice(0, 2))
        app.state.job_store.close()  # no connection may answer from pages it cached before
        for path in ("/summary", "/results", "/results?format=csv"):
            r = c.get(f"/v1/jobs/{job_id}{path}")
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "jobs_unavailable" and str(db) in err["message"] and "damaged" in err["message"]
        assert c.post("/v1/analyze", json={"text": TEXTS[1]}).status_code == 200


def test_a_report_row_that_does_not_decode_is_a_503_not_a_500(tmp_path, fake_pipeline):
    job_id = finished_job(tmp_path, fake_pipeline)
    with sqlite3.connect(tmp_path / "jobs.db") as conn:  # the page is sound; its bytes are not
        assert conn.execute("UPDATE chunk_reports SET terms = x'789c00'").rowcount >= 1
    app = create_app(Settings(data_dir=tmp_path, job_workers=1), pipeline=fake_pipeline)
    with TestClient(app) as c:
        r = c.get(f"/v1/jobs/{job_id}/summary")
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "jobs_unavailable" and "chunk_reports" in err["message"] and "damaged" in err["message"]
        assert c.get(f"/v1/jobs/{job_id}/results").status_code == 200  # the results themselves are sound


@contextmanager
def served(app):
    """``app`` on a real HTTP server (uvicorn, in a thread): how a cut-off download looks."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        until(lambda: server.started, what="server started")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.mark.parametrize("harm", ["damaged_page", "rows_missing"])
def test_trouble_in_the_middle_of_a_download_cuts_it_off(tmp_path, fake_pipeline, harm):
    n = 2600  # more than the first batch (2000 rows), which is read before anything is sent
    job_id = finished_job(tmp_path, fake_pipeline, n=n, chunk_rows=500)
    db = tmp_path / "jobs.db"
    app = create_app(Settings(data_dir=tmp_path, job_workers=1), pipeline=fake_pipeline)
    with served(app) as base:
        if harm == "damaged_page":
            damage(db, "results", -3)
        else:  # SQLite would not notice; the count of committed rows does
            with sqlite3.connect(db) as conn:
                conn.execute("DELETE FROM results WHERE row_index >= 2300")
        app.state.job_store.close()
        for fmt in ("jsonl", "csv"):
            got = bytearray()
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                with httpx.stream("GET", f"{base}/v1/jobs/{job_id}/results?format={fmt}", timeout=30) as r:
                    assert r.status_code == 200  # the headers went out before the trouble was met
                    for chunk in r.iter_bytes():
                        got += chunk
            assert 0 < got.count(b"\n") < n


# --- 3. the job workers' priority -----------------------------------------------------------
def niceness(pid: int) -> set[int]:
    """The nice value of every thread of ``pid`` (Linux keeps it per thread)."""
    out = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            out.add(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError):
            pass
    return out


@pytest.mark.slow
@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_job_workers_run_at_the_configured_niceness(tmp_path, fake_pipeline, start):
    settings = Settings(data_dir=tmp_path, job_workers=1, job_worker_nice=7, job_chunk_rows=50)
    url = service.db_url(settings)
    store = open_store(url)
    job_id, folder = service.new_job_dir(settings)
    service.submit_items(store, settings, job_id, folder, InputSpec(), items(100))
    store.close()
    runner = JobRunner(url, settings, factory=fake_factory, inherit=Scorers(fake_pipeline) if start == "fork" else None)
    runner.start()
    try:
        proc = until(lambda: next((p for _, p, _ in runner.procs.values() if p.pid), None), what="a worker")
        base = os.getpriority(os.PRIO_PROCESS, 0)
        want = {min(19, base + 7)}
        until(lambda: niceness(proc.pid) == want, timeout=60, what=f"worker threads at nice {want}")
        check = open_store(url)
        until(lambda: check.get_job(job_id).status == "done", timeout=60, what="done")
        check.close()
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the service itself is not lowered
    finally:
        runner.stop()
