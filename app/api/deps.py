"""Shared route preconditions.

Plain ``async`` reads of ``app.state``: a sync dependency would cost a threadpool hop per
request, and ``dependency_overrides`` makes FastAPI re-inspect the override every call. The
analysis routes read what they use with :func:`loaded` instead of dependencies: FastAPI spends
~15 µs a request resolving each one, and those routes answer a short review in about a
millisecond.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request

from app.core.config import Settings
from app.core.errors import InsufficientStorage, JobsUnavailable, NotReady
from app.jobs.service import db_url
from app.jobs.store import JobStore, disk_problem, explain

_LOADED = {
    "pipeline": "models are",
    "conversation_rules": "conversation rules are",
    "analysis_pool": "the analysis threads are",
}


def loaded(request: Request, attr: str) -> Any:
    """``app.state.<attr>`` (one of ``_LOADED``), loaded in the lifespan; 503 not_ready before."""
    value = getattr(request.app.state, attr, None)
    if value is None:
        raise NotReady(f"{_LOADED[attr]} not loaded yet")
    return value


async def get_job_store(request: Request) -> AsyncIterator[JobStore]:
    """The job store; 503 ``jobs_unavailable`` when its database could not be used at start-up
    or a request meets a database error (damage found at run time), 507 ``insufficient_storage``
    when its disk is full: never a 500. An error in the middle of a download cuts it off."""
    state = request.app.state
    if getattr(state, "jobs_unavailable", None):
        raise JobsUnavailable(state.jobs_unavailable)
    store = getattr(state, "job_store", None)
    if store is None:
        raise NotReady("the job store is not loaded yet")
    try:
        yield store
    except (sqlite3.DatabaseError, OSError) as exc:
        if isinstance(exc, OSError) and not disk_problem(exc):
            raise
        message = explain(db_url(state.settings), exc)
        logging.getLogger("pingjia.jobs").error("%s %s: %s", request.method, request.url.path, message)
        raise (InsufficientStorage if disk_problem(exc) else JobsUnavailable)(message) from exc


async def get_job_notice(request: Request) -> dict | None:
    """Why batch jobs are paused right now (e.g. the disk is full), for the job status; None
    when they are not."""
    runner = getattr(request.app.state, "job_runner", None)
    return runner.notice() if runner is not None else None


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


StoreDep = Annotated[JobStore, Depends(get_job_store)]
JobNoticeDep = Annotated[dict | None, Depends(get_job_notice)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
