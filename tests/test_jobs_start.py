"""Starting the job runner from plain settings, a store, a pipeline and rules — no FastAPI app:
the jobs layer never reads ``app.state`` (``app.main`` wires what ``start_jobs`` returns)."""

from __future__ import annotations

import threading

import pytest

from app.conversations import load_conversation_rules
from app.core.config import Settings
from app.jobs import service
from app.jobs.scoring import ConversationScorer, Scorers
from app.jobs.store import open_store
from app.jobs.worker import JobRunner, ThreadRunner, fork_scorers, start_jobs, unavailable_message
from tests.conftest import ROOT


def settings_for(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path, job_workers=1, lexicon_dir=ROOT / "lexicons", **kw)


def test_start_jobs_opens_checks_and_starts_a_runner(tmp_path):
    settings = settings_for(tmp_path, job_worker_start="spawn")
    store, runner = start_jobs(settings)
    try:
        assert isinstance(runner, JobRunner) and runner.active and runner.inherit is None
        assert store.get_job("nope") is None
    finally:
        runner.stop()
        store.close()
    assert (tmp_path / "jobs.db").is_file()


def test_a_given_store_and_runner_are_used_as_given(tmp_path, fake_pipeline):
    settings = settings_for(tmp_path)
    given = open_store(service.db_url(settings))
    threads = ThreadRunner(given, Scorers(fake_pipeline))
    store, runner = start_jobs(settings, store=given, runner=threads)
    try:
        assert (store, runner) == (given, threads) and threads.active
    finally:
        runner.stop()
        store.close()


def test_an_unusable_database_raises_and_the_message_names_the_file(tmp_path):
    db = tmp_path / "jobs.db"
    db.write_bytes(b"definitely not SQLite" * 200)
    settings = settings_for(tmp_path)
    with pytest.raises(Exception) as caught:
        start_jobs(settings)
    message = unavailable_message(settings, caught.value)
    assert str(db) in message and message.endswith("the review API serves")


def test_workers_fork_only_when_asked_and_single_threaded(tmp_path, fake_pipeline, monkeypatch):
    rules = load_conversation_rules(ROOT / "lexicons")
    assert fork_scorers(settings_for(tmp_path, job_worker_start="spawn"), fake_pipeline, rules) is None
    fork = settings_for(tmp_path, job_worker_start="fork")
    assert fork_scorers(fork, None, rules) is None  # nothing loaded to share
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert fork_scorers(fork, fake_pipeline, rules) is None  # forking a threaded process is unsafe
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    scorers = fork_scorers(fork, fake_pipeline, rules)
    assert scorers.reviews.pipeline is fake_pipeline
    conv = scorers.for_kind("conversations")
    assert isinstance(conv, ConversationScorer) and conv.rules is rules and conv.pipeline is fake_pipeline
    with pytest.raises(LookupError):
        fork_scorers(fork, fake_pipeline, None).for_kind("conversations")


def test_idle_workers_wake_when_a_job_is_submitted():
    """A worker process waiting for work (SignalStop.idle) returns when the runner rings the
    wake-up pipe (notify, on each submission), not at its next poll; unheard rings only make
    the next wait short, and a worker stopped meanwhile still sees it is stopped."""
    import multiprocessing as mp
    import signal
    import time

    from app.jobs.worker import SignalStop, Wakeup

    wakeup = Wakeup(mp.get_context("fork"))
    before = signal.getsignal(signal.SIGTERM)
    try:
        stop = SignalStop(wakeup.reader)
        t = time.monotonic()
        assert stop.idle(0.2) is False and time.monotonic() - t >= 0.19  # nothing rang: the whole poll
        threading.Timer(0.1, wakeup.ring, args=(1,)).start()  # a service with one worker
        t = time.monotonic()
        stop.idle(30)
        assert time.monotonic() - t < 5  # woken by the ring, not after 30 s
        wakeup.ring(1)
        wakeup.ring(1)  # rung while busy: the next wait returns at once
        t = time.monotonic()
        stop.idle(30)
        assert time.monotonic() - t < 5
        t = time.monotonic()
        stop.idle(0.2)
        assert time.monotonic() - t >= 0.19  # one byte for one worker: nothing left over
        for _ in range(20_000):  # more rings than the pipe holds: ring never blocks or raises
            wakeup.ring(8)
        stop.set()
        assert stop.idle(30) is True
        assert SignalStop().idle(0.05) is False  # without a pipe: a plain wait
    finally:
        signal.signal(signal.SIGTERM, before)


def test_one_ring_wakes_every_idle_worker():
    """Two workers idle on the pipe, one submission: both go and claim at once. (Each reads one
    byte: when the first drained the pipe, the other's select found nothing and slept out its
    poll, so a job's second worker started ~0.17 s late.) Rings while nobody listens top the
    pipe up to one byte per worker, not one per ring."""
    import multiprocessing as mp
    import signal
    import time

    from app.jobs.worker import SignalStop, Wakeup

    wakeup = Wakeup(mp.get_context("fork"))
    before = signal.getsignal(signal.SIGTERM)
    try:
        stops = [SignalStop(wakeup.reader), SignalStop(wakeup.reader)]
        woke: list[float] = []
        for _ in range(5):
            woke.clear()
            waiters = [threading.Thread(target=lambda s=s: (s.idle(10), woke.append(time.monotonic()))) for s in stops]
            for w in waiters:
                w.start()
            time.sleep(0.1)  # both are in select
            t = time.monotonic()
            wakeup.ring(2)
            for w in waiters:
                w.join(15)
            assert len(woke) == 2 and max(woke) - t < 1, [round(x - t, 3) for x in woke]
        for _ in range(50):
            wakeup.ring(2)  # submissions while both are busy
        t = time.monotonic()
        assert stops[0].idle(5) is False and stops[1].idle(5) is False
        assert time.monotonic() - t < 1  # the two rings waiting: each worker claims at once
        t = time.monotonic()
        stops[0].idle(0.2)
        assert time.monotonic() - t >= 0.19  # and nothing more was kept: no claims in vain
    finally:
        signal.signal(signal.SIGTERM, before)


def test_notify_rings_the_workers(tmp_path):
    import select

    runner = JobRunner(service.db_url(settings_for(tmp_path)), settings_for(tmp_path), workers=3)
    fd = runner.wakeup.reader.fileno()
    assert not select.select([fd], [], [], 0)[0]
    runner.notify()
    assert select.select([fd], [], [], 0)[0]
