"""Real crashes: ``uvicorn app.main:app`` as a subprocess on a loopback port, SIGKILL of the
whole process group (service + job workers) in the middle of a job, restart on the same data
dir, and every row id exactly once in the results.

``test_crash_*_real_pipeline`` runs the served app with the real models and the default
(forked) workers (skipped until ``models/current.json`` exists). ``test_crash_*_fake_sentiment``
runs the same scenario, with forked and with spawned workers, on an app factory whose workers
use the fake sentiment model, so the mechanics are exercised on any checkout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, clean_env, needs_models

pytestmark = pytest.mark.slow  # real service processes, killed mid-job

TEMPLATES = [
    "发货太慢了，等了{n}天才到",
    "客服态度很差，问了{n}次都没人回复",
    "质量很好，用了{n}天没问题",
    "物流很快，包装完好，第{n}次回购了",
    "价格有点贵，但是质量不错",
    "东西与描述不符，颜色差太多",
    "退货退款处理了{n}天还没结果",
    "很满意，下次还来",
    "味道一般，分量太少",
    "屏幕很清晰，运行流畅",
]


def reviews_csv(n: int, seed: int = 5) -> bytes:
    rnd = random.Random(seed)
    lines = ["review_id,content,channel,date"]
    for i in range(n):
        text = rnd.choice(TEMPLATES).format(n=rnd.randint(2, 9))
        lines.append(f"r{i},{text},{rnd.choice(['app', 'web', 'mini'])},2026-11-{1 + i % 14:02d}")
    return ("\n".join(lines) + "\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """uvicorn in its own process group, so one killpg takes the workers down with it."""

    def __init__(
        self,
        data_dir: Path,
        target: str,
        factory: bool = False,
        workers: int = 2,
        chunk_rows: int = 100,
        start: str = "spawn",
        extra_env: dict[str, str] | None = None,
    ):
        self.data_dir, self.port = data_dir, free_port()
        env = clean_env(
            PINGJIA_DATA_DIR=str(data_dir),
            PINGJIA_JOB_WORKERS=str(workers),
            PINGJIA_JOB_CHUNK_ROWS=str(chunk_rows),
            PINGJIA_JOB_WORKER_START=start,
            PYTHONPATH=str(ROOT),
            **(extra_env or {}),
        )
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *(["--factory"] if factory else []),
        ]
        self.log = open(data_dir / f"service-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("service did not get ready:\n" + self.tail())

    def worker_pids(self) -> list[int]:
        out = []
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"resource_tracker" not in cmd:  # spawned (spawn_main) or forked workers
                    out.append(int(pid))
        return out

    def kill_group(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.http.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything left in the group
        except ProcessLookupError:
            pass
        self.http.close()
        self.log.close()

    def tail(self) -> str:
        self.log.flush()
        return (self.data_dir / f"service-{self.port}.log").read_text(errors="replace")[-3000:]


def niceness(pid: int) -> int:
    """The nice value of a process (field 19 of /proc/<pid>/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def crash_and_resume(tmp_path: Path, target: str, factory: bool, rows: int, start: str = "spawn") -> None:
    a = Service(tmp_path, target, factory, start=start)
    try:
        a.wait_ready()
        r = a.http.post(
            "/v1/jobs",
            files={"file": ("r.csv", reviews_csv(rows))},
            data={"text_column": "content", "id_column": "review_id"},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        while True:  # wait until the job is part-way, then kill everything
            st = a.http.get(f"/v1/jobs/{job_id}").json()
            assert st["status"] in ("queued", "running"), (st, a.tail())
            if st["done"] >= 200:
                break
            time.sleep(0.01)
        assert a.worker_pids(), "no worker process found"
        a.kill_group()
        time.sleep(0.2)
        assert not group_alive(a.proc.pid), "something in the service's process group survived SIGKILL"
    finally:
        a.stop()
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        done, status = db.execute("SELECT done, status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert status == "running" and 0 < done < rows, (status, done)

    b = Service(tmp_path, target, factory, start=start)
    try:
        b.wait_ready()
        deadline = time.monotonic() + 120
        while (st := b.http.get(f"/v1/jobs/{job_id}").json())["status"] != "done":
            assert st["status"] == "running" and time.monotonic() < deadline, (st, b.tail())
            time.sleep(0.1)
        assert (st["done"], st["total"], st["errors"]) == (rows, rows, 0)
        lines = b.http.get(f"/v1/jobs/{job_id}/results").text.splitlines()
        ids = [json.loads(line)["id"] for line in lines]
        assert len(ids) == rows and len(set(ids)) == rows, "a row is missing or repeated"
        assert ids == [f"r{i}" for i in range(rows)]
        assert b.http.get(f"/v1/jobs/{job_id}/summary").json()["totals"]["rows"] == rows
    finally:
        b.stop()
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        n, distinct = db.execute("SELECT count(*), count(DISTINCT row_index) FROM results").fetchone()
    assert n == distinct == rows


@needs_models
def test_crash_whole_service_mid_job_then_resume_real_pipeline(tmp_path):
    crash_and_resume(tmp_path, "app.main:app", factory=False, rows=4000, start="fork")  # the default


@pytest.mark.parametrize("start", ["spawn", "fork"])
def test_crash_whole_service_mid_job_then_resume_fake_sentiment(tmp_path, start):
    crash_and_resume(tmp_path, "tests.test_jobs_crash:fake_app", factory=True, rows=3000, start=start)


def test_a_killed_worker_is_replaced_and_its_chunk_redone(tmp_path):
    svc = Service(tmp_path, "tests.test_jobs_crash:fake_app", factory=True, workers=1, chunk_rows=50)
    try:
        svc.wait_ready()
        r = svc.http.post(
            "/v1/jobs",
            files={"file": ("r.csv", reviews_csv(3000))},
            data={"text_column": "content", "id_column": "review_id"},
        )
        job_id = r.json()["job_id"]
        while svc.http.get(f"/v1/jobs/{job_id}").json()["done"] < 100:
            time.sleep(0.01)
        (pid,) = svc.worker_pids()
        assert niceness(pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)  # job_worker_nice default
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (st := svc.http.get(f"/v1/jobs/{job_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, (st, svc.tail())
            time.sleep(0.1)
        ids = [json.loads(x)["id"] for x in svc.http.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
        assert ids == [f"r{i}" for i in range(3000)]
        assert svc.worker_pids() and pid not in svc.worker_pids()
        assert "chunk(s) requeued" in svc.tail()
    finally:
        svc.stop()


@needs_models
def test_admin_reload_restarts_job_workers_and_the_job_still_completes(tmp_path):
    """A reload mid-job: the worker commits its chunk, exits and is replaced (so batch jobs move
    to the new models too); every row still comes back exactly once."""
    n = 40000  # long enough to be still running when the reload (which loads real models) returns
    svc = Service(
        tmp_path,
        "tests.test_jobs_crash:fake_app",
        factory=True,
        workers=1,
        chunk_rows=50,
        extra_env={"PINGJIA_ADMIN_TOKEN": "t0ken"},
    )
    try:
        svc.wait_ready()
        r = svc.http.post(
            "/v1/jobs",
            files={"file": ("r.csv", reviews_csv(n))},
            data={"text_column": "content", "id_column": "review_id"},
        )
        job_id = r.json()["job_id"]
        while svc.http.get(f"/v1/jobs/{job_id}").json()["done"] < 100:
            time.sleep(0.01)
        (pid,) = svc.worker_pids()
        r = svc.http.post("/v1/admin/reload", headers={"Authorization": "Bearer t0ken"})
        assert r.status_code == 200, r.text
        assert r.json()["job_workers_restarted"] == 1
        assert svc.http.get(f"/v1/jobs/{job_id}").json()["status"] != "done"  # really mid-job
        deadline = time.monotonic() + 120
        while (st := svc.http.get(f"/v1/jobs/{job_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, (st, svc.tail())
            time.sleep(0.1)
        ids = [json.loads(x)["id"] for x in svc.http.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
        assert ids == [f"r{i}" for i in range(n)]
        while pid in svc.worker_pids():  # reaped by the supervisor within a second or so
            assert time.monotonic() < deadline, (pid, svc.worker_pids(), svc.tail())
            time.sleep(0.1)
        assert svc.tail().count("ready (pid") >= 2  # a replacement worker took over
    finally:
        svc.stop()


# --- the fake-sentiment service used above (imported by uvicorn and by the spawned workers) ---
def _fake_pipeline():
    from app.pipeline.aspects import LexiconAspectScorer
    from app.pipeline.engine import Pipeline, build_segmenter
    from app.pipeline.lexicon import load_lexicon
    from tests.conftest import FakeSentiment

    lexicon = load_lexicon(ROOT / "lexicons")
    return Pipeline(
        lexicon=lexicon,
        segmenter=build_segmenter(lexicon),
        sentiment=FakeSentiment(),
        aspects=LexiconAspectScorer(lexicon.version),
    )


def fake_factory(settings):
    """Worker-process scorers over the fake pipeline (picklable: a module-level function)."""
    from app.jobs.scoring import Scorers

    return Scorers(_fake_pipeline())


def fake_app():
    """``uvicorn --factory tests.test_jobs_crash:fake_app``: the real app and job runner,
    with the fake sentiment model in the service and in its worker processes."""
    from app.core.config import Settings
    from app.jobs.service import db_url, prune_jobs
    from app.jobs.worker import JobRunner
    from app.main import create_app

    settings = Settings()
    app = create_app(settings, pipeline=_fake_pipeline())
    if settings.job_worker_start == "spawn":  # fork: the app's own runner forks from the fake pipeline
        url = db_url(settings)
        app.state.job_runner = JobRunner(url, settings, factory=fake_factory, prune=lambda: prune_jobs(url, settings))
    return app
