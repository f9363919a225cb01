"""The report page (``/ui/``) and the API docs (``/docs``), both served from files shipped in the
package, so they work on a machine without internet access.

The pages carry no data: they are the same static HTML for everyone, and the data calls they
make go to ``/v1/*`` (with the caller's API key when keys are on). ``/ui/jobs/{job_id}`` answers
the same page, which reads the job id from its own URL — a link a manager can share."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

STATIC_DIR = Path(str(files("app") / "static"))
"""``app/static``: ``ui/`` (the page) and ``vendor/`` (ECharts, Swagger UI; see their VERSION)."""
STATIC_URL = "/static"
SWAGGER = f"{STATIC_URL}/vendor/swagger-ui"
# The page is ours and has no secrets; it only says: no framing, no sniffing, no outside origins.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'",
}

router = APIRouter(include_in_schema=False)


def page_html() -> str:
    """The report page's HTML, read per request (a few KB) so an edit shows without a restart."""
    return (STATIC_DIR / "ui" / "index.html").read_text(encoding="utf-8")


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/", response_class=HTMLResponse)
@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def ui_page() -> HTMLResponse:
    """The one page; at ``/ui/jobs/{job_id}`` it opens that job's report (a shareable link) and
    asks ``/v1/jobs/{job_id}`` itself (404 there, if unknown)."""
    return HTMLResponse(page_html(), headers=PAGE_HEADERS)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """Swagger UI from the vendored files, never a CDN."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - API",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
