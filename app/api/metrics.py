"""``GET /metrics`` in the Prometheus text format (the official ``prometheus-client``).

Each app has its own registry (tests build many apps). Request counts and latencies are
recorded by ``app.core.middleware.AccessLog`` through :meth:`Metrics.observe`, labelled by
route template (never the raw path: no job ids in labels) and status. Everything that lives
elsewhere — jobs by status, rows scored per second (job workers are forked processes, so
their counters would not reach this one: the store is read at scrape time instead), the
analysis queue, the model versions served — is read by a collector when scraped.

``PINGJIA_METRICS_TOKEN`` set: the scrape needs ``Authorization: Bearer <token>``; unset: open
(the numbers carry no customer data, and /metrics is outside ``/v1`` and its API keys).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from app.api.security import token_matches
from app.core.errors import Unauthorized
from app.jobs.store import ACTIVE, FINISHED

log = logging.getLogger("pingjia.metrics")
router = APIRouter(tags=["health"])

# Request latency buckets (seconds): the API answers in milliseconds, jobs downloads take longer.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RATE_WINDOW = 60.0  # rows per second is averaged over this many seconds


class Metrics:
    """The registry of one app, and the instruments the middleware and routes feed."""

    def __init__(self, state):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pingjia_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "pingjia_http_request_duration_seconds",
            "time from a request's arrival to the end of its answer",
            ("method", "route", "status"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.texts = Counter(
            "pingjia_texts_analysed",
            "texts analysed by the API (a batch counts its items), by kind",
            ("kind",),
            registry=self.registry,
        )
        self.registry.register(StateCollector(state))
        self._children: dict[tuple[str, str, int], tuple] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request (called by the access-log middleware)."""
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:  # .labels() costs a lock and a dict lookup: resolve each series once
            labels = (method, route, str(status))
            pair = self._children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """What is read at scrape time: model versions, analysis queue, jobs, rows per second."""

    def __init__(self, state):
        self.state = state

    def describe(self):
        return []  # collected lazily: the app state is not there yet when the registry is built

    def collect(self):
        pipeline = getattr(self.state, "pipeline", None)
        if pipeline is not None:
            info = InfoMetricFamily("pingjia_model", "model versions served")
            info.add_metric([], {k: str(v) for k, v in pipeline.versions.items()})
            yield info
        pool = getattr(self.state, "analysis_pool", None)
        if pool is not None:
            n = pool.in_flight
            yield GaugeMetricFamily("pingjia_analysis_in_flight", "analyses running or waiting", value=n)
            yield GaugeMetricFamily(
                "pingjia_analysis_queue_depth", "analyses waiting for a thread", value=max(0, n - pool.threads)
            )
        yield from self._jobs()

    def _jobs(self):
        store = getattr(self.state, "job_store", None)
        if store is None or getattr(self.state, "jobs_unavailable", None):
            return
        try:
            counts, rows = store.job_counts(), store.rows_scored(RATE_WINDOW)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail on the job database
            log.warning("metrics: job store not readable: %s", exc)
            return
        jobs = GaugeMetricFamily("pingjia_jobs", "jobs in the store by status", labels=("status",))
        for status in ACTIVE + FINISHED:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        active = sum(counts.get(status, 0) for status in ACTIVE)
        yield GaugeMetricFamily("pingjia_job_queue_depth", "jobs queued or running", value=active)
        yield GaugeMetricFamily(
            "pingjia_job_rows_per_second",
            f"job rows scored per second over the last {RATE_WINDOW:g} s, all workers",
            value=rows / RATE_WINDOW,
        )


def texts_analysed(request: Request, kind: str, n: int = 1) -> None:
    """Count ``n`` texts of ``kind`` (review, conversation) analysed for ``request``."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.texts.labels(kind).inc(n)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request, authorization: Annotated[str | None, Header()] = None):
    """Prometheus metrics; needs ``Bearer <PINGJIA_METRICS_TOKEN>`` when that is set."""
    token = request.app.state.settings.metrics_token
    if token and not token_matches(authorization, token):
        raise Unauthorized("send Authorization: Bearer <PINGJIA_METRICS_TOKEN>")
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
