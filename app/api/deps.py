"""Shared route preconditions.

Plain ``async`` reads of ``app.state``: a sync dependency would cost a threadpool hop per
request, and ``dependency_overrides`` makes FastAPI re-inspect the override every call.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.errors import NotReady
from app.pipeline.engine import Pipeline


async def get_pipeline(request: Request) -> Pipeline:
    """The pipeline loaded in the lifespan; 503 not_ready until then."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        raise NotReady("models are not loaded yet")
    return pipeline


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
