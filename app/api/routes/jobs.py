"""Large inputs as background jobs (API.md, "Jobs"): submit, poll, results, summary, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from app.api.deps import JobNoticeDep, SettingsDep, StoreDep
from app.api.job_schemas import (
    JobAccepted,
    JobForm,
    JobItemsRequest,
    JobListResponse,
    JobStatus,
    JobSummary,
    ingest_json_body,
)
from app.api.schemas import JOB_ERRORS, errors
from app.api.security import OwnerDep
from app.core.errors import Conflict, InvalidUpload, NotFound, TooManyJobs
from app.jobs import export, service
from app.jobs.ingest_pool import IngestPool
from app.jobs.store import JobRecord, JobStore
from app.jobs.upload import spool_body, spool_multipart

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


SUBMIT_DOC = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "CSV or JSONL"},
                        **{
                            k: {"type": "string", "description": v.description or ""}
                            for k, v in JobForm.model_fields.items()
                        },
                    },
                }
            },
            "application/json": {"schema": JobItemsRequest.model_json_schema()},
        }
    }
}


def _job(store: JobStore, job_id: str, owner: str | None) -> JobRecord:
    rec = service.visible(store.get_job(job_id), owner)
    if rec is None:  # unknown, pruned, or another key's: the same answer
        raise NotFound(f"job {job_id!r} not found (unknown, or pruned after its retention period)")
    return rec


def _parse(model, data):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


async def _ingest(pool: IngestPool | None, fn, *args):
    """``fn(*args)`` in the app's ingest process; in a thread here for apps built without one (tests)."""
    return await (pool.run(fn, *args) if pool is not None else run_in_threadpool(fn, *args))


@router.post(
    "", status_code=202, response_model=JobAccepted, responses=errors(404, 409, 415, 429, 507), openapi_extra=SUBMIT_DOC
)
async def submit(request: Request, store: StoreDep, settings: SettingsDep, owner: OwnerDep):
    """Spool the upload to disk, validate it (in the ingest process), queue it: 202 with the job id."""
    cap = settings.max_queued_jobs_per_key
    if cap and await run_in_threadpool(store.active_jobs, owner) >= cap:
        raise TooManyJobs(
            f"{cap} jobs of this key are queued or running (PINGJIA_MAX_QUEUED_JOBS_PER_KEY); "
            "retry when one has finished, or cancel one"
        )
    ctype = request.headers.get("content-type", "")
    pool, rows = getattr(request.app.state, "ingest_pool", None), settings.job_chunk_rows
    with service.storage_errors():
        job_id, folder = service.new_job_dir(settings)
        try:
            if ctype.startswith("multipart/form-data"):
                spooled = await spool_multipart(
                    request.stream(), ctype, folder / service.UPLOAD_FILE, settings.max_upload_bytes
                )
                spec = _parse(JobForm, spooled.fields).spec()
                ingested, extra = await _ingest(pool, service.ingest_upload, folder, spec, spooled.filename, rows)
            elif ctype.startswith("application/json"):
                await spool_body(request.stream(), folder / service.BODY_FILE, settings.max_body_bytes)
                try:
                    spec, ingested = await _ingest(pool, ingest_json_body, folder, rows)
                except ValidationError as exc:
                    raise RequestValidationError(exc.errors()) from None
                extra = {}
            else:
                raise InvalidUpload(
                    "send multipart/form-data (field 'file') or application/json {\"items\": [...]}",
                    code="unsupported_media_type",
                )
            rec = await run_in_threadpool(service.create_job, store, job_id, folder, spec, ingested, extra, owner)
        except BaseException:
            service.discard(folder)
            raise
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.notify()
    view = service.status_view(store, rec)
    return JSONResponse(
        {"job_id": rec.job_id, "status": rec.status, "total": rec.total, "links": view["links"]}, status_code=202
    )


@router.get("", response_model=JobListResponse, responses=JOB_ERRORS)
def list_jobs(
    store: StoreDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
):
    """The caller's jobs, newest first, with status and counts (a lost job id is found here)."""
    return JSONResponse(service.list_view(store, owner, limit, offset))


@router.get("/{job_id}", response_model=JobStatus, responses=JOB_ERRORS)
def status(job_id: str, store: StoreDep, notice: JobNoticeDep, owner: OwnerDep):
    """Status, done/total, errors, rows per second and ETA; ``notice`` while workers wait (disk full)."""
    rec = _job(store, job_id, owner)
    return JSONResponse({**service.status_view(store, rec), "notice": None if rec.finished else notice})


@router.get(
    "/{job_id}/results",
    responses={
        **JOB_ERRORS,
        200: {
            "content": {"application/x-ndjson": {}, "text/csv": {}},
            "description": "one line per input row, in input order",
        },
    },
)
def results(
    job_id: str,
    store: StoreDep,
    owner: OwnerDep,
    format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl",
    bom: Annotated[bool, Query(description="CSV only: prepend a UTF-8 BOM for Excel (bom=false: none)")] = True,
    columns: Annotated[
        str,
        Query(
            pattern="^(readable|codes)$",
            description="CSV only: readable (the upload's columns, then the findings in Chinese) or codes "
            "(English headers and codes, for integrations)",
        ),
    ] = "readable",
):
    """Every row exactly once, with its id, in input order (409 while the job runs)."""
    rec = _job(store, job_id, owner)
    if not rec.finished:
        raise Conflict(
            f"job is {rec.status} ({rec.done}/{rec.total}); results are ready when it is done", code="job_not_done"
        )
    rows = store.iter_results(rec.jid)
    headers = {
        "X-Pingjia-Job-Status": rec.status,
        "X-Pingjia-Rows": str(rec.done),
        "Content-Disposition": f'attachment; filename="{rec.job_id}.{format}"',
    }
    if format == "csv":
        return StreamingResponse(
            export.job_csv(rec, rows, columns=columns, bom=bom), media_type="text/csv; charset=utf-8", headers=headers
        )
    return StreamingResponse(export.jsonl_stream(rows), media_type="application/x-ndjson", headers=headers)


@router.get("/{job_id}/summary", response_model=JobSummary, responses=JOB_ERRORS)
def summary(job_id: str, store: StoreDep, owner: OwnerDep):
    """The 差评报表 (partial, ``complete: false``, while the job runs)."""
    return JSONResponse(service.summary(store, _job(store, job_id, owner)))


@router.delete("/{job_id}", response_model=JobStatus, responses=JOB_ERRORS)
def cancel(job_id: str, store: StoreDep, owner: OwnerDep):
    """Cancel a queued or running job (409 if it already finished)."""
    rec = _job(store, job_id, owner)
    if rec.finished:
        raise Conflict(f"job is already {rec.status}", code="job_finished")
    return JSONResponse(service.status_view(store, store.cancel_job(job_id)))
