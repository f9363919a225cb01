"""Review analysis: one text, or a batch where bad items keep their own slot."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.api.deps import loaded
from app.api.metrics import texts_analysed
from app.api.schemas import (
    ERRORS,
    AnalyzeRequest,
    AnalyzeResponse,
    BatchRequest,
    BatchResponse,
    ReviewItem,
    first_error,
)
from app.api.work import to_json
from app.core.errors import TooManyItems
from app.pipeline import present
from app.pipeline.engine import Pipeline, TextItem
from app.pipeline.findings import Analysis, ItemError
from app.pipeline.summary import summarize

router = APIRouter(prefix="/v1", tags=["reviews"])


def json_response(data: bytes) -> Response:
    return Response(data, media_type="application/json")


def analyze_one(pipeline: Pipeline, req: AnalyzeRequest, top_terms: int) -> dict:
    body = present.analysis(
        pipeline.analyze(req.text, req.id, top_terms=top_terms), pipeline.versions, with_terms=bool(top_terms)
    )
    if req.meta is not None:
        body["meta"] = req.meta
    return body


@router.post("/analyze", response_model=AnalyzeResponse, responses=ERRORS)
async def analyze(req: AnalyzeRequest, request: Request):
    pipeline, settings = loaded(request, "pipeline"), request.app.state.settings
    k = settings.top_terms if req.top_terms is None else req.top_terms
    if len(req.text) <= settings.inline_max_chars:
        # ~1-2 ms of CPU: inline is cheaper than a thread hop and cannot stall the loop.
        body = to_json(analyze_one(pipeline, req, k))
    else:
        body = await loaded(request, "analysis_pool").run_json(analyze_one, pipeline, req, k)
    texts_analysed(request, "review")
    return json_response(body)


def parse_item(raw: Any) -> ReviewItem | ItemError:
    """A batch item through the single endpoint's validator (``ReviewItem``); a bad one
    becomes its slot's error, with the same code and wording the single endpoint answers."""
    if not isinstance(raw, dict):
        return ItemError(None, "invalid_item", f"item must be an object with a 'text' field, not {type(raw).__name__}")
    try:
        return ReviewItem.model_validate(raw)
    except ValidationError as exc:
        code, message = first_error(exc.errors())
        rid = raw.get("id")
        return ItemError(str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None, code, message)


def analyze_items(pipeline: Pipeline, raw_items: list[Any], top_terms: int) -> list[dict]:
    """Each item's response body (or its slot's error), in order; ``meta`` is echoed."""
    parsed = [parse_item(r) for r in raw_items]
    good = [p for p in parsed if isinstance(p, ReviewItem)]
    analysed = iter(pipeline.analyze_batch([TextItem(p.text, p.id) for p in good], top_terms=top_terms))
    versions = pipeline.versions
    out = []
    for item in parsed:
        result = item if isinstance(item, ItemError) else next(analysed)
        if isinstance(result, ItemError):
            out.append((result, present.item_error(result)))
            continue
        body = present.analysis(result, versions, with_terms=bool(top_terms))
        if item.meta is not None:
            body["meta"] = item.meta
        out.append((result, body))
    return out


SUB_BATCH = 100  # items analysed together: the models vectorise well past this, and the
# peak memory of a maximum batch (its segmented documents) stays a tenth of the whole


def batch_body(pipeline: Pipeline, raw_items: list[Any], top_terms: int) -> dict:
    done: list[tuple[Analysis | ItemError, dict]] = []
    for i in range(0, len(raw_items), SUB_BATCH):
        done += analyze_items(pipeline, raw_items[i : i + SUB_BATCH], top_terms)
    return {"results": [body for _, body in done], "summary": summarize(r for r, _ in done)}


def check_batch_size(n_items: int, n_chars: int, settings, what: str = "items") -> None:
    """413 before any analysis when a batch is too many items or too many characters."""
    limit = settings.max_batch_items if what == "items" else settings.max_batch_conversations
    if not n_items:
        raise TooManyItems(f"items is empty; send 1 to {limit} {what}", code="empty_batch")
    if n_items > limit:
        raise TooManyItems(f"{n_items} {what}; the limit is {limit}")
    if n_chars > settings.max_batch_chars:
        raise TooManyItems(
            f"the {what} hold {n_chars} characters in all; the limit per batch is "
            f"{settings.max_batch_chars} (PINGJIA_MAX_BATCH_CHARS): split the batch or "
            "submit a job (POST /v1/jobs)",
            code="batch_too_large",
        )


@router.post("/analyze/batch", response_model=BatchResponse, responses=ERRORS)
async def analyze_batch(req: BatchRequest, request: Request):
    pipeline, pool, settings = loaded(request, "pipeline"), loaded(request, "analysis_pool"), request.app.state.settings
    chars = sum(len(r["text"]) for r in req.items if isinstance(r, dict) and isinstance(r.get("text"), str))
    check_batch_size(len(req.items), chars, settings)
    k = settings.top_terms if req.top_terms is None else req.top_terms
    body = await pool.run_json(batch_body, pipeline, req.items, k)
    texts_analysed(request, "review", len(req.items))
    return json_response(body)
