"""Request and response models of the review endpoints (the public contract in API.md).

Kept apart from the internal findings so internal fields cannot leak. Responses are
built as dicts by ``app.pipeline.present``; these models document them in OpenAPI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from app.core.errors import CATALOGUE
from app.core.taxonomy import POLARITIES, SENTIMENT_LABELS


def _as_str(value: str | int | None) -> str | None:
    return None if value is None else str(value)


CallerId = Annotated[
    StrictStr | StrictInt | None,
    AfterValidator(_as_str),
    Field(description="caller id (a string or an integer), echoed back as a string"),
]


class ReviewItem(BaseModel):
    """One review, as the single endpoint and every batch item take it: one validator for both."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "发货太慢了，客服也不耐烦", "id": "r1"}]})
    text: StrictStr = Field(description="the customer text; 1 to PINGJIA_MAX_TEXT_CHARS characters")
    id: CallerId = None
    meta: dict[str, StrictStr] | None = Field(None, description="free-form string map, echoed back")

    @field_validator("id")
    @classmethod
    def _short_id(cls, value: str | None) -> str | None:
        if value is not None and len(value) > 200:
            raise ValueError("at most 200 characters")
        return value


class AnalyzeRequest(ReviewItem):
    top_terms: int | None = Field(None, ge=0, le=50, description="also return this many TF-IDF terms")


class BatchRequest(BaseModel):
    items: list[Any] = Field(
        description="review items {id, text, meta}, each validated like a single request; a bad item gets "
        "an error in its own slot",
        json_schema_extra={"items": {"$ref": "#/components/schemas/ReviewItem"}},
    )
    top_terms: int | None = Field(None, ge=0, le=50)


def first_error(errors: list[dict]) -> tuple[str, str]:
    """(code, message) of a pydantic validation failure, naming the field: one wording for
    request bodies and batch items."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return "invalid_json", f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".strip()
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return "invalid_input", f"{where}: {first.get('msg', 'invalid')}"


def example(name: str) -> dict:
    """A real response of the served models to its request in app/api/examples/requests.json,
    recorded by training/record_examples.py; tests check each against its response model and
    against what the served models answer, so an example drifts neither from the contract nor
    from the models."""
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


EXAMPLES = Path(__file__).parent / "examples"


class Out(BaseModel):
    """A response model: it documents exactly what the service returns, so a key it does not
    list is a bug (tests/test_response_contract.py validates real responses against these)."""

    model_config = ConfigDict(extra="forbid")


class SpanOut(Out):
    text: str
    start: int
    end: int


MIXED_DESCRIPTION = (
    "true when the text both praises and blames: its aspects include a positive and a negative finding whose "
    "evidence spans do not overlap (a typical 中评: 东西不错，就是物流太慢了); independent of the label"
)


class SentimentOut(Out):
    label: Literal[*SENTIMENT_LABELS]
    label_zh: str = Field(description="好评, 中评 or 差评 (a chat turn: 正面, 中性 or 负面)")
    probabilities: dict[str, float]
    mixed: bool = Field(description=MIXED_DESCRIPTION)


class KeywordOut(Out):
    term: str = Field(description="lexicon entry (simplified)")
    text: str = Field(description="the caller's text at [start, end)")
    dimension: str
    dimension_zh: str = Field(description="the dimension's Chinese name (general: 通用)")
    polarity: Literal[*POLARITIES]
    polarity_zh: str = Field(description="正面 or 负面")
    negated: bool
    weight: float
    start: int
    end: int


class AspectOut(Out):
    aspect: str
    aspect_zh: str = Field(description="the aspect's Chinese name (GET /v1/taxonomy), e.g. 物流配送")
    polarity: Literal[*POLARITIES]
    polarity_zh: str = Field(description="正面 or 负面")
    score: float
    evidence: list[SpanOut]


class RootCauseOut(Out):
    cause: str
    cause_zh: str = Field(description="the cause's Chinese name (GET /v1/taxonomy), e.g. 物流配送")
    score: float
    evidence: list[SpanOut]


class TermOut(Out):
    term: str
    weight: float


class AnalyzeResponse(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [example("analyze")]})
    id: str | None
    sentiment: SentimentOut
    keywords: list[KeywordOut]
    aspects: list[AspectOut]
    root_causes: list[RootCauseOut]
    model: dict[str, str]
    meta: dict[str, str] | None = None
    top_terms: list[TermOut] | None = None


class ErrorBody(Out):
    code: Literal[tuple(CATALOGUE)] = Field(  # type: ignore[valid-type]
        description="stable code to switch on; docs/errors.md lists each with its status and meaning"
    )
    message: str = Field(description="what was wrong, for a person")
    request_id: str | None = Field(None, description="500 only: quote it when reporting the error")


class ErrorResponse(Out):
    error: ErrorBody


class BatchItemError(Out):
    id: str | None
    error: ErrorBody


class BatchResponse(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [example("analyze_batch")]})
    results: list[AnalyzeResponse | BatchItemError]
    summary: dict[str, Any]


def errors(*extra: int) -> dict:
    """OpenAPI ``responses`` for the error statuses a route can answer, all in the envelope;
    each status is described by the catalogue's codes that answer it."""
    statuses = sorted({400, 408, 413, 422, 500, 503, *extra})
    return {
        st: {"model": ErrorResponse, "description": ", ".join(c for c, e in CATALOGUE.items() if e.status == st)}
        for st in statuses
    }


ERRORS = errors()
JOB_ERRORS = errors(404, 409, 415, 507)
ADMIN_ERRORS = errors(401, 403, 409)
