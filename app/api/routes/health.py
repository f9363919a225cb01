"""Liveness, readiness and the code list clients build their UI from."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.pipeline.findings import ASPECT_NAMES_ZH, ASPECTS, POLARITIES, SENTIMENT_LABELS

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz():
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request):
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        return JSONResponse({"status": "loading"}, status_code=503)
    return {"status": "ready", "model": pipeline.versions}


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
