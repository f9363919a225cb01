"""Review analysis: one text, or a batch where bad items keep their own slot."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api import present
from app.api.deps import PipelineDep, SettingsDep
from app.api.schemas import (
    ERRORS,
    AnalyzeRequest,
    AnalyzeResponse,
    BatchRequest,
    BatchResponse,
)
from app.core.errors import TooManyItems
from app.pipeline.engine import Pipeline, TextItem
from app.pipeline.findings import Analysis, ItemError
from app.pipeline.summary import summarize

router = APIRouter(prefix="/v1", tags=["reviews"])


@router.post("/analyze", response_model=AnalyzeResponse, responses=ERRORS)
async def analyze(req: AnalyzeRequest, pipeline: PipelineDep, settings: SettingsDep):
    # Inline on the event loop: one text is ~1-2 ms of CPU (≤ ~40 ms at the length limit),
    # and a threadpool hop costs more than it saves under the GIL.
    k = settings.top_terms if req.top_terms is None else req.top_terms
    body = present.analysis(pipeline.analyze(req.text, req.id, top_terms=k), pipeline.versions,
                            with_terms=bool(k))
    if req.meta is not None:
        body["meta"] = req.meta
    return JSONResponse(body)


def analyze_items(pipeline: Pipeline, raw_items: list[Any], top_terms: int) -> list[Analysis | ItemError]:
    """Analyse the object items; anything else gets an ``invalid_item`` error in its slot."""
    items = [TextItem(r.get("text"), None if r.get("id") is None else str(r.get("id")))
             for r in raw_items if isinstance(r, dict)]
    analysed = iter(pipeline.analyze_batch(items, top_terms=top_terms))
    return [next(analysed) if isinstance(r, dict) else
            ItemError(None, "invalid_item", f"item must be an object with a 'text' field, not {type(r).__name__}")
            for r in raw_items]


@router.post("/analyze/batch", response_model=BatchResponse, responses=ERRORS)
async def analyze_batch(req: BatchRequest, pipeline: PipelineDep, settings: SettingsDep):
    if not req.items:
        raise TooManyItems("items is empty; send 1 to "
                           f"{settings.max_batch_items} items", code="empty_batch", status=422)
    if len(req.items) > settings.max_batch_items:
        raise TooManyItems(f"{len(req.items)} items; the limit is {settings.max_batch_items}")
    k = settings.top_terms if req.top_terms is None else req.top_terms
    results = await run_in_threadpool(analyze_items, pipeline, req.items, k)
    versions = pipeline.versions
    return JSONResponse({
        "results": [present.item_error(r) if isinstance(r, ItemError)
                    else present.analysis(r, versions, with_terms=bool(k)) for r in results],
        "summary": summarize(results),
    })
