"""Shared route preconditions.

Plain ``async`` reads of ``app.state``: a sync dependency would cost a threadpool hop per
request, and ``dependency_overrides`` makes FastAPI re-inspect the override every call.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.work import AnalysisPool
from app.conversations import ConversationRules
from app.core.config import Settings
from app.core.errors import NotReady
from app.jobs.store import JobStore
from app.pipeline.engine import Pipeline


def from_state(attr: str, what: str):
    """A dependency returning ``app.state.<attr>``, loaded in the lifespan; 503 not_ready before."""
    async def dependency(request: Request):
        value = getattr(request.app.state, attr, None)
        if value is None:
            raise NotReady(f"{what} not loaded yet")
        return value
    return dependency


get_pipeline = from_state("pipeline", "models are")


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
RulesDep = Annotated[ConversationRules, Depends(from_state("conversation_rules", "conversation rules are"))]
StoreDep = Annotated[JobStore, Depends(from_state("job_store", "the job store is"))]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
PoolDep = Annotated[AnalysisPool, Depends(from_state("analysis_pool", "the analysis threads are"))]
