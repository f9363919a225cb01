"""Liveness, readiness and the code list clients build their UI from."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.pipeline.findings import ASPECT_NAMES_ZH, ASPECTS, POLARITIES, SENTIMENT_LABELS

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "models still loading: {\"status\": \"loading\"}"}})
def readyz(request: Request):
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
    pipeline = getattr(request.app.state, "pipeline", None)
    return {
        "aspects": [{"code": c, "name_zh": ASPECT_NAMES_ZH[c]} for c in ASPECTS],
        "sentiment_labels": list(SENTIMENT_LABELS),
        "polarities": list(POLARITIES),
        "grades": [
            {"code": "excellent", "name_zh": "优秀", "min_score": 90},
            {"code": "good", "name_zh": "良好", "min_score": 80},
            {"code": "pass", "name_zh": "合格", "min_score": 60},
            {"code": "needs_improvement", "name_zh": "待改进", "min_score": 0},
        ],
        "model": pipeline.versions if pipeline else None,
    }
