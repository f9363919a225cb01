"""create_app(): the FastAPI app, its lifespan (models load here, never at import; the job
runner is wired here) and the one error boundary that turns every failure into
``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager, contextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from app.api import metrics
from app.api.routes import admin, analyze, conversations, health, jobs, ui
from app.api.schemas import first_error
from app.api.security import ApiGuard, build_guard_parts, document_keys
from app.api.work import AnalysisPool
from app.conversations import load_conversation_rules
from app.core.config import Settings, get_settings
from app.core.errors import PingjiaError, status_of
from app.core.middleware import AccessLog, BodySizeLimit, BodyTimeout, RequestId, request_id_of
from app.jobs.ingest_pool import IngestPool
from app.jobs.worker import start_jobs, unavailable_message
from app.pipeline.engine import build_pipeline

log = logging.getLogger("pingjia")
jobs_log = logging.getLogger("pingjia.jobs")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error envelope every refusal is answered in."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str]:
    code, message = first_error(exc.errors())
    return status_of(code), code, message


@contextmanager
def job_runner(state, settings: Settings):
    """The job store and runner on ``state`` (``app.state``) for the app's life; a preset
    ``state.job_runner`` / ``job_store`` is used as given (tests do that).

    A job database that cannot be used (damaged, emptied, unwritable) does not stop the
    service — a restart would only fail the same way: the review API serves, every jobs
    endpoint answers 503 ``jobs_unavailable`` with ``state.jobs_unavailable`` (logged once
    here, naming the file and what to do) and /readyz says so."""
    state.jobs_unavailable = None
    try:
        store, runner = start_jobs(
            settings,
            store=getattr(state, "job_store", None),
            runner=getattr(state, "job_runner", None),
            pipeline=getattr(state, "pipeline", None),
            rules=getattr(state, "conversation_rules", None),
        )
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the job database, the review API serves
        state.jobs_unavailable = unavailable_message(settings, exc)
        jobs_log.error("%s", state.jobs_unavailable)
        jobs_log.debug("job store start-up failure", exc_info=True)
        store = runner = None
    state.job_store, state.job_runner = store, runner
    try:
        yield runner
    finally:
        if runner is not None:
            runner.stop()


def create_app(settings: Settings | None = None, *, pipeline=None) -> FastAPI:
    """Build the app; tests pass a ready ``pipeline`` (or settings) to skip loading."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "pipeline", None) is None:
            app.state.pipeline = build_pipeline(
                settings.lexicon_dir, settings.models_dir, max_text_chars=settings.max_text_chars
            )
            log.info("pingjia ready: %s", app.state.pipeline.versions)
        if getattr(app.state, "conversation_rules", None) is None:
            app.state.conversation_rules = load_conversation_rules(settings.lexicon_dir)
        if keys is None:
            log.warning("PINGJIA_API_KEYS is not set: /v1 is open to anyone who can reach this service")
        elif keys.weak:
            log.warning("API keys shorter than 16 characters are easy to guess: %s", ", ".join(keys.weak))
        if not hasattr(app.state, "ingest_pool"):  # uploads are read in their own process (None: here)
            app.state.ingest_pool = IngestPool(settings.job_ingest_processes)
        try:
            with job_runner(app.state, settings):  # job store + background workers (app.jobs)
                yield
        finally:
            app.state.analysis_pool.shutdown()

    app = FastAPI(
        title="Pingjia 评价",
        version="1.0",
        description="Chinese customer-text analysis: sentiment, service keywords, aspects and root causes.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served from vendored files (ui.router), not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.analysis_pool = AnalysisPool(settings.analysis_threads, settings.analysis_queue)
    # Added innermost first: RequestId wraps everything, so every answer carries the id; the
    # access log (and metrics) sees every answer, CORS headers go on refusals too, and keys
    # and rate limits are checked before a body is read. Parts that are off are not added.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, exempt_prefixes=("/v1/jobs",))
    app.add_middleware(BodyTimeout, idle_seconds=settings.body_idle_seconds)
    keys, rate, upload = build_guard_parts(settings)  # refuses to start on bad PINGJIA_API_KEYS
    if keys is not None or rate is not None or upload is not None:
        app.add_middleware(ApiGuard, keys=keys, rate=rate, upload=upload)
    if keys is not None:
        document_keys(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.state.metrics = metrics.Metrics(app.state) if settings.metrics_enabled else None
    app.add_middleware(AccessLog, observe=app.state.metrics.observe if app.state.metrics else None)
    app.add_middleware(RequestId)

    @app.exception_handler(PingjiaError)
    async def _domain(_: Request, exc: PingjiaError):
        retry = getattr(exc, "retry_after", None)
        return error(exc.status, exc.code, exc.message, {"Retry-After": str(retry)} if retry else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        return error(*_validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            400: "bad_request",
            408: "request_timeout",
            413: "body_too_large",
            429: "rate_limited",
        }
        return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # The last boundary: a bug is still answered in the envelope, with the id to find
        # its traceback in the log. (Starlette sends this from its outermost middleware,
        # outside RequestId, so the header is set here.)
        rid = request_id_of(request.scope) or "-"
        log.error(
            "request %s %s %s failed",
            rid,
            request.method,
            request.url.path,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        return JSONResponse(
            {
                "error": {
                    "code": "internal_error",
                    "request_id": rid,
                    "message": f"unexpected server error; quote request id {rid} when reporting it",
                }
            },
            status_code=500,
            headers={"X-Request-ID": rid},
        )

    app.include_router(health.router)
    app.include_router(analyze.router)
    app.include_router(conversations.router)
    app.include_router(jobs.router)
    app.include_router(admin.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)  # GET /metrics (PINGJIA_METRICS_TOKEN guards it when set)
    app.include_router(ui.router)  # /ui/ (the report page) and the offline /docs
    app.mount(ui.STATIC_URL, StaticFiles(directory=ui.STATIC_DIR), name="static")
    return app


app = create_app()
