"""Help-desk transcript inspection: one conversation, or a batch where bad ones keep their slot."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.conversation_schemas import (
    ConversationBatchRequest,
    ConversationBatchResponse,
    ConversationRequest,
    ConversationResponse,
)
from app.api.deps import PipelineDep, RulesDep, SettingsDep
from app.api.schemas import ERRORS
from app.conversations import (
    Limits,
    analyze_conversation,
    analyze_conversations,
    present,
)
from app.core.errors import TooManyItems

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post("/analyze", response_model=ConversationResponse, responses=ERRORS)
async def analyze(req: ConversationRequest, pipeline: PipelineDep, rules: RulesDep, settings: SettingsDep):
    report = await run_in_threadpool(analyze_conversation, req.model_dump(), pipeline, rules,
                                     Limits.from_settings(settings))
    return JSONResponse(present.report(report))


@router.post("/analyze/batch", response_model=ConversationBatchResponse, responses=ERRORS)
async def analyze_batch(req: ConversationBatchRequest, pipeline: PipelineDep, rules: RulesDep,
                        settings: SettingsDep):
    limit = settings.max_batch_conversations
    if not req.items:
        raise TooManyItems(f"items is empty; send 1 to {limit} conversations", code="empty_batch", status=422)
    if len(req.items) > limit:
        raise TooManyItems(f"{len(req.items)} conversations; the limit is {limit}")
    results = await run_in_threadpool(analyze_conversations, req.items, pipeline, rules,
                                      Limits.from_settings(settings))
    return JSONResponse({"results": [present.result(r) for r in results], "summary": present.summary(results)})
