"""Large inputs as background jobs (API.md, "Jobs"): submit, poll, results, summary, cancel."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from app.api.deps import SettingsDep, StoreDep
from app.api.job_schemas import (
    JobAccepted,
    JobForm,
    JobItemsRequest,
    JobStatus,
    JobSummary,
)
from app.api.schemas import ERRORS
from app.core.errors import Conflict, InvalidUpload, NotFound
from app.jobs import export, service
from app.jobs.ingest import read_limited, spool_multipart
from app.jobs.scoring import conversations_available
from app.jobs.store import JobRecord, JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


SUBMIT_DOC = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "CSV or JSONL"},
        **{k: {"type": "string", "description": v.description or ""} for k, v in JobForm.model_fields.items()}}}},
    "application/json": {"schema": JobItemsRequest.model_json_schema()}}}}





def _job(store: JobStore, job_id: str) -> JobRecord:
    rec = store.get_job(job_id)
    if rec is None:
        raise NotFound(f"job {job_id!r} not found (unknown, or pruned after its retention period)")
    return rec


def _parse(model, data, *, json_body: bool = False):
    try:
        return model.model_validate_json(data) if json_body else model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


@router.post("", status_code=202, response_model=JobAccepted, responses=ERRORS, openapi_extra=SUBMIT_DOC)
async def submit(request: Request, store: StoreDep, settings: SettingsDep):
    """Spool the upload to disk, validate it, queue it: 202 with the job id."""
    ctype = request.headers.get("content-type", "")
    job_id, folder = service.new_job_dir(settings)
    try:
        if ctype.startswith("multipart/form-data"):
            spooled = await spool_multipart(request.stream(), ctype, folder / service.UPLOAD_FILE,
                                            settings.max_upload_bytes)
            spec = _parse(JobForm, spooled.fields).spec()
            _check_kind(spec.kind)
            rec = await run_in_threadpool(service.submit_upload, store, settings, job_id, folder, spec,
                                          spooled.filename)
        elif ctype.startswith("application/json"):
            req = _parse(JobItemsRequest, await read_limited(request.stream(), settings.max_body_bytes),
                         json_body=True)
            _check_kind(req.kind)
            rec = await run_in_threadpool(service.submit_items, store, settings, job_id, folder, req.spec(),
                                          req.items)
        else:
            raise InvalidUpload("send multipart/form-data (field 'file') or application/json {\"items\": [...]}",
                                code="unsupported_media_type", status=415)
    except BaseException:
        service.discard(folder)
        raise
    runner = getattr(request.app.state, "job_runner", None)
    if runner is not None:
        runner.notify()
    view = service.status_view(store, rec)
    return JSONResponse({"job_id": rec.job_id, "status": rec.status, "total": rec.total, "links": view["links"]},
                        status_code=202)


def _check_kind(kind: str) -> None:
    if kind == "conversations" and not conversations_available():
        raise InvalidUpload("kind 'conversations' is not available in this build", code="unsupported_kind")


@router.get("/{job_id}", response_model=JobStatus, responses=ERRORS)
def status(job_id: str, store: StoreDep):
    """Status, done/total, errors, rows per second and ETA."""
    return JSONResponse(service.status_view(store, _job(store, job_id)))


@router.get("/{job_id}/results", responses={**ERRORS, 200: {"content": {
    "application/x-ndjson": {}, "text/csv": {}}, "description": "one line per input row, in input order"}})
def results(job_id: str, store: StoreDep,
            format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl",
            bom: Annotated[bool, Query(description="CSV only: prepend a UTF-8 BOM for Excel")] = False):
    """Every row exactly once, with its id, in input order (409 while the job runs)."""
    rec = _job(store, job_id)
    if not rec.finished:
        raise Conflict(f"job is {rec.status} ({rec.done}/{rec.total}); results are ready when it is done",
                       code="job_not_done")
    rows = store.iter_results(rec.jid)
    headers = {"X-Pingjia-Job-Status": rec.status, "X-Pingjia-Rows": str(rec.done),
               "Content-Disposition": f'attachment; filename="{rec.job_id}.{format}"'}
    if format == "csv":
        return StreamingResponse(export.csv_stream(rows, rec.kind, bom=bom), media_type="text/csv; charset=utf-8",
                                 headers=headers)
    return StreamingResponse(export.jsonl_stream(rows), media_type="application/x-ndjson", headers=headers)


@router.get("/{job_id}/summary", response_model=JobSummary, responses=ERRORS)
def summary(job_id: str, store: StoreDep):
    """The 差评报表 (partial, ``complete: false``, while the job runs)."""
    return JSONResponse(service.summary(store, _job(store, job_id)))


@router.delete("/{job_id}", response_model=JobStatus, responses=ERRORS)
def cancel(job_id: str, store: StoreDep):
    """Cancel a queued or running job (409 if it already finished)."""
    rec = _job(store, job_id)
    if rec.finished:
        raise Conflict(f"job is already {rec.status}", code="job_finished")
    return JSONResponse(service.status_view(store, store.cancel_job(job_id)))
