"""Background scoring: worker processes lease chunks, score them, commit them.

``run_worker`` is the loop (claim -> read the chunk from the work file -> score ->
commit results + counters + progress in one transaction). ``JobRunner`` owns the
worker processes of one service: it takes an exclusive lock on the data directory
(only one runner per data dir; other processes of the same service just serve the API),
requeues every chunk left leased by a previous run (``store.recover``), starts
``job_workers`` processes whenever chunks are pending, restarts any that die (requeuing
their chunk) and prunes old jobs.

Crash safety needs nothing else: a chunk is either committed whole or still pending.

A disk that takes no more writes (full, over quota, failing) is waited out, not blamed on
the input: the worker keeps its chunk and the chunk's scores, retries with back-off
(``DiskWait``) and says why in ``Notices``, which the job status and /readyz show.

``start_jobs`` checks the job database before anything uses it and starts the runner; the
service's lifespan (``app.main``) calls it with plain settings, and a database that cannot be
used leaves the review API serving and the jobs endpoints answering 503.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import multiprocessing as mp
import os
import select
import signal
import sqlite3
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.conversations import ConversationRules, Limits
from app.core.memory import freeze_loaded
from app.jobs.scoring import ConversationScorer, Scorers, load_scorers
from app.jobs.service import db_url, iso, jobs_dir, prune_jobs
from app.jobs.store import (
    ChunkOutput,
    Claim,
    JobStore,
    check_not_lost,
    disk_problem,
    explain,
    open_store,
    sqlite_path,
)
from app.jobs.workfile import read_chunk

log = logging.getLogger("pingjia.jobs")
PRUNE_EVERY = 3600.0
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""A worker process's log lines (also ``pingjia score``'s replayed worker log)."""
DISK_RETRY = (1.0, 60.0)  # seconds: first and longest wait between tries while the disk takes no writes
NOTICES = {
    "disk_full": "paused: the disk holding the job database ({where}) is full. Accepted rows are safe; "
    "scoring resumes by itself once space is freed (retried every 1-60 s)",
    "disk_error": "paused: writing the job database ({where}) fails with a disk I/O error (a full disk "
    "quota shows up this way). Accepted rows are safe; scoring resumes by itself once it can "
    "write again (retried every 1-60 s)",
}


class Notices:
    """Why workers wait instead of scoring, one slot per worker: since when (0: not waiting)
    and the problem. In lock-free shared memory, because the reason is a disk that takes no
    writes (so not the database), and a worker killed mid-update must leave no lock behind.
    The service process reads it for the job status and /readyz."""

    CODES = tuple(NOTICES)

    def __init__(self, n: int, where: str):
        self.where = where
        self._since = mp.RawArray("d", max(n, 1))
        self._code = mp.RawArray("b", max(n, 1))

    def put(self, slot: int, code: str | None) -> None:
        if code is None:
            self._since[slot] = 0.0
            return
        self._code[slot] = self.CODES.index(code)
        if not self._since[slot]:
            self._since[slot] = time.time()

    def current(self) -> dict | None:
        """The longest wait, as the job status shows it; None when no worker waits."""
        waits = [(since, self.CODES[code]) for since, code in zip(self._since, self._code) if since]
        if not waits:
            return None
        since, code = min(waits)
        return {"code": code, "message": NOTICES[code].format(where=self.where), "since": iso(since)}


class _Stopped(Exception):
    """The worker was asked to stop while it waited for the disk."""


class DiskWait:
    """Runs one storage step again and again while the disk takes no writes, waiting 1 s, 2 s,
    4 s ... 60 s between tries and saying why in ``notices``: an exception would kill the
    worker, and the chunk's next lease would count it as poison input."""

    def __init__(self, owner: str, stop, notices: Notices | None, slot: int, backoff: tuple[float, float] = DISK_RETRY):
        self.owner, self.stop, self.notices, self.slot, self.backoff = owner, stop, notices, slot, backoff
        self.waiting = False

    def __call__(self, step: Callable, *args):
        delay = self.backoff[0]
        while True:
            try:
                result = step(*args)
            except (sqlite3.Error, OSError) as exc:
                problem = disk_problem(exc)
                if problem is None:
                    raise
                if not self.waiting:
                    log.warning(
                        "worker %s: %s (%s); waiting for the disk, retrying with back-off", self.owner, problem, exc
                    )
                self._publish(problem)
                if self.stop.wait(delay):
                    self._publish(None)
                    raise _Stopped from exc
                delay = min(self.backoff[1], delay * 2)
                continue
            if self.waiting:
                log.info("worker %s: the disk takes writes again; resuming", self.owner)
                self._publish(None)
            return result

    def _publish(self, problem: str | None) -> None:
        self.waiting = problem is not None
        if self.notices is not None:
            self.notices.put(self.slot, problem)


def run_worker(
    store: JobStore,
    scorers,
    owner: str,
    stop: threading.Event | Any,
    *,
    poll: float = 0.25,
    parent_pid: int | None = None,
    idle_exit: float | None = None,
    notices: Notices | None = None,
    slot: int = 0,
    backoff: tuple[float, float] = DISK_RETRY,
    idle: Callable[[float], object] | None = None,
) -> None:
    """Claim, score and commit chunks until ``stop`` is set, the parent process dies, or
    (with ``idle_exit``) nothing was there to claim for that many seconds. While the disk
    takes no writes, the worker waits holding its chunk and its scores (``DiskWait``).
    With nothing to claim it waits ``poll`` seconds, or until ``idle`` returns (a process
    worker's :meth:`SignalStop.idle`: woken when a job is submitted)."""
    idle = idle or stop.wait
    idle_since = time.monotonic()
    retry = DiskWait(owner, stop, notices, slot, backoff)
    while not stop.is_set():
        if parent_pid is not None and os.getppid() != parent_pid:
            log.warning("worker %s: service process is gone; exiting", owner)
            return
        try:
            claim = retry(store.claim_chunk, owner)
        except _Stopped:
            return
        if claim is None:
            if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                log.info("worker %s: idle for %.0f s; exiting", owner, idle_exit)
                return
            idle(poll)
            continue
        idle_since = time.monotonic()
        try:
            out = retry(_score, store, scorers, claim)
            if out is not None and not retry(store.commit_chunk, claim, out):
                log.warning("job %s chunk %d: lease lost, result discarded", claim.job_id, claim.chunk_index)
        except _Stopped:
            _release(store, claim)
            return


def _score(store: JobStore, scorers, claim: Claim) -> ChunkOutput | None:
    """The chunk scored, or None when it cannot be (its job is then failed with the reason)."""
    try:
        rows = read_chunk(claim.work_path, claim.byte_offset, claim.n_rows)
        return scorers.for_kind(claim.kind).score(claim.start_row, rows, claim.params.get("plan", {}))
    except Exception as exc:  # noqa: BLE001 - the worker boundary: a chunk that cannot be
        # scored fails its job with the reason; the worker goes on with other jobs.
        if disk_problem(exc):
            raise  # the disk's fault, not the input's: DiskWait retries
        log.exception("job %s rows %d-%d failed", claim.job_id, claim.start_row + 1, claim.start_row + claim.n_rows)
        store.fail_job(
            claim.jid,
            "scoring_failed",
            f"rows {claim.start_row + 1}-{claim.start_row + claim.n_rows}: {type(exc).__name__}: {exc}",
        )
        return None


def _release(store: JobStore, claim: Claim) -> None:
    """Stopped while waiting for the disk: hand the chunk back without counting the attempt."""
    try:
        store.release(claim)
    except (sqlite3.Error, OSError) as exc:
        log.warning(
            "job %s chunk %d not released (%s); it is requeued when this worker is reaped",
            claim.job_id,
            claim.chunk_index,
            exc,
        )


class SignalStop:
    """The stop flag of a worker process, raised by SIGTERM: the worker finishes (commits)
    its chunk and exits. No shared lock, so a worker killed at any instant cannot leave
    anything locked behind (a multiprocessing.Event could: its semaphore). ``wakeup``: the
    read end of the runner's :class:`Wakeup` pipe, which :meth:`idle` waits on."""

    def __init__(self, wakeup: Any | None = None):
        self._set = False
        self._wakeup = wakeup.fileno() if wakeup is not None else None
        if self._wakeup is not None:
            os.set_blocking(self._wakeup, False)  # every idle worker wakes; one of them drains it
        signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._set and time.monotonic() < deadline:
            time.sleep(min(0.05, timeout))
        return self._set

    def idle(self, timeout: float) -> bool:
        """:meth:`wait`, cut short when a job is submitted (a byte on the wake-up pipe)."""
        if self._wakeup is None:
            return self.wait(timeout)
        deadline = time.monotonic() + timeout
        while not self._set and (left := deadline - time.monotonic()) > 0:
            if select.select([self._wakeup], [], [], min(0.05, left))[0]:
                try:
                    os.read(self._wakeup, 1)  # one byte: the others are the other workers' rings
                except BlockingIOError:
                    pass  # another worker took the last one: claim anyway
                break
        return self._set


class Wakeup:
    """A pipe from the service to its idle workers: ``ring`` (a job was submitted) leaves a
    byte per worker, and a worker waiting for work (:meth:`SignalStop.idle`) reads one and goes
    and claims at once, where it would poll 0.25 s later (on average 0.12 s: 5 % of a
    25,000-row job, the whole of a small one). One byte each, because a worker that drained the
    pipe left the others' ``select`` nothing to see when they ran: they slept out their poll.
    Nothing to lock: a worker killed at any instant leaves the pipe as it was, and rings nobody
    hears (all busy) only send each worker to claim once more when it is next idle."""

    def __init__(self, ctx):
        self.reader, self._writer = ctx.Pipe(duplex=False)  # a Connection: spawned workers get it too
        os.set_blocking(self._writer.fileno(), False)

    def ring(self, n: int) -> None:
        """Top the pipe up to ``n`` unread bytes (not ``n`` more per submission: a burst of
        submissions while the workers are busy would each later cost a claim in vain)."""
        buf = bytearray(4)
        fcntl.ioctl(self.reader.fileno(), termios.FIONREAD, buf)  # bytes not read yet
        missing = max(n, 1) - int.from_bytes(buf, sys.byteorder)
        if missing > 0:
            try:
                os.write(self._writer.fileno(), b"\0" * missing)
            except BlockingIOError:
                pass  # full: rings nobody has heard yet, so they will


def _process_main(
    db_url: str, owner: str, settings, factory: Callable, parent_pid: int, notices: Notices, slot: int, wakeup=None
) -> None:
    """Entry point of a worker process (spawned: a clean interpreter, its own pipeline)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the service, which stops us
    stop = SignalStop(wakeup)
    _die_with_parent()
    lower_priority(settings.job_worker_nice)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    scorers = factory(settings)
    store = open_store(db_url)
    log.info("worker %s ready (pid %d)", owner, os.getpid())
    try:
        run_worker(
            store,
            scorers,
            owner,
            stop,
            parent_pid=parent_pid,
            idle_exit=settings.job_worker_idle_seconds,
            notices=notices,
            slot=slot,
            idle=stop.idle,
        )
    finally:
        store.close()


def _forked_main(
    db_url: str,
    owner: str,
    scorers,
    parent_pid: int,
    lock_fd: int | None,
    nice: int,
    notices: Notices,
    slot: int,
    wakeup=None,
) -> None:
    """Entry point of a forked worker: the service's pipeline is already here (shared
    copy-on-write with the service process); only the database connection is new."""
    signal.set_wakeup_fd(-1)  # the service's event loop must not hear our signals
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = SignalStop(wakeup)
    _die_with_parent()
    lower_priority(nice)
    if lock_fd is not None:
        os.close(lock_fd)  # our copy only; the service keeps the lock
    store = open_store(db_url)
    log.info("worker %s ready (pid %d, forked)", owner, os.getpid())
    try:
        run_worker(store, scorers, owner, stop, parent_pid=parent_pid, notices=notices, slot=slot, idle=stop.idle)
    finally:
        store.close()


def lower_priority(n: int) -> None:
    """Run ``n`` nicer than the service, so its API requests get the CPU first. Linux keeps
    niceness per thread: threads already running (e.g. a BLAS pool started at import) are
    lowered too."""
    if n <= 0:
        return
    target = os.nice(n)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # not Linux: os.nice applied to the whole process
        return
    for tid in tids:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
        except OSError:
            pass  # the thread has exited


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (no orphan keeps scoring)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # elsewhere the parent-pid check in run_worker does the same, within a poll


def default_factory(settings):
    """What a spawned worker scores with: its own pipeline, loaded from ``settings``."""
    return load_scorers(settings)


class DataDirLock:
    """An exclusive, non-blocking flock on ``data_dir/jobs.lock``; released on exit/crash."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "jobs.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.set_inheritable(fd, False)
        self._fd = fd
        return True

    @property
    def fd(self) -> int | None:
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class JobRunner:
    """The service's worker processes, supervised; see the module docstring.

    Two ways to start workers:

    - spawn (default without ``inherit``): a fresh interpreter per worker that loads its own
      pipeline through ``factory``; started when there is work (at start-up for resumed jobs,
      on submit) and gone after ``job_worker_idle_seconds`` without any.
    - fork (``inherit`` = scorers over the service's loaded pipeline): ``start()`` — called
      while the service is still single-threaded, before it serves — forks the workers, which
      share the pipeline's memory with the service copy-on-write (``gc.freeze`` keeps the
      collector from touching, hence copying, those pages). They stay for the service's life.

    A worker that dies has its chunk requeued and is replaced (by spawn: forking a running,
    multi-threaded service is not safe) with a growing back-off (1 s .. 60 s).
    """

    def __init__(
        self,
        db_url: str,
        settings,
        *,
        workers: int | None = None,
        factory: Callable = default_factory,
        prune: Callable[[], None] | None = None,
        inherit: Any | None = None,
    ):
        self.db_url, self.settings, self.factory, self.prune = db_url, settings, factory, prune
        self.inherit = inherit
        self.n_workers = workers or settings.job_workers
        self.ctx = mp.get_context("spawn")
        self.stop_event = threading.Event()
        self.lock = DataDirLock(settings.data_dir)
        self.procs: dict[str, tuple[int, Any, float]] = {}  # owner -> (slot, process, started)
        self.active = False
        self.deaths = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff: dict[int, tuple[int, float]] = {}  # slot -> (failures, not before)
        self.notices = Notices(self.n_workers, db_url)
        self.wakeup = Wakeup(self.ctx)
        self._store_error = ""

    def notice(self) -> dict | None:
        """Why jobs are paused (the disk is full), as this process's workers report it."""
        return self.notices.current() if self.active else None

    def start(self) -> None:
        if not self.lock.acquire():
            log.info("another process runs the jobs of %s; this one only serves the API", self.settings.data_dir)
            return
        try:
            store = open_store(self.db_url)
            try:
                n = store.recover()
                if n:
                    log.info("resuming: %d chunk(s) left leased by the previous run are pending again", n)
            finally:
                store.close()
        except BaseException:
            self.lock.release()
            raise
        self.active = True
        if self.inherit is not None:
            self._fork_all()
        self._thread = threading.Thread(target=self._supervise, name="jobs-supervisor", daemon=True)
        self._thread.start()

    def _fork_all(self) -> None:
        fork = mp.get_context("fork")
        freeze_loaded()  # objects alive now are never scanned by the workers' collector (nor the service's)
        for slot in range(self.n_workers):
            owner = f"w{slot}-{uuid.uuid4().hex[:8]}"
            proc = fork.Process(
                target=_forked_main,
                name=f"pingjia-job-worker-{slot}",
                daemon=True,
                args=(
                    self.db_url,
                    owner,
                    self.inherit,
                    os.getpid(),
                    self.lock.fd,
                    self.settings.job_worker_nice,
                    self.notices,
                    slot,
                    self.wakeup.reader,
                ),
            )
            proc.start()
            self.procs[owner] = (slot, proc, time.monotonic())

    def notify(self) -> None:
        """A job was submitted: idle workers claim now, missing ones start now, rather than at
        their next check."""
        self.wakeup.ring(self.n_workers)
        self._wake.set()

    def models_changed(self) -> int:
        """After an admin reload: every worker finishes (commits) its chunk and exits, and the
        supervisor replaces it by spawn with a worker that loads the models the pointer now
        names. Chunks already being scored finish on the old model, as requests do. Returns
        how many workers were asked to restart."""
        asked = 0
        for _, proc, _ in list(self.procs.values()):
            if proc.is_alive():
                proc.terminate()  # SIGTERM: SignalStop, the chunk in hand is still committed
                asked += 1
        self.inherit = None  # replacements are spawned: let the old models be freed
        self._wake.set()
        return asked

    def _supervise(self) -> None:
        self._run_prune()  # here, not in start(): deleting big old jobs must not delay start-up
        last_prune = time.monotonic()
        store = open_store(self.db_url)
        try:
            while not self.stop_event.is_set():
                self._wake.wait(1.0)
                self._wake.clear()
                if self.stop_event.is_set():
                    break
                try:
                    self._reap(store)
                    if store.has_pending_work():
                        self._fill()
                    self._store_error = ""
                except (sqlite3.Error, OSError) as exc:  # a full disk, say: keep supervising, try again
                    if str(exc) != self._store_error:
                        log.error("job supervisor: %s; retrying every second", explain(self.db_url, exc))
                    self._store_error = str(exc)
                if time.monotonic() - last_prune > PRUNE_EVERY:
                    last_prune = time.monotonic()
                    self._run_prune()
        finally:
            store.close()

    def _reap(self, store: JobStore) -> None:
        now = time.monotonic()
        for owner, (slot, proc, started) in list(self.procs.items()):
            if proc.is_alive():
                continue
            n = store.requeue(owner)  # first: should it fail, the next round tries again
            del self.procs[owner]
            self.notices.put(slot, None)
            if proc.exitcode == 0:  # left after idling
                self._backoff.pop(slot, None)
                continue
            self.deaths += 1
            failures = 0 if now - started > 60 else self._backoff.get(slot, (0, 0.0))[0]
            self._backoff[slot] = (failures + 1, now + min(60.0, 2.0**failures))
            log.error("worker %s exited (code %s); %d chunk(s) requeued", owner, proc.exitcode, n)

    def _fill(self) -> None:
        busy = {slot for slot, _, _ in self.procs.values()}
        now = time.monotonic()
        for slot in range(self.n_workers):
            if slot not in busy and now >= self._backoff.get(slot, (0, 0.0))[1]:
                self._spawn(slot)

    def _spawn(self, slot: int) -> None:
        owner = f"w{slot}-{uuid.uuid4().hex[:8]}"
        proc = self.ctx.Process(
            target=_process_main,
            name=f"pingjia-job-worker-{slot}",
            args=(self.db_url, owner, self.settings, self.factory, os.getpid(), self.notices, slot, self.wakeup.reader),
            daemon=True,
        )
        proc.start()
        self.procs[owner] = (slot, proc, time.monotonic())

    def _run_prune(self) -> None:
        if self.prune is None:
            return
        try:
            self.prune()
        except Exception:  # noqa: BLE001 - housekeeping must not take the service down
            log.exception("pruning old jobs failed")

    def stop(self, timeout: float = 15.0) -> None:
        """Ask workers to finish their chunk and exit; kill stragglers; requeue their chunks."""
        self.stop_event.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for _, proc, _ in self.procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: SignalStop
        deadline = time.monotonic() + timeout
        for _, proc, _ in self.procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if self.active:
            _requeue_all(lambda: open_store(self.db_url), close=True)
        self.procs.clear()
        self.lock.release()
        self.active = False


def _requeue_all(get_store: Callable[[], JobStore], close: bool = False) -> None:
    """At shutdown: chunks still leased go back to pending. Should that fail (the disk is
    full), the next start's ``recover`` does it."""
    try:
        store = get_store()
        try:
            store.requeue(None)
        finally:
            if close:
                store.close()
    except (sqlite3.Error, OSError) as exc:
        log.warning("leased chunks not requeued at shutdown (%s); the next start does it", exc)


class ThreadRunner:
    """The same loop in threads of this process, over a given ``Scorers`` (tests, fakes)."""

    def __init__(
        self,
        store: JobStore,
        scorers,
        *,
        workers: int = 1,
        poll: float = 0.02,
        backoff: tuple[float, float] = DISK_RETRY,
    ):
        self.store, self.scorers, self.n_workers, self.poll = store, scorers, workers, poll
        self.backoff = backoff
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.active = False
        self.notices = Notices(workers, str(getattr(store, "path", "job store")))

    def models_changed(self) -> int:
        """Threads score with the scorers they were given; nothing to restart."""
        return 0

    def notice(self) -> dict | None:
        return self.notices.current() if self.active else None

    def start(self) -> None:
        self.store.recover()
        self.active = True
        for i in range(self.n_workers):
            t = threading.Thread(
                target=run_worker,
                args=(self.store, self.scorers, f"t{i}", self.stop_event),
                kwargs={"poll": self.poll, "notices": self.notices, "slot": i, "backoff": self.backoff},
                daemon=True,
            )
            t.start()
            self.threads.append(t)

    def notify(self) -> None:
        pass

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout)
        _requeue_all(lambda: self.store)
        self.active = False


def fork_scorers(settings, pipeline, rules: ConversationRules | None) -> Scorers | None:
    """With ``job_worker_start=fork``: scorers over the pipeline this service has loaded —
    only while this is the process's one Python thread (uvicorn's start-up; not, e.g., a
    test client's portal thread), because forking a multi-threaded process is not safe.
    None: the workers are spawned and load their own."""
    if settings.job_worker_start != "fork" or pipeline is None:
        return None
    if threading.active_count() > 1:
        log.info("job workers: %d threads running, so they are spawned rather than forked", threading.active_count())
        return None
    conv = None
    if rules is not None:
        conv = lambda: ConversationScorer(pipeline, rules, Limits.from_settings(settings))  # noqa: E731
    return Scorers(pipeline, conv)


def start_jobs(
    settings,
    *,
    store: JobStore | None = None,
    runner: Any | None = None,
    pipeline=None,
    rules: ConversationRules | None = None,
) -> tuple[JobStore, Any]:
    """Open (unless given) and check the job store, then start the runner (unless given, a
    ``JobRunner`` whose workers fork from ``pipeline`` when the settings ask for it).

    Raises on any problem with the job database, having closed the store: the caller decides
    what the service does without jobs (``unavailable_message``)."""
    url = db_url(settings)
    if store is None:
        check_not_lost(sqlite_path(url), jobs_dir(settings))  # before SQLite creates an empty one
        store = open_store(url)
    try:
        if settings.jobs_db_check != "off":
            store.verify(full=settings.jobs_db_check == "full")
        if runner is None:
            runner = JobRunner(
                url, settings, prune=lambda: prune_jobs(url, settings), inherit=fork_scorers(settings, pipeline, rules)
            )
        runner.start()
    except BaseException:
        store.close()
        raise
    return store, runner


def unavailable_message(settings, exc: BaseException) -> str:
    """What every jobs endpoint answers (503 ``jobs_unavailable``) and /readyz shows when
    ``start_jobs`` failed: the file, what is wrong with it and what to do."""
    return f"{explain(db_url(settings), exc)}. Until then batch jobs are unavailable; the review API serves"
