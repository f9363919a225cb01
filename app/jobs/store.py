"""Job state behind a small interface; SQLite (WAL) is the one implementation today.

Tables (schema v4, created/migrated on open; ``schema_version`` records the version):

- ``jobs``: one row per job: status, done/total/errors, chunk counts, input params (JSON),
  the work-file path, timings and the cached summary.
- ``chunks``: the chunk boundaries fixed at submit time ``(start_row, n_rows, byte_offset)``
  and each chunk's lease: ``pending`` -> ``leased`` (owner, attempts) -> ``done``.
- ``results``: one row per input row, keyed ``(jid, row_index)``: the compact JSON line.
- ``report_counts`` / ``report_terms``: the report's counters, summed chunk by chunk (v1-v3;
  jobs scored since v4 leave them empty, but a job begun before an upgrade is read from both).
- ``report_examples`` (v2): one example per ``(dim, key, metric)`` (a chat report's violation
  code per agent/channel), the one with the lowest row index kept. A v1 file gains the empty
  table on open; jobs scored before simply have no examples.
- v3: ``jobs.owner``, the id of the API key that submitted the job (NULL without keys), and
  the index ``jobs_owner (owner, jid)`` the job list reads newest first (and
  ``chunks_committed`` for the rows-per-second metric). An older file gains them on open;
  its jobs have no owner (listed and readable only while keys are off).
- v4: ``chunk_reports``: one row per committed chunk (:func:`chunk_report`): its counter keys
  and terms (JSON lists of strings; a counter key is the JSON text of ``[dim, key, metric]``),
  their values as little-endian int64 columns (counters: n; terms: neg, pos, n_all, first
  negative row or -1), each of the four zlib-compressed, and its term totals; summed when a
  report is read (:class:`ColumnSums`). Every ``FOLD_CHUNKS`` committed chunks, a worker
  replaces their rows with one row of their sums, keyed ``-1 - first chunk_index``
  (:meth:`SQLiteJobStore._fold_reports`). The per-row upserts into ``report_counts`` /
  ``report_terms`` took a tenth of a worker's time (~3,900 upserts a chunk); one insert a
  chunk costs ~60 bytes a row on disk. An upgraded file cannot be opened by older code.

Exactly once: ``commit_chunk`` writes a chunk's results, its counters and the job's
progress in ONE transaction, and only if the chunk is still leased to the committing
worker. A crash rolls the transaction back; ``recover`` puts leased chunks back to
``pending`` and they are scored again. The results primary key is a second guard.

A full disk is a state to wait out, not a fault of the input: ``disk_problem`` tells it
from other errors, so workers pause on it (app.jobs.worker). A damaged file is found at
start-up by ``verify`` (and ``check_not_lost`` refuses an emptied one) and reported with
``explain``, naming the file and what to do.

A PostgreSQL implementation would implement ``JobStore`` with the same tables;
``open_store`` is where its URL would be dispatched.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.core import jsonbytes
from app.pipeline._native import Vocab

log = logging.getLogger("pingjia.jobs")

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
MAX_ATTEMPTS = 3  # a chunk leased this often without a commit fails its job (poison input)
REPAIR = (
    "stop the service and restore it from a backup (or, to start afresh, move it with its -wal/-shm "
    "files and the jobs/ folder next to it aside), then restart"
)


@dataclass(frozen=True, slots=True)
class NewJob:
    job_id: str
    kind: str
    total: int
    params: dict[str, Any]
    work_path: str
    chunks: list[tuple[int, int, int]]  # (start_row, n_rows, byte_offset)
    owner: str | None = None  # the submitting API key's id


@dataclass(frozen=True, slots=True)
class JobRecord:
    jid: int
    job_id: str
    kind: str
    status: str
    total: int
    done: int
    errors: int
    n_chunks: int
    chunks_done: int
    params: dict[str, Any]
    work_path: str
    model: dict[str, str] | None
    error_code: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_started_at: float | None
    run_done_start: int
    owner: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk leased to one worker."""

    jid: int
    job_id: str
    kind: str
    chunk_index: int
    start_row: int
    n_rows: int
    byte_offset: int
    work_path: str
    params: dict[str, Any]
    owner: str


@dataclass(slots=True)
class ChunkOutput:
    """What scoring one chunk produces; committed atomically by ``commit_chunk``."""

    rows: list[tuple[int, str, int, str]]  # (row_index, row_id, is_error, body JSON)
    counts: dict[tuple[str, str, str], int]  # (dim, key, metric) -> n
    terms: dict[str, list]  # term -> [neg, pos, n_all, example_row | None]
    model: dict[str, str]
    examples: dict[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)  # -> (row, JSON)

    @property
    def errors(self) -> int:
        return sum(r[2] for r in self.rows)


class JobStore(Protocol):
    """Everything the API, the workers and the report need from storage."""

    def create_job(self, job: NewJob) -> JobRecord: ...
    def get_job(self, job_id: str) -> JobRecord | None: ...
    def list_jobs(self, owner: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]: ...
    def active_jobs(self, owner: str | None) -> int: ...
    def job_counts(self) -> dict[str, int]: ...
    def rows_scored(self, window: float = 60.0) -> int: ...
    def claim_chunk(self, owner: str) -> Claim | None: ...
    def commit_chunk(self, claim: Claim, out: ChunkOutput) -> bool: ...
    def has_pending_work(self) -> bool: ...
    def requeue(self, owner: str | None = None) -> int: ...
    def recover(self) -> int: ...
    def cancel_job(self, job_id: str) -> JobRecord | None: ...
    def fail_job(self, jid: int, code: str, message: str) -> None: ...
    def release(self, claim: Claim) -> bool: ...
    def verify(self, full: bool = False) -> None: ...
    def iter_results(self, jid: int) -> Iterator[tuple[int, str]]: ...
    def iter_counts(self, jid: int) -> Iterator[tuple[str, str, str, int]]: ...
    def iter_terms(self, jid: int) -> Iterator[tuple[str, int, int, int, int | None]]: ...
    def term_totals(self, jid: int) -> tuple[int, int, int]: ...
    def iter_examples(self, jid: int) -> Iterator[tuple[str, str, str, int, str]]: ...
    def chunk_offset(self, jid: int, row_index: int) -> tuple[int, int] | None: ...
    def error_rows(self, jid: int, limit: int) -> list[str]: ...
    def progress_rate(self, jid: int, window: float = 30.0) -> tuple[int, float] | None: ...
    def get_summary(self, jid: int) -> str | None: ...
    def put_summary(self, jid: int, summary: str) -> None: ...
    def expired_jobs(self, before: float) -> list[JobRecord]: ...
    def delete_job(self, jid: int) -> None: ...
    def close(self) -> None: ...


MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE jobs (
            jid INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            total INTEGER NOT NULL,
            done INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            n_chunks INTEGER NOT NULL,
            chunks_done INTEGER NOT NULL DEFAULT 0,
            params TEXT NOT NULL,
            work_path TEXT NOT NULL,
            model TEXT,
            error_code TEXT,
            error_message TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            run_started_at REAL,
            run_done_start INTEGER NOT NULL DEFAULT 0,
            summary TEXT)""",
            "CREATE INDEX jobs_status ON jobs(status, jid)",
            """CREATE TABLE chunks (
            jid INTEGER NOT NULL,
            chunk_index INTEGER NOT NULL,
            start_row INTEGER NOT NULL,
            n_rows INTEGER NOT NULL,
            byte_offset INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            owner TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            leased_at REAL,
            committed_at REAL,
            PRIMARY KEY (jid, chunk_index)) WITHOUT ROWID""",
            "CREATE INDEX chunks_pending ON chunks(jid, chunk_index) WHERE state = 'pending'",
            "CREATE INDEX chunks_leased ON chunks(owner) WHERE state = 'leased'",
            """CREATE TABLE results (
            jid INTEGER NOT NULL,
            row_index INTEGER NOT NULL,
            row_id TEXT NOT NULL,
            is_error INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (jid, row_index)) WITHOUT ROWID""",
            "CREATE INDEX results_errors ON results(jid, row_index) WHERE is_error = 1",
            """CREATE TABLE report_counts (
            jid INTEGER NOT NULL, dim TEXT NOT NULL, key TEXT NOT NULL, metric TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (jid, dim, key, metric)) WITHOUT ROWID""",
            """CREATE TABLE report_terms (
            jid INTEGER NOT NULL, term TEXT NOT NULL,
            neg INTEGER NOT NULL, pos INTEGER NOT NULL, n_all INTEGER NOT NULL,
            example_row INTEGER,
            PRIMARY KEY (jid, term)) WITHOUT ROWID""",
        ],
    ),
    (
        2,
        [
            """CREATE TABLE report_examples (
            jid INTEGER NOT NULL, dim TEXT NOT NULL, key TEXT NOT NULL, metric TEXT NOT NULL,
            row_index INTEGER NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (jid, dim, key, metric)) WITHOUT ROWID""",
        ],
    ),
    (
        3,
        [
            "ALTER TABLE jobs ADD COLUMN owner TEXT",
            "CREATE INDEX jobs_owner ON jobs(owner, jid)",
            "CREATE INDEX chunks_committed ON chunks(committed_at) WHERE state = 'done'",  # /metrics rows/s
        ],
    ),
    (
        4,
        [
            """CREATE TABLE chunk_reports (
            jid INTEGER NOT NULL, chunk_index INTEGER NOT NULL,
            count_keys BLOB NOT NULL, counts BLOB NOT NULL, term_keys BLOB NOT NULL, terms BLOB NOT NULL,
            neg INTEGER NOT NULL, pos INTEGER NOT NULL, n_all INTEGER NOT NULL,
            PRIMARY KEY (jid, chunk_index))""",
        ],
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_JOB_COLUMNS = (
    "jid, job_id, kind, status, total, done, errors, n_chunks, chunks_done, params, "
    "work_path, model, error_code, error_message, created_at, started_at, finished_at, "
    "run_started_at, run_done_start, owner"
)


def open_store(url: str | Path) -> JobStore:
    """A store for ``url``: a file path or ``sqlite:///path``; other schemes are refused.

    >>> open_store("postgresql://db/pingjia")
    Traceback (most recent call last):
    ...
    NotImplementedError: no JobStore for 'postgresql'; implement app.jobs.store.JobStore for it
    """
    return SQLiteJobStore(sqlite_path(url))


def sqlite_path(url: str | Path) -> Path:
    """The file of a SQLite store URL (a path, ``sqlite:///rel`` or ``sqlite:////abs``)."""
    text = str(url)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme != "sqlite":
            raise NotImplementedError(f"no JobStore for {scheme!r}; implement app.jobs.store.JobStore for it")
        text = rest[1:] if rest.startswith("/") else rest
    return Path(text)


class StoreUnusable(sqlite3.DatabaseError):
    """The job database cannot be trusted as it is; the message names the file and what to do."""


_DISK_ERRORS = {
    sqlite3.SQLITE_IOERR_WRITE,
    sqlite3.SQLITE_IOERR_FSYNC,
    sqlite3.SQLITE_IOERR_SHMSIZE,
    sqlite3.SQLITE_IOERR_TRUNCATE,
}
_READ_ERRORS = {sqlite3.SQLITE_IOERR_READ, sqlite3.SQLITE_IOERR_SHORT_READ}


def disk_problem(exc: BaseException) -> str | None:
    """``disk_full`` or ``disk_error`` when ``exc`` says the disk takes no more writes — a state
    to wait out, not a fault of the job's input — else None. SQLite reports ENOSPC as
    SQLITE_FULL but a full quota (EDQUOT) only as a write I/O error, hence ``disk_error``."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return "disk_full"
    return "disk_error" if code in _DISK_ERRORS else None


def explain(where: str | Path, exc: BaseException) -> str:
    """What an operator reads when the job database fails: the file, the cause, what to do."""
    if isinstance(exc, StoreUnusable):
        return str(exc)
    full_code = getattr(exc, "sqlite_errorcode", None) or 0
    code = full_code & 0xFF
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or full_code in _READ_ERRORS:
        return f"job database {where} is damaged ({exc}): {REPAIR}"
    if disk_problem(exc):
        return f"job database {where} cannot be written ({exc}): free space on its disk"
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) or (
        isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    ):
        return (
            f"job database {where} cannot be opened for writing ({exc}): its directory and files must be "
            "writable by the service's user"
        )
    return f"job database {where} failed ({type(exc).__name__}: {exc})"


def check_not_lost(path: Path, job_dirs: Path) -> None:
    """Refuse a missing or 0-byte job database while ``job_dirs`` holds job folders: the
    records of accepted jobs are gone (file deleted or truncated, a wrong path), and SQLite
    would silently start a new, empty database in its place."""
    if path.exists() and path.stat().st_size > 0:
        return
    folders = sum(1 for d in job_dirs.iterdir() if d.is_dir()) if job_dirs.is_dir() else 0
    if folders:
        state = "is empty (0 bytes)" if path.exists() else "does not exist"
        raise StoreUnusable(
            f"job database {path} {state} but {job_dirs} holds {folders} job folder(s): the "
            f"records of accepted jobs are missing. Restore it from a backup, or move {job_dirs} "
            "aside to start afresh (abandoning those jobs), then restart"
        )


class SQLiteJobStore:
    """``JobStore`` on one SQLite file in WAL mode; one connection per thread."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Results hold customers' texts: owner-only, whatever the umask (SQLite gives the
            # -wal and -shm files the database file's mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.migrate()

    # -- connections and schema -------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A new connection: autocommit mode, explicit BEGIN IMMEDIATE for writes."""
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA synchronous = FULL")  # a 202'd job survives power loss too
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _tx(self):
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLITE_FULL / IOERR may have rolled it back already
                conn.execute("ROLLBACK")
            raise

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version now in place."""
        conn = self._conn
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # effective on a new file only
        conn.execute("PRAGMA journal_mode = WAL")
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema v{current} is newer than this code (v{SCHEMA_VERSION})")
            for version, statements in MIGRATIONS:
                if version > current:
                    for sql in statements:
                        c.execute(sql)
                    c.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    current = version
        return current

    def verify(self, full: bool = False) -> None:
        """Read every page (``PRAGMA quick_check``; ``full``: ``integrity_check``, which also
        cross-checks indexes against their tables), so damage is found at start-up rather
        than in the middle of a download."""
        pragma = "integrity_check" if full else "quick_check"
        found = [r[0] for r in self._conn.execute(f"PRAGMA {pragma}(5)")]
        if found != ["ok"]:
            raise StoreUnusable(f"job database {self.path} is damaged ({pragma}: {'; '.join(found)}): {REPAIR}")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

    # -- jobs ---------------------------------------------------------------------
    def create_job(self, job: NewJob) -> JobRecord:
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO jobs (job_id, kind, status, total, n_chunks, params, work_path, created_at, owner)"
                " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.kind,
                    job.total,
                    len(job.chunks),
                    json.dumps(job.params, ensure_ascii=False),
                    job.work_path,
                    now,
                    job.owner,
                ),
            )
            jid = cur.lastrowid
            c.executemany(
                "INSERT INTO chunks (jid, chunk_index, start_row, n_rows, byte_offset) VALUES (?, ?, ?, ?, ?)",
                ((jid, i, s, n, off) for i, (s, n, off) in enumerate(job.chunks)),
            )
        return self.get_job(job.job_id)

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def list_jobs(self, owner: str | None, limit: int, offset: int) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and how many there are in all: ``owner``'s alone, or
        every job when ``owner`` is None (keys off). One snapshot, so the page and the count agree."""
        where, args = ("WHERE owner = ?", (owner,)) if owner is not None else ("", ())
        conn = self._conn
        conn.execute("BEGIN")
        try:
            total = conn.execute(f"SELECT count(*) FROM jobs {where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY jid DESC LIMIT ? OFFSET ?", (*args, limit, offset)
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return [_record(r) for r in rows], total

    def active_jobs(self, owner: str | None) -> int:
        """Queued + running jobs of ``owner`` (of everyone when None)."""
        where, args = ("AND owner = ?", (owner,)) if owner is not None else ("", ())
        return self._conn.execute(
            f"SELECT count(*) FROM jobs WHERE status IN (?, ?) {where}", (*ACTIVE, *args)
        ).fetchone()[0]

    def job_counts(self) -> dict[str, int]:
        """Jobs by status (for /metrics)."""
        return dict(self._conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())

    def rows_scored(self, window: float = 60.0) -> int:
        """Rows committed, over every job, in the last ``window`` seconds (for /metrics)."""
        row = self._conn.execute(
            "SELECT sum(n_rows) FROM chunks INDEXED BY chunks_committed WHERE state = 'done' AND committed_at >= ?",
            (time.time() - window,),
        ).fetchone()
        return int(row[0] or 0)

    def cancel_job(self, job_id: str) -> JobRecord | None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE job_id = ? AND status IN (?, ?)",
                (time.time(), job_id, *ACTIVE),
            )
        return self.get_job(job_id)

    def fail_job(self, jid: int, code: str, message: str) -> None:
        with self._tx() as c:
            _fail(c, jid, code, message)

    def release(self, claim: Claim) -> bool:
        """Give back a chunk its worker could not commit through no fault of the input (it was
        stopped while the disk was full): pending again, and this lease is not an attempt."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE chunks SET state = 'pending', owner = NULL, attempts = max(attempts - 1, 0)"
                " WHERE jid = ? AND chunk_index = ? AND state = 'leased' AND owner = ?",
                (claim.jid, claim.chunk_index, claim.owner),
            )
        return cur.rowcount == 1

    # -- chunk leases -------------------------------------------------------------
    def claim_chunk(self, owner: str) -> Claim | None:
        """Lease the first pending chunk of the oldest active job (FIFO), or None."""
        while True:
            with self._tx() as c:
                first = c.execute(
                    "SELECT j.jid, (SELECT min(c.chunk_index) FROM chunks c INDEXED BY chunks_pending"
                    "  WHERE c.jid = j.jid AND c.state = 'pending') AS ci"
                    " FROM jobs j WHERE j.status IN ('queued', 'running') AND ci IS NOT NULL"
                    " ORDER BY j.jid LIMIT 1"
                ).fetchone()
                if first is None:
                    return None
                row = c.execute(
                    "SELECT j.jid, j.job_id, j.kind, j.status, j.work_path, j.params, c.chunk_index,"
                    " c.start_row, c.n_rows, c.byte_offset, c.attempts"
                    " FROM jobs j JOIN chunks c ON c.jid = j.jid WHERE j.jid = ? AND c.chunk_index = ?",
                    first,
                ).fetchone()
                jid, job_id, kind, status, work_path, params, ci, start, n, offset, attempts = row
                if attempts >= MAX_ATTEMPTS:
                    _fail(
                        c,
                        jid,
                        "worker_crashed",
                        f"rows {start + 1}-{start + n} stopped a worker {attempts} times; job abandoned",
                    )
                    continue
                now = time.time()
                c.execute(
                    "UPDATE chunks SET state = 'leased', owner = ?, attempts = attempts + 1, leased_at = ?"
                    " WHERE jid = ? AND chunk_index = ?",
                    (owner, now, jid, ci),
                )
                if status == "queued":
                    c.execute(
                        "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, ?),"
                        " run_started_at = ?, run_done_start = done WHERE jid = ?",
                        (now, now, jid),
                    )
                return Claim(jid, job_id, kind, ci, start, n, offset, work_path, json.loads(params), owner)

    def commit_chunk(self, claim: Claim, out: ChunkOutput) -> bool:
        """Results + counters + progress in one transaction; False if the lease was lost."""
        now = time.time()
        report = chunk_report(out)  # encoded before the write lock is taken
        try:
            with self._tx() as c:
                self._commit(c, claim, out, report, now)
        except _LeaseLost:
            return False
        try:
            self._fold_reports(claim.jid)
        except sqlite3.OperationalError as exc:  # a full disk, say: the rows stay as they are
            log.warning("job %s: chunk reports not folded (%s)", claim.job_id, exc)
        return True

    @staticmethod
    def _commit(c: sqlite3.Connection, claim: Claim, out: ChunkOutput, report: tuple, now: float) -> None:
        cur = c.execute(
            "UPDATE chunks SET state = 'done', owner = NULL, committed_at = ?"
            " WHERE jid = ? AND chunk_index = ? AND state = 'leased' AND owner = ?",
            (now, claim.jid, claim.chunk_index, claim.owner),
        )
        if cur.rowcount != 1:
            raise _LeaseLost  # requeued (worker presumed dead), perhaps scored by another
        c.executemany(
            "INSERT INTO results (jid, row_index, row_id, is_error, body) VALUES (?, ?, ?, ?, ?)",
            ((claim.jid, *r) for r in out.rows),
        )
        c.execute(_INSERT_REPORT, (claim.jid, claim.chunk_index, *report))
        c.executemany(
            "INSERT INTO report_examples (jid, dim, key, metric, row_index, data) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (jid, dim, key, metric) DO UPDATE SET row_index = excluded.row_index,"
            " data = excluded.data WHERE excluded.row_index < report_examples.row_index",
            ((claim.jid, d, k, m, row, data) for (d, k, m), (row, data) in out.examples.items()),
        )
        c.execute(
            "UPDATE jobs SET done = done + ?, errors = errors + ?, chunks_done = chunks_done + 1,"
            " model = coalesce(model, ?),"
            " status = CASE WHEN chunks_done + 1 >= n_chunks AND status = 'running' THEN 'done' ELSE status END,"
            " finished_at = CASE WHEN chunks_done + 1 >= n_chunks AND status = 'running' THEN ?"
            "  ELSE finished_at END"
            " WHERE jid = ?",
            (len(out.rows), out.errors, json.dumps(out.model), now, claim.jid),
        )

    def has_pending_work(self) -> bool:
        """Is any chunk of a queued or running job waiting for a worker?"""
        return (
            self._conn.execute(
                "SELECT 1 FROM jobs j WHERE j.status IN ('queued', 'running') AND EXISTS"
                " (SELECT 1 FROM chunks c WHERE c.jid = j.jid AND c.state = 'pending') LIMIT 1"
            ).fetchone()
            is not None
        )

    def requeue(self, owner: str | None = None) -> int:
        """Put chunks leased by ``owner`` (every owner when None) back to pending."""
        with self._tx() as c:
            if owner is None:
                cur = c.execute("UPDATE chunks SET state = 'pending', owner = NULL WHERE state = 'leased'")
            else:
                cur = c.execute(
                    "UPDATE chunks SET state = 'pending', owner = NULL WHERE state = 'leased' AND owner = ?", (owner,)
                )
            return cur.rowcount

    def recover(self) -> int:
        """At start-up, with no worker alive: every leased chunk goes back to pending and
        running jobs restart their rate clock. Returns the number of chunks requeued."""
        n = self.requeue(None)
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE jobs SET run_started_at = ?, run_done_start = done WHERE status = 'running'", (now,))
        return n

    # -- reading results and report counters -------------------------------------
    def iter_results(self, jid: int, batch: int = 2000) -> Iterator[tuple[int, str]]:
        """(row_index, body) in input order, on a private connection (safe to stream).

        The first batch is read before this returns, so damage there is an error before a byte
        is sent. Damage found later, or fewer rows than the job committed, raises mid-stream,
        which cuts the response off: the client sees an incomplete download, never a clean
        short file. (Counting the rows first would read every stored body twice, and could
        still not promise the second read.)"""
        conn = self.connect()
        try:
            conn.execute("BEGIN")  # one snapshot: the committed count and the rows agree
            done = conn.execute("SELECT done FROM jobs WHERE jid = ?", (jid,)).fetchone()
            cur = conn.execute("SELECT row_index, body FROM results WHERE jid = ? ORDER BY row_index", (jid,))
            first = cur.fetchmany(batch)
        except BaseException:
            conn.close()
            raise
        return self._stream(conn, cur, first, done[0] if done else 0, batch)

    def _stream(
        self, conn: sqlite3.Connection, cur: sqlite3.Cursor, rows: list, expected: int, batch: int
    ) -> Iterator[tuple[int, str]]:
        n = 0
        try:
            while rows:
                yield from rows
                n += len(rows)
                rows = cur.fetchmany(batch)
            if n != expected:
                raise StoreUnusable(
                    f"job database {self.path} is damaged: {n} result rows read where "
                    f"{expected} were committed; {REPAIR}"
                )
        finally:
            conn.close()

    def iter_counts(self, jid: int) -> Iterator[tuple[str, str, str, int]]:
        rows = self._conn.execute("SELECT dim, key, metric, n FROM report_counts WHERE jid = ?", (jid,)).fetchall()
        keys, (n,) = self._summed(jid, "counts", legacy=([_count_key(r[:3]) for r in rows], [[r[3] for r in rows]]))
        keyed = sorted(zip(map(json.loads, keys), n.tolist()))  # in key order, as the table's
        return ((dim, key, metric, count) for (dim, key, metric), count in keyed)

    def iter_terms(self, jid: int) -> Iterator[tuple[str, int, int, int, int | None]]:
        rows = self._conn.execute(
            "SELECT term, neg, pos, n_all, coalesce(example_row, -1) FROM report_terms WHERE jid = ?", (jid,)
        ).fetchall()
        keys, columns = self._summed(
            jid, "terms", legacy=([r[0] for r in rows], [[r[i] for r in rows] for i in range(1, 5)])
        )
        return (
            (t, neg, pos, n_all, None if first == NO_ROW else first)
            for t, neg, pos, n_all, first in zip(keys, *(c.tolist() for c in columns))
        )

    def _summed(
        self, jid: int, part: str, *, legacy: tuple | None = None, chunks: list[int] | None = None
    ) -> tuple[list[str], list[np.ndarray]]:
        """The ``chunk_reports`` rows of job ``jid`` (only those of index ``chunks`` when given)
        summed for ``part`` (``counts`` or ``terms``), with ``legacy`` (keys, columns) from the
        tables before v4. A row that does not decode is damage (a ``DatabaseError``, answered 503
        like a damaged page)."""
        columns, reducers = _REPORT_PARTS[part]
        sums = ColumnSums(reducers)
        if legacy is not None:
            sums.add(*legacy)
        sql, args = f"SELECT {columns} FROM chunk_reports WHERE jid = ?", [jid]
        if chunks is not None:
            sql += f" AND chunk_index IN ({', '.join('?' * len(chunks))})"
            args += chunks
        for keys, values in self._conn.execute(sql, args):
            try:
                keys = jsonbytes.loads(zlib.decompress(keys))
                values = np.frombuffer(zlib.decompress(values), "<i8").reshape(len(reducers), len(keys))
            except (zlib.error, ValueError, TypeError) as exc:
                raise StoreUnusable(
                    f"job database {self.path} is damaged (a chunk_reports row of job {jid} does not decode:"
                    f" {exc}): {REPAIR}"
                ) from None
            sums.add(keys, values)
        return sums.result()

    def _fold_reports(self, jid: int) -> bool:
        """Replace ``FOLD_CHUNKS`` committed chunks' ``chunk_reports`` rows of job ``jid`` with
        one row of their sums, when that many are there; True if it did.

        Why: a report reads every row, so a million-row job's 2,000 rows took 7.8 s to sum; the
        worker that commits the 64th chunk folds them (~0.1 s, outside the write lock; 2 % of its
        time), and a report reads ~30 folded rows and at most 63 others. The sums are made from a
        read of exactly those rows, then the rows are deleted and the sum inserted in one
        transaction that checks they were all still there (two workers may fold at once: one
        wins, the other's sum is dropped)."""
        ids = [
            i
            for (i,) in self._conn.execute(
                "SELECT chunk_index FROM chunk_reports WHERE jid = ? AND chunk_index >= 0 ORDER BY chunk_index LIMIT ?",
                (jid, FOLD_CHUNKS),
            )
        ]
        if len(ids) < FOLD_CHUNKS:
            return False
        count_keys, (n,) = self._summed(jid, "counts", chunks=ids)
        term_keys, (neg, pos, n_all, first) = self._summed(jid, "terms", chunks=ids)
        row = packed_report(count_keys, [n], term_keys, [neg, pos, n_all, np.where(first == NO_ROW, -1, first)])
        try:
            with self._tx() as c:
                marks = ", ".join("?" * len(ids))
                gone = c.execute(f"DELETE FROM chunk_reports WHERE jid = ? AND chunk_index IN ({marks})", (jid, *ids))
                if gone.rowcount != len(ids):
                    raise _Raced
                c.execute(_INSERT_REPORT, (jid, -1 - ids[0], *row))  # folded: negative, by its first chunk
        except _Raced:
            return False
        return True

    def term_totals(self, jid: int) -> tuple[int, int, int]:
        row = self._conn.execute(
            "SELECT coalesce(sum(neg), 0) + (SELECT coalesce(sum(neg), 0) FROM chunk_reports WHERE jid = ?1),"
            " coalesce(sum(pos), 0) + (SELECT coalesce(sum(pos), 0) FROM chunk_reports WHERE jid = ?1),"
            " coalesce(sum(n_all), 0) + (SELECT coalesce(sum(n_all), 0) FROM chunk_reports WHERE jid = ?1)"
            " FROM report_terms WHERE jid = ?1",
            (jid,),
        ).fetchone()
        return tuple(int(x) for x in row)

    def iter_examples(self, jid: int) -> Iterator[tuple[str, str, str, int, str]]:
        yield from self._conn.execute(
            "SELECT dim, key, metric, row_index, data FROM report_examples WHERE jid = ?", (jid,)
        )

    def chunk_offset(self, jid: int, row_index: int) -> tuple[int, int] | None:
        """(start_row, byte_offset) of the chunk holding ``row_index``."""
        return self._conn.execute(
            "SELECT start_row, byte_offset FROM chunks WHERE jid = ? AND start_row <= ?"
            " ORDER BY chunk_index DESC LIMIT 1",
            (jid, row_index),
        ).fetchone()

    def error_rows(self, jid: int, limit: int) -> list[str]:
        rows = self._conn.execute(
            "SELECT body FROM results WHERE jid = ? AND is_error = 1 ORDER BY row_index LIMIT ?", (jid, limit)
        ).fetchall()
        return [r[0] for r in rows]

    def progress_rate(self, jid: int, window: float = 30.0) -> tuple[int, float] | None:
        """(rows, seconds) of the chunks committed in the last ``window`` seconds, timed from
        the first of them being leased to the last being committed."""
        row = self._conn.execute(
            "SELECT sum(n_rows), min(leased_at), max(committed_at) FROM chunks"
            " WHERE jid = ? AND state = 'done' AND committed_at >= ?",
            (jid, time.time() - window),
        ).fetchone()
        return None if row[0] is None else (row[0], row[2] - row[1])

    def get_summary(self, jid: int) -> str | None:
        row = self._conn.execute("SELECT summary FROM jobs WHERE jid = ?", (jid,)).fetchone()
        return row[0] if row else None

    def put_summary(self, jid: int, summary: str) -> None:
        """Cache a finished job's report; skipped while the disk is full (built again next time)."""
        try:
            with self._tx() as c:
                c.execute("UPDATE jobs SET summary = ? WHERE jid = ?", (summary, jid))
        except sqlite3.OperationalError as exc:
            if disk_problem(exc) is None:
                raise

    # -- retention ----------------------------------------------------------------
    def expired_jobs(self, before: float) -> list[JobRecord]:
        rows = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN (?, ?, ?) AND finished_at < ? ORDER BY jid",
            (*FINISHED, before),
        ).fetchall()
        return [_record(r) for r in rows]

    def delete_job(self, jid: int, batch: int = 50000) -> None:
        """Delete a job's rows; results go in short transactions so workers are not blocked."""
        last = self._conn.execute("SELECT max(row_index) FROM results WHERE jid = ?", (jid,)).fetchone()[0]
        for lo in range(0, (last or 0) + 1, batch):
            with self._tx() as c:
                c.execute(
                    "DELETE FROM results WHERE jid = ? AND row_index >= ? AND row_index < ?", (jid, lo, lo + batch)
                )
        with self._tx() as c:
            for table in ("chunks", "chunk_reports", "report_terms", "report_counts", "report_examples", "jobs"):
                c.execute(f"DELETE FROM {table} WHERE jid = ?", (jid,))
        self._conn.execute("PRAGMA incremental_vacuum")


NO_ROW = np.iinfo(np.int64).max  # the first-row column's "none" (stored as -1)
FOLD_CHUNKS = 64  # committed chunks whose report rows a worker folds into one (_fold_reports)
_REPORT_PARTS = {  # the chunk_reports columns of each part, and how each value column adds up
    "counts": ("count_keys, counts", (np.add,)),
    "terms": ("term_keys, terms", (np.add, np.add, np.add, np.minimum)),  # neg, pos, n_all, first row
}
_INSERT_REPORT = (
    "INSERT INTO chunk_reports (jid, chunk_index, count_keys, counts, term_keys, terms, neg, pos, n_all)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def chunk_report(out: ChunkOutput) -> tuple[bytes, bytes, bytes, bytes, int, int, int]:
    """A chunk's ``chunk_reports`` columns after (jid, chunk_index)."""
    neg, pos, n_all, first = zip(*out.terms.values()) if out.terms else ((), (), (), ())
    first = [-1 if row is None else row for row in first]  # the first negative row
    return packed_report(
        [_count_key(k) for k in out.counts], [list(out.counts.values())], list(out.terms), [neg, pos, n_all, first]
    )


def packed_report(count_keys: list[str], counts, term_keys: list[str], terms) -> tuple:
    """``chunk_reports`` columns: counter keys and values, term keys and values (each zlib
    level 1: a chunk's 180 KB in 28 KB, in under 2 ms) and the term columns' totals."""
    terms = np.asarray(terms, "<i8").reshape(4, -1)
    return (
        _packed(jsonbytes.dumps(count_keys)),
        _packed(np.asarray(counts, "<i8").tobytes()),
        _packed(jsonbytes.dumps(term_keys)),
        _packed(terms.tobytes()),
        *(int(total) for total in terms[:3].sum(axis=1)),
    )


def _packed(data: bytes) -> bytes:
    return zlib.compress(data, 1)


def _count_key(key: tuple[str, str, str]) -> str:
    """A counter key as one string (any characters survive): the JSON text of the triple."""
    return jsonbytes.dumps(key).decode()


class ColumnSums:
    """Per-key totals of value columns read chunk by chunk. Each chunk's string keys are
    numbered by the compiled vocabulary table, and the entries are reduced into running totals
    by numpy (``ufunc.at``) every ``FOLD_ENTRIES`` of them, so memory stays bounded by the
    distinct keys: a 100,000-row job's 780,000 entries are summed in a tenth of a second,
    where adding them into a dict of lists took a second."""

    FOLD_ENTRIES = 500_000

    def __init__(self, reducers: tuple[np.ufunc, ...]):
        self.reducers = reducers
        self.keys: list[str] = []  # by number
        self._table = Vocab()
        self._totals = [np.zeros(0, np.int64) for _ in reducers]
        self._pending: list[tuple[np.ndarray, Any]] = []  # (ids, columns) not yet in the totals
        self._n_pending = 0

    def add(self, keys: list[str], columns) -> None:
        """One chunk's entries: ``keys`` distinct, ``columns[c][i]`` the value of ``keys[i]``."""
        ids = np.frombuffer(self._table.add(keys), np.int32)
        self.keys.extend(itertools.compress(keys, ids >= len(self.keys)))  # the new ones, in number order
        self._pending.append((ids, columns))
        self._n_pending += len(ids)
        if self._n_pending >= self.FOLD_ENTRIES:
            self._fold()

    def result(self) -> tuple[list[str], list[np.ndarray]]:
        """The keys in first-seen order and each column's totals in that order."""
        self._fold()
        return self.keys, self._totals

    def _fold(self) -> None:
        n = len(self.keys)
        ids = np.concatenate([np.zeros(0, np.int32), *(i for i, _ in self._pending)])
        for c, reduce in enumerate(self.reducers):
            empty = NO_ROW if reduce is np.minimum else 0
            total = np.concatenate([self._totals[c], np.full(n - len(self._totals[c]), empty, np.int64)])
            values = np.concatenate([np.zeros(0, np.int64), *(np.asarray(v[c], np.int64) for _, v in self._pending)])
            if reduce is np.minimum:  # -1 stands for none
                values = np.where(values < 0, NO_ROW, values)
            reduce.at(total, ids, values)
            self._totals[c] = total
        self._pending, self._n_pending = [], 0


class _LeaseLost(Exception):
    """The chunk is no longer leased to the committing worker; its work is discarded."""


class _Raced(Exception):
    """Another worker folded some of the same report rows first; this fold is dropped."""


def _fail(c: sqlite3.Connection, jid: int, code: str, message: str) -> None:
    c.execute(
        "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished_at = ?"
        " WHERE jid = ? AND status IN ('queued', 'running')",
        (code, message, time.time(), jid),
    )


def _record(row: tuple) -> JobRecord:
    values = list(row)
    values[9] = json.loads(values[9])
    values[11] = json.loads(values[11]) if values[11] else None
    return JobRecord(*values)
