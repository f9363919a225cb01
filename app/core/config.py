"""One typed settings object, read from ``PINGJIA_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PINGJIA_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    lexicon_dir: Path = ROOT / "lexicons"
    models_dir: Path = ROOT / "models"
    data_dir: Path = Path("var")

    max_text_chars: int = Field(5000, ge=1, description="longest text accepted, in characters")
    max_batch_items: int = Field(1000, ge=1, description="most items in one batch request")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="largest JSON request body")
    top_terms: int = Field(0, ge=0, le=50, description="TF-IDF terms per text when the request does not say")

    max_batch_chars: int = Field(
        500_000,
        ge=1,
        description="most characters over all texts of one review or conversation batch request (413 batch_too_large)",
    )
    analysis_threads: int = Field(
        1,
        ge=1,
        description="requests analysed at once, on threads off the event loop "
        "(under the GIL more threads add contention, not speed)",
    )
    analysis_queue: int = Field(
        32, ge=0, description="requests waiting for an analysis thread; more are answered 503 busy"
    )
    inline_max_chars: int = Field(
        300,
        ge=0,
        description="a single text up to this long is analysed on the event "
        "loop (a thread hop costs more than it saves)",
    )
    body_idle_seconds: float = Field(30.0, gt=0, description="a request body that pauses this long is refused 408")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="a connection that has not sent complete request headers within this is closed (pingjia serve)",
    )

    max_turns: int = Field(500, ge=1, description="most turns in one conversation")
    slow_reply_seconds: float = Field(60.0, gt=0, description="agent reply slower than this is a slow_reply")
    max_conversation_chars: int = Field(100_000, ge=1, description="most characters over all turns of one conversation")
    max_batch_conversations: int = Field(100, ge=1, description="most conversations in one conversation batch request")

    admin_token: str | None = Field(None, description="bearer token for /v1/admin; admin disabled when unset")

    # Security and operations (docs/operations.md, "Keys, limits, metrics, logs").
    api_keys: str | None = Field(
        None,
        repr=False,
        description="API keys for /v1/*: a file (one key, name:key or [name:]sha256:<hex> a line) or a "
        "comma-separated list; unset: /v1 is open (a warning is logged at start)",
    )
    rate_per_second: float | None = Field(
        None, gt=0, description="requests per second per key (per client IP without keys); unset: no rate limit"
    )
    rate_burst: int = Field(20, ge=1, description="requests a key may send at once above its rate (token bucket size)")
    upload_bytes_per_hour: int | None = Field(
        None, ge=1, description="request-body bytes per key per hour on /v1 (uploads, batches); unset: no limit"
    )
    max_queued_jobs_per_key: int = Field(
        100, ge=0, description="queued + running jobs per key (all jobs without keys); more: 429; 0: no limit"
    )
    cors_origins: str | None = Field(
        None, description="comma-separated origins browsers may call the API from (* for any); unset: no CORS"
    )
    metrics_enabled: bool = Field(True, description="GET /metrics and the request instruments; false: neither")
    metrics_token: str | None = Field(
        None, repr=False, description="bearer token GET /metrics requires; unset: /metrics is open"
    )
    log_format: Literal["json", "text"] = Field("json", description="pingjia serve's log lines: JSON or plain text")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="pingjia serve's log level")

    max_upload_bytes: int = Field(2 * 1024**3, ge=1024, description="largest job upload")
    job_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="background scoring processes for jobs (default: one per core)",
    )
    job_ingest_processes: int = Field(
        1, ge=1, description="job submissions validated at once, each in its own process (more wait their turn)"
    )
    job_chunk_rows: int = Field(500, ge=1, description="rows scored and committed together")
    job_worker_start: Literal["fork", "spawn"] = Field(
        "fork",
        description="fork: job workers are forked at start-up and share the service's loaded "
        "models (about half the memory); spawn: each worker loads its own, on demand",
    )
    job_worker_idle_seconds: float = Field(
        300.0, gt=0, description="a job worker process with nothing to do exits after this (restarted on demand)"
    )
    job_retention_days: float = Field(7.0, gt=0, description="finished jobs are pruned after this")
    jobs_db_url: str | None = Field(
        None, description="job store; default: SQLite file data_dir/jobs.db (a sqlite:/// URL or a path)"
    )
    job_worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="job worker processes run this much nicer than the service (nice(2)), so API requests come first",
    )
    jobs_db_check: Literal["quick", "full", "off"] = Field(
        "quick",
        description="check of the job database at start-up: quick (PRAGMA quick_check), full "
        "(integrity_check, adds index cross-checks), off; a failed check leaves /v1/jobs "
        "answering 503 jobs_unavailable while the review API serves",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
