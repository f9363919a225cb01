"""Help-desk transcript inspection: one conversation, or a batch where bad ones keep their slot."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request

from app.api.conversation_schemas import (
    ConversationBatchRequest,
    ConversationBatchResponse,
    ConversationRequest,
    ConversationResponse,
)
from app.api.deps import loaded
from app.api.metrics import texts_analysed
from app.api.routes.analyze import check_batch_size, json_response
from app.api.schemas import ERRORS
from app.conversations import (
    Limits,
    analyze_conversation,
    analyze_conversations,
    present,
)

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _report(raw: dict, pipeline, rules, limits: Limits) -> dict:
    return present.report(analyze_conversation(raw, pipeline, rules, limits))


def _batch(items: list[Any], pipeline, rules, limits: Limits) -> dict:
    results = analyze_conversations(items, pipeline, rules, limits)
    return {"results": [present.result(r) for r in results], "summary": present.summary(results)}


def _chars(conv: Any) -> int:
    """Characters over a conversation's turn texts (malformed parts count nothing here;
    the engine reports them in the conversation's slot)."""
    turns = conv.get("turns") if isinstance(conv, Mapping) else None
    if not isinstance(turns, list):
        return 0
    return sum(len(t["text"]) for t in turns if isinstance(t, Mapping) and isinstance(t.get("text"), str))


@router.post("/analyze", response_model=ConversationResponse, responses=ERRORS)
async def analyze(req: ConversationRequest, request: Request):
    pipeline, rules = loaded(request, "pipeline"), loaded(request, "conversation_rules")
    pool, settings = loaded(request, "analysis_pool"), request.app.state.settings
    body = await pool.run_json(_report, req.model_dump(), pipeline, rules, Limits.from_settings(settings))
    texts_analysed(request, "conversation")
    return json_response(body)


@router.post("/analyze/batch", response_model=ConversationBatchResponse, responses=ERRORS)
async def analyze_batch(req: ConversationBatchRequest, request: Request):
    pipeline, rules = loaded(request, "pipeline"), loaded(request, "conversation_rules")
    pool, settings = loaded(request, "analysis_pool"), request.app.state.settings
    check_batch_size(len(req.items), sum(_chars(c) for c in req.items), settings, what="conversations")
    body = await pool.run_json(_batch, req.items, pipeline, rules, Limits.from_settings(settings))
    texts_analysed(request, "conversation", len(req.items))
    return json_response(body)
