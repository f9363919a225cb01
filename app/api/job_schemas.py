"""Request and response models of ``/v1/jobs`` (API.md, "Jobs"). Responses are built as
dicts by ``app.jobs.service``; these models document them in OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import Out
from app.core.taxonomy import GRADE_CODES, QA_DIMENSIONS
from app.jobs import service
from app.jobs.ingest import Ingested, InputSpec
from app.jobs.store import ACTIVE, FINISHED

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class JobForm(BaseModel):
    """The form fields that accompany a multipart ``file``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["reviews", "conversations"] = "reviews"
    text_column: str = Field("text", min_length=1, max_length=200)
    id_column: str | None = Field(
        None, min_length=1, max_length=200, description="default: 'id' when present, else the row number"
    )
    format: Literal["csv", "jsonl"] | None = Field(None, description="default: from the file name, else sniffed")
    encoding: str = Field("utf-8", max_length=40, description="utf-8 (default) or e.g. gb18030")
    date_column: str | None = Field(None, max_length=200, description="default: detected")
    group_columns: str | None = Field(None, max_length=2000, description="comma-separated; default: detected")

    def spec(self) -> InputSpec:
        groups = None
        if self.group_columns is not None:
            groups = tuple(g.strip() for g in self.group_columns.split(",") if g.strip())
        return InputSpec(
            kind=self.kind,
            fmt=self.format,
            text_column=self.text_column,
            id_column=self.id_column,
            encoding=self.encoding,
            date_column=self.date_column or None,
            group_columns=groups,
        )


class JobItemsRequest(BaseModel):
    """A JSON job: review objects ``{id, text, ...extra fields}`` or conversation objects."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "reviews",
                    "items": [{"id": "r1", "text": "发货太慢了", "channel": "app", "date": "2026-11-20"}],
                }
            ]
        },
    )
    kind: Literal["reviews", "conversations"] = "reviews"
    items: list[Any] = Field(min_length=1, description="a bad item gets an error in its own row")
    date_column: str | None = Field(None, max_length=200, description="default: detected")
    group_columns: list[ColumnName] | None = Field(None, description="default: detected")

    def spec(self) -> InputSpec:
        return InputSpec(
            kind=self.kind,
            fmt="jsonl",
            date_column=self.date_column or None,
            group_columns=tuple(self.group_columns) if self.group_columns is not None else None,
        )


def ingest_json_body(folder: Path, chunk_rows: int) -> tuple[InputSpec, Ingested]:
    """A JSON job's spooled body validated, then rewritten as its work file: run in the
    ingest process, as parsing is per-item work too. A ``ValidationError`` is raised as is.
    The body is kept (private, pruned with the job) for the readable CSV export's original rows."""
    body = folder / service.BODY_FILE
    req = JobItemsRequest.model_validate_json(body.read_bytes())
    spec = req.spec()
    ingested = service.ingest_json_items(folder, spec, req.items, chunk_rows)
    return spec, ingested


class JobAccepted(Out):
    job_id: str
    status: Literal["queued"]
    total: int
    links: dict[str, str]


class JobStatus(Out):
    job_id: str
    kind: str
    status: Literal[*ACTIVE, *FINISHED]
    done: int
    total: int
    errors: int
    progress: float
    rows_per_second: float | None
    eta_seconds: float | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: dict[str, str] | None
    notice: dict[str, str] | None = Field(
        None, description="why workers wait, e.g. {code: disk_full, message, since}; the job resumes by itself"
    )
    input: dict[str, Any]
    report_plan: dict[str, Any]
    model: dict[str, str] | None
    links: dict[str, str]


class JobListItemOut(Out):
    job_id: str
    kind: Literal["reviews", "conversations"]
    status: Literal[*ACTIVE, *FINISHED]
    total: int
    done: int
    errors: int
    progress: float
    created_at: str
    finished_at: str | None
    links: dict[str, str] = Field(description="the same links as GET /v1/jobs/{job_id}")


class JobListResponse(Out):
    """``GET /v1/jobs``: the caller's jobs, newest first (only its own key's when keys are on)."""

    jobs: list[JobListItemOut]
    total: int = Field(description="all jobs visible to the caller")
    limit: int
    offset: int


class QAGradeOut(Out):
    grade: Literal[*GRADE_CODES]
    grade_zh: str = Field(description="优秀, 良好, 合格 or 待改进")
    name_zh: str = Field(description="the same as grade_zh (the older name)")
    count: int
    share: float


class QAExampleOut(Out):
    row: int = Field(description="1-based input row")
    id: str | None = Field(description="the conversation's id")
    turn: int
    text: str = Field(description="the violation's text (a PII leak: the agent's turn masked), <= 200 characters")


class QAViolationOut(Out):
    code: str = Field(description="Violation.code: a 服务禁语 category, or pii_leak, missing_greeting, ...")
    code_zh: str = Field(description="the code's Chinese name, e.g. 推诿, 泄露隐私, 缺少问候语")
    service: bool = Field(description="counted in violation_rate (all codes but missing_greeting/closing, slow_reply)")
    count: int = Field(description="occurrences")
    conversations: int = Field(description="conversations with at least one")
    example: QAExampleOut | None = Field(description="from the conversation with the lowest row number")


class QAResolutionOut(Out):
    resolved: int
    unresolved: int
    unknown: int
    resolution_rate: float | None = Field(description="resolved / (resolved + unresolved)")
    unresolved_rate: float | None = Field(description="unresolved / (resolved + unresolved)")


class QAFirstResponseOut(Out):
    measured: int
    missing: int = Field(description="no agent reply, or a timestamp missing")
    p50_seconds: float | None = Field(description="interpolated from fixed buckets (docs/jobs.md)")
    p90_seconds: float | None


class QAStatsOut(Out):
    conversations: int = Field(description="analysed conversations")
    errors: int = Field(description="rows of this scope that could not be analysed")
    unattended: int = Field(description="conversations without an agent turn")
    qa_score_mean: float | None
    dimensions_mean: dict[Literal[*QA_DIMENSIONS], float | None] | None = Field(
        None,
        description="each QA dimension's mean score (0-100, 2 decimals) over the conversations QA judged "
        "(not the unattended ones); null when there were none (absent from reports made before it)",
    )
    grades: list[QAGradeOut]
    violations: list[QAViolationOut]
    conversations_with_service_violation: int
    violation_rate: float
    resolution: QAResolutionOut
    first_response: QAFirstResponseOut


class QARateTestOut(Out):
    x: int
    n: int
    rate: float
    rest_x: int
    rest_n: int
    rest_rate: float
    z: float | None = Field(description="None: group or rest too small to test")
    p_value: float | None
    flagged: bool


class QAGroupOut(QAStatsOut):
    value: str
    tests: dict[Literal["violation_rate", "unresolved_rate"], QARateTestOut]


class QAFlagOut(Out):
    value: str
    metric: Literal["violation_rate", "unresolved_rate"]
    x: int
    n: int
    rate: float
    rest_x: int
    rest_n: int
    rest_rate: float
    z: float | None
    p_value: float | None


class QATableOut(Out):
    column: Literal["agent_id", "channel"]
    available: bool
    note: str | None
    without_value: int | None = Field(description="rows without a value: left out of this table")
    groups: list[QAGroupOut]
    flagged: list[QAFlagOut]


class QAReportOut(Out):
    conversations: int
    overall: QAStatsOut
    dimensions_zh: dict[Literal[*QA_DIMENSIONS], str] | None = Field(
        None, description="the QA dimensions' Chinese names (响应速度, 服务态度, 问题解决, 专业能力), in order"
    )
    agents: QATableOut
    channels: QATableOut
    test: str
    service_violations: str
    first_response_buckets_seconds: list[int]
    percentiles: str


class DailyCauseOut(Out):
    cause: str
    cause_zh: str | None
    count: int = Field(description="rows with this root cause over the dated days")


class DailyPointOut(Out):
    date: str = Field(description="YYYY-MM-DD")
    rows: int
    analysed: int
    negative: int
    negative_rate: float
    top_cause: str | None
    top_cause_zh: str | None
    top_cause_share: float = Field(description="the top cause's rows / analysed rows of the day")
    causes: dict[str, int] | None = Field(
        None, description="rows of the day per root cause (a row may have several), most first"
    )


class DailyAlertOut(Out):
    date: str
    metric: Literal["negative_rate", "cause_share"]
    cause: str | None = Field(None, description="cause_share alerts only")
    cause_zh: str | None = None
    value: float = Field(description="the day's rate or share")
    baseline: float = Field(description="the same over the trailing window")
    jump: float
    z: float
    p_value: float
    rows: int = Field(description="analysed rows of the day")
    message_zh: str


class DailyOut(Out):
    column: str
    undated_rows: int
    causes: list[DailyCauseOut] | None = Field(
        None, description="every root cause seen on a dated day, by rows over those days (most first)"
    )
    series: list[DailyPointOut]
    alerts: list[DailyAlertOut]
    rule: str = Field(description="the spike rule in English; its parameters are in thresholds.spike_*")


class JobSummary(BaseModel):
    """The 差评报表; see docs/jobs.md for every section."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    complete: bool
    totals: dict[str, int]
    sentiment: dict[str, Any]
    mixed: dict[str, float] | None = Field(
        None, description="review jobs only: count and share of texts whose sentiment is mixed (sentiment.mixed)"
    )
    root_causes: list[dict[str, Any]]
    aspects: list[dict[str, Any]]
    complaint_terms: dict[str, Any]
    groups: dict[str, Any]
    daily: DailyOut | None
    thresholds: dict[str, Any]
    qa: QAReportOut | None = Field(
        None, description="chat jobs only: QA per agent, per channel and overall (docs/jobs.md, QA section)"
    )
