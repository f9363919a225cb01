"""Admin: load new model versions into a running service, safely.

``POST /v1/admin/reload`` (``Authorization: Bearer <PINGJIA_ADMIN_TOKEN>``; disabled when no
token is configured) builds a *new* pipeline from ``models/current.json`` (or from the versions
named in the body), runs smoke predictions on it (``app.pipeline.reload``), and only then swaps
``app.state.pipeline`` with one attribute assignment. Requests already running keep the pipeline
object they started with, so they finish on the old model. Batch-job workers finish their chunk
and are replaced by workers that load the new models (``JobRunner.models_changed``). Anything
wrong with the new artifacts (missing, corrupt, incompatible, or failing the smoke checks)
answers 409 ``model_rejected`` and the old pipeline keeps serving; a pointer named in the body
is updated only after success.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SettingsDep
from app.api.schemas import ADMIN_ERRORS
from app.api.security import token_matches
from app.conversations import load_conversation_rules
from app.core.errors import Conflict, PingjiaError, Unauthorized
from app.pipeline.engine import Pipeline
from app.pipeline.lexicon import LexiconError
from app.pipeline.reload import ModelRejected, free_unused_memory, reload_candidate

log = logging.getLogger("pingjia.admin")
router = APIRouter(prefix="/v1/admin", tags=["admin"])

_VERSION = r"^\d{4}-\d{2}-\d{2}-\d+$"
_RELOADING = threading.Lock()


class ReloadRequest(BaseModel):
    """Optional: the versions to serve (default: what ``models/current.json`` names)."""

    model_config = ConfigDict(extra="forbid")
    sentiment: str | None = Field(None, pattern=_VERSION, examples=["2026-11-22-1"])
    aspects: str | None = Field(None, pattern=_VERSION, examples=["2026-11-22-1"])
    chat: str | None = Field(None, pattern=_VERSION, examples=["2026-12-05-1"])


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """403 when admin is disabled (no token configured), 401 on a missing or wrong token."""
    if not settings.admin_token:
        raise PingjiaError("admin disabled: set PINGJIA_ADMIN_TOKEN to enable /v1/admin", code="admin_disabled")
    if not token_matches(authorization, settings.admin_token):
        raise Unauthorized("missing or wrong admin token; send Authorization: Bearer <PINGJIA_ADMIN_TOKEN>")


@router.post("/reload", dependencies=[Depends(require_admin)], responses=ADMIN_ERRORS)
def reload(request: Request, settings: SettingsDep, body: Annotated[ReloadRequest | None, Body()] = None) -> dict:
    if not _RELOADING.acquire(blocking=False):
        raise Conflict("another reload is running; retry when it has finished", code="reload_in_progress")
    try:
        started = time.perf_counter()
        old: Pipeline | None = getattr(request.app.state, "pipeline", None)
        wanted = body.model_dump(exclude_none=True) if body else {}
        try:  # the QA profiles travel with the chat model (its training fits their constants)
            rules = load_conversation_rules(settings.lexicon_dir)
        except LexiconError as exc:
            raise ModelRejected(f"conversation lexicons: {exc}; still serving the old ones") from None
        new = reload_candidate(settings, old, wanted)  # 409 model_rejected: `old` keeps serving
        request.app.state.pipeline = new  # the swap: one assignment; in-flight requests keep `old`
        request.app.state.conversation_rules = rules
        runner = getattr(request.app.state, "job_runner", None)
        restarted = runner.models_changed() if runner is not None else 0  # batch jobs follow too
        previous = old.versions if old else None
        reused = old is not None and new.segmenter is old.segmenter
        del old  # the last reference here: the old models go once in-flight requests finish
        free_unused_memory()
    finally:
        _RELOADING.release()
    log.info("models reloaded: %s -> %s; %d job worker(s) restarting", previous, new.versions, restarted)
    return {
        "status": "reloaded",
        "model": new.versions,
        "previous": previous,
        "job_workers_restarted": restarted,
        "segmenter_reused": reused,
        "seconds": round(time.perf_counter() - started, 3),
    }
