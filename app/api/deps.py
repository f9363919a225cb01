"""Shared route preconditions."""
from __future__ import annotations

from fastapi import Request

from app.core.errors import NotReady
from app.pipeline.engine import Pipeline


def get_pipeline(request: Request) -> Pipeline:
    """The pipeline loaded in the lifespan; 503 not_ready until then."""
    pipeline = getattr(request.app.state, "pipeline", None)
    if pipeline is None:
        raise NotReady("models are not loaded yet")
    return pipeline
