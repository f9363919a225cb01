"""Job operations the routes and the CLI share: submit, status, summary, prune.

No HTTP here: the routes translate requests into these calls and back. Submitting is two
steps: ``ingest_*`` writes the work file (run by the API in an ``IngestPool`` process: it is
per-row work), then ``create_job`` records the job.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from app.core.errors import InsufficientStorage
from app.jobs.ingest import Ingested, InputSpec, ingest_file, ingest_items
from app.jobs.qa_report import build_chat_report
from app.jobs.readers import guess_format
from app.jobs.report import ReportSource, build_report
from app.jobs.store import JobRecord, JobStore, NewJob, open_store
from app.jobs.upload import open_private
from app.jobs.workfile import read_chunk

WORK_FILE = "work.jsonl"
UPLOAD_FILE = "upload.raw"
BODY_FILE = "body.json"  # a JSON job's request body, spooled


def db_url(settings) -> str:
    """The job store: ``jobs_db_url`` when set, else SQLite at ``data_dir/jobs.db``."""
    return settings.jobs_db_url or str(Path(settings.data_dir) / "jobs.db")


def jobs_dir(settings) -> Path:
    return Path(settings.data_dir) / "jobs"


def new_job_dir(settings) -> tuple[str, Path]:
    """A fresh job id and its (created) directory for the upload and the work file; only
    the service's user can enter it (uploads hold customers' texts)."""
    job_id = uuid.uuid4().hex
    root = jobs_dir(settings)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = root / job_id
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # exactly, whatever the umask
    return job_id, path


@contextmanager
def storage_errors() -> Iterator[None]:
    """A full disk or quota while storing a job's files is 507 with the reason, not a 500."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise InsufficientStorage(
            f"the service's disk is full ({os.strerror(exc.errno)}); the job was not created: retry later"
        ) from None


def discard(path: Path) -> None:
    """Remove a job directory whose submission was refused."""
    shutil.rmtree(path, ignore_errors=True)


def ingest_upload(folder: Path, spec: InputSpec, filename: str | None, chunk_rows: int) -> tuple[Ingested, dict]:
    """The spooled upload validated and rewritten as the work file; returns what ``create_job``
    needs, with the input's description. The upload is kept (private, pruned with the job): the
    readable CSV export re-reads its rows to give them back with every original column."""
    raw = folder / UPLOAD_FILE
    size = raw.stat().st_size
    with open(raw, "rb") as f:
        ingested = ingest_stream(folder, spec, f, filename, chunk_rows)
    return ingested, {"filename": filename, "bytes": size}


def ingest_stream(folder: Path, spec: InputSpec, raw: IO[bytes], filename: str | None, chunk_rows: int) -> Ingested:
    """The work file from a binary stream (the spooled upload, or a file/stdin for ``pingjia score``)."""
    fmt = spec.fmt or guess_format(filename, raw.peek(4096)[:4096] if hasattr(raw, "peek") else b"")
    with open_private(folder / WORK_FILE) as out:
        ingested = ingest_file(raw, out, spec, fmt=fmt, chunk_rows=chunk_rows)
        _durable(out, folder)
    return ingested


def ingest_json_items(folder: Path, spec: InputSpec, items: Iterable[Any], chunk_rows: int) -> Ingested:
    """The work file from the ``items`` of a JSON body."""
    with open_private(folder / WORK_FILE) as out:
        ingested = ingest_items(items, out, spec, chunk_rows=chunk_rows)
        _durable(out, folder)
    return ingested


def submit_stream(
    store: JobStore, settings, job_id: str, folder: Path, spec: InputSpec, raw: IO[bytes], filename: str | None
) -> JobRecord:
    """A job from a binary stream, in this process (``pingjia score``)."""
    ingested = ingest_stream(folder, spec, raw, filename, settings.job_chunk_rows)
    return create_job(store, job_id, folder, spec, ingested, {"filename": filename})


def submit_items(
    store: JobStore, settings, job_id: str, folder: Path, spec: InputSpec, items: Iterable[Any]
) -> JobRecord:
    """A job from JSON items, in this process (tests, scripts)."""
    ingested = ingest_json_items(folder, spec, items, settings.job_chunk_rows)
    return create_job(store, job_id, folder, spec, ingested, {})


def _durable(out: IO[bytes], folder: Path) -> None:
    """The work file is on disk before the job row that points at it is committed."""
    out.flush()
    os.fsync(out.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_job(
    store: JobStore,
    job_id: str,
    folder: Path,
    spec: InputSpec,
    ing: Ingested,
    extra: dict,
    owner: str | None = None,
) -> JobRecord:
    """Record an ingested job (queued), owned by the submitting API key's id (None: keys off)."""
    params = {
        "input": {
            "format": ing.fmt,
            "text_column": spec.text_column,
            "id_column": spec.id_column,
            "encoding": spec.encoding,
            "rows_refused_at_ingest": ing.bad_rows,
            **extra,
        },
        "plan": ing.plan,
        "columns": ing.columns,  # the upload's own, for the readable CSV (not shown in the status)
    }
    return store.create_job(
        NewJob(job_id, spec.kind, ing.total, params, str(folder / WORK_FILE), ing.chunks, owner=owner)
    )


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def visible(rec: JobRecord | None, owner: str | None) -> JobRecord | None:
    """``rec`` when the caller may see it: every job with keys off (``owner`` None), else only
    the key's own — another key's job is answered like an unknown one."""
    return rec if rec is not None and (owner is None or rec.owner == owner) else None


def links(rec: JobRecord) -> dict[str, str]:
    base = f"/v1/jobs/{rec.job_id}"
    return {"self": base, "results": f"{base}/results", "summary": f"{base}/summary"}


def list_view(store: JobStore, owner: str | None, limit: int, offset: int) -> dict:
    """What ``GET /v1/jobs`` answers: a page of the caller's jobs, newest first, with the total."""
    records, total = store.list_jobs(owner, limit, offset)
    jobs = [{**_basics(r), "links": links(r)} for r in records]
    return {"jobs": jobs, "total": total, "limit": limit, "offset": offset}


def _basics(rec: JobRecord) -> dict:
    """The fields a job's status and its line in the job list share."""
    return {
        "job_id": rec.job_id,
        "kind": rec.kind,
        "status": rec.status,
        "done": rec.done,
        "total": rec.total,
        "errors": rec.errors,
        "progress": round(rec.done / rec.total, 4) if rec.total else 1.0,
        "created_at": iso(rec.created_at),
        "finished_at": iso(rec.finished_at),
    }


def status_view(store: JobStore, rec: JobRecord) -> dict:
    """What ``GET /v1/jobs/{id}`` answers: progress, speed, ETA and times."""
    now = time.time()
    rate = None
    if rec.run_started_at is not None:
        end = rec.finished_at if rec.finished else now
        processed = rec.done - rec.run_done_start
        if processed > 0 and end > rec.run_started_at:
            rate = processed / (end - rec.run_started_at)
    if not rec.finished:
        recent = store.progress_rate(rec.jid)  # last 30 s, when there is enough to tell
        if recent and recent[1] >= 5:
            rate = recent[0] / recent[1]
    eta = None
    if not rec.finished and rate:
        eta = round((rec.total - rec.done) / rate, 1)
    return {
        **_basics(rec),
        "rows_per_second": round(rate, 1) if rate else None,
        "eta_seconds": eta,
        "started_at": iso(rec.started_at),
        "error": {"code": rec.error_code, "message": rec.error_message} if rec.error_code else None,
        "input": rec.params.get("input", {}),
        "report_plan": {k: rec.params.get("plan", {}).get(k) for k in ("group_columns", "date_column")},
        "model": rec.model,
        "links": links(rec),
    }


class StoreSource:
    """``ReportSource`` over one job in the store (texts come from its work file)."""

    def __init__(self, store: JobStore, rec: JobRecord):
        self.store, self.rec = store, rec

    def iter_counts(self):
        return self.store.iter_counts(self.rec.jid)

    def iter_terms(self):
        return self.store.iter_terms(self.rec.jid)

    def term_totals(self):
        return self.store.term_totals(self.rec.jid)

    def texts(self, rows: list[int]) -> dict[int, tuple[str, str]]:
        out = {}
        for row in sorted(set(rows)):
            found = self.store.chunk_offset(self.rec.jid, row)
            if found is None or not Path(self.rec.work_path).exists():
                continue
            start, offset = found
            work_row = read_chunk(self.rec.work_path, offset, row - start + 1)[-1]
            out[row] = (work_row.id, example_text(work_row.payload))
        return out

    def iter_examples(self):
        return self.store.iter_examples(self.rec.jid)

    def error_examples(self, limit: int) -> list[dict]:
        out = []
        for body in self.store.error_rows(self.rec.jid, limit):
            b = json.loads(body)
            out.append({"row": b["row"], "id": b["id"], **b["error"]})
        return out


def example_text(payload: Any) -> str:
    """The text a report example shows: a review's text; a conversation's customer turns."""
    if isinstance(payload, dict):  # a conversation: what the customer said
        turns = payload.get("turns") or []
        return " / ".join(str(t.get("text", "")) for t in turns if isinstance(t, dict) and t.get("role") == "customer")
    return str(payload)


def summary_of(
    source: ReportSource, plan: dict, kind: str, model: dict | None, status: str = "done", job_id: str | None = None
) -> dict:
    """The summary body from a report source: the job's (``summary``) or any other whose counters
    were summed elsewhere (the Spark integration's)."""
    return {
        "job_id": job_id,
        "kind": kind,
        "status": status,
        "complete": status == "done",
        "generated_at": iso(time.time()),
        "model": model,
        "sentiment_source": "customer's sentiment at the end of the conversation"
        if kind == "conversations"
        else "the review's sentiment",
        **(build_chat_report if kind == "conversations" else build_report)(source, plan),
    }


def summary(store: JobStore, rec: JobRecord) -> dict:
    """The report of a job (cached once the job is done; partial while it runs); a chat
    job's adds the ``qa`` section (per agent, per channel, overall)."""
    if rec.status == "done":
        cached = store.get_summary(rec.jid)
        if cached:
            return json.loads(cached)
    plan = rec.params.get("plan", {})
    report = summary_of(StoreSource(store, rec), plan, rec.kind, rec.model, rec.status, rec.job_id)
    if rec.status == "done":
        store.put_summary(rec.jid, json.dumps(report, ensure_ascii=False))
    return report


def prune_jobs(store_or_url: JobStore | str, settings, *, now: float | None = None) -> list[str]:
    """Delete jobs finished more than ``job_retention_days`` ago, with their files, and
    job directories a refused/crashed submission left behind (older than a day)."""
    store = open_store(store_or_url) if isinstance(store_or_url, str) else store_or_url
    now = time.time() if now is None else now
    removed = []
    try:
        for rec in store.expired_jobs(now - settings.job_retention_days * 86400):
            store.delete_job(rec.jid)
            discard(jobs_dir(settings) / rec.job_id)
            removed.append(rec.job_id)
        root = jobs_dir(settings)
        if root.is_dir():
            for d in root.iterdir():
                if d.is_dir() and d.stat().st_mtime < now - 86400 and store.get_job(d.name) is None:
                    discard(d)
    finally:
        if isinstance(store_or_url, str):
            store.close()
    return removed
