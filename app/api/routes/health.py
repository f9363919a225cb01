"""Liveness, readiness and the code list clients build their UI from."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core import taxonomy as T

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": 'models still loading: {"status": "loading"}'}})
async def readyz(request: Request):
    """Ready once the models are loaded; ``jobs`` says how batch jobs are, without changing
    that: the review API serves even when the job database cannot be used."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    return {"status": "ready", "model": pipeline.versions, "jobs": jobs_health(request.app.state)}


def jobs_health(state) -> dict:
    """``ok``; ``unavailable`` with the message every jobs endpoint answers (503); or
    ``paused`` with the notice the workers report (e.g. the disk is full)."""
    if getattr(state, "jobs_unavailable", None):
        return {"status": "unavailable", "message": state.jobs_unavailable}
    runner = getattr(state, "job_runner", None)
    notice = runner.notice() if runner is not None else None
    return {"status": "paused", "notice": notice} if notice else {"status": "ok"}


@router.get("/v1/taxonomy")
def taxonomy(request: Request):
    """The codes responses carry, with Chinese names where a person reads them, and the model
    versions served."""
    pipeline = getattr(request.app.state, "pipeline", None)
    return {
        "aspects": [{"code": c, "name_zh": T.ASPECT_NAMES_ZH[c]} for c in T.ASPECTS],
        "sentiment_labels": list(T.SENTIMENT_LABELS),
        "polarities": list(T.POLARITIES),
        "grades": [{"code": code, "name_zh": zh, "min_score": floor} for floor, code, zh in T.GRADES],
        "qa_dimensions": [{"code": c, "name_zh": T.QA_DIMENSION_NAMES_ZH[c]} for c in T.QA_DIMENSIONS],
        "violation_rules": list(T.VIOLATION_RULES),
        "severities": list(T.SEVERITIES),
        "forbidden_categories": list(T.FORBIDDEN_CATEGORIES),
        "violation_codes": [{"code": c, "name_zh": T.VIOLATION_NAMES_ZH[c]} for c in T.VIOLATION_CODES],
        "satisfaction": [{"code": c, "name_zh": T.SATISFACTION_ZH[c]} for c in T.SATISFACTION_LEVELS],
        "emotions": [{"code": c, "name_zh": T.EMOTIONS_ZH[c]} for c in T.EMOTIONS],
        "escalation_levels": list(T.ESCALATION_LEVELS),
        "resolution_statuses": list(T.RESOLUTION_STATUSES),
        "names_zh": T.NAMES_ZH,  # every kind's code -> Chinese name: what the *_zh fields say
        "model": pipeline.versions if pipeline else None,
    }
