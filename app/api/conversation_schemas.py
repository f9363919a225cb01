"""Request and response models of the conversation endpoints (API.md, POST /v1/conversations/analyze).

Requests are validated here for OpenAPI and the single endpoint; the engine validates
again (limits, times, profile) so a batch slot and a job row fail the same way.
Responses are built as dicts by ``app.conversations.present``; these models document them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from app.api.schemas import MIXED_DESCRIPTION, AspectOut, BatchItemError, KeywordOut, Out, example
from app.core.taxonomy import (
    EMOTIONS,
    ESCALATION_LEVELS,
    GRADE_CODES,
    GRADE_NAMES_ZH,
    PII_TYPES,
    POLITE_KINDS,
    RESOLUTION_STATUSES,
    ROLES,
    SATISFACTION_LEVELS,
    SENTIMENT_LABELS,
    SEVERITIES,
    VIOLATION_RULES,
)

EXAMPLE = {
    "id": "c-1001",
    "profile": "default",
    "turns": [
        {"role": "customer", "text": "在吗？我的快递三天了还没发货", "time": "2026-11-20T10:00:00+08:00"},
        {"role": "agent", "text": "您好，请稍等，我帮您查一下", "time": "2026-11-20T10:00:40+08:00", "agent_id": "a17"},
    ],
}


class TurnIn(BaseModel):
    role: Literal[*ROLES] = Field(  # type: ignore[valid-type]
        description="bot and system turns neither end a customer run nor count as a response"
    )
    text: StrictStr = Field(description="what was said; 1 to PINGJIA_MAX_TEXT_CHARS characters")
    time: StrictStr | StrictInt | StrictFloat | None = Field(
        None, description="ISO 8601 (no offset: +08:00) or epoch seconds; absent -> timing figures null"
    )
    agent_id: StrictStr | None = None


class ConversationRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})
    id: StrictStr | StrictInt | None = Field(None, description="caller id, echoed back")
    profile: StrictStr = Field("default", description="QA profile: default, promotion, or one an analyst added")
    turns: list[TurnIn] = Field(description="oldest first; 1 to PINGJIA_MAX_TURNS turns")


class ConversationBatchRequest(BaseModel):
    items: list[Any] = Field(
        description="conversations; a bad one gets an error in its own slot, the others are analysed",
        json_schema_extra={"items": {"$ref": "#/components/schemas/ConversationRequest"}},
    )


class ResponseTimeOut(Out):
    customer_turn: int
    agent_turn: int
    seconds: float | None


class TimingOut(Out):
    first_response_seconds: float | None
    avg_response_seconds: float | None
    max_response_seconds: float | None
    slow_replies: int
    threshold_seconds: float
    unanswered_turn: int | None = Field(description="first turn of a final customer run no agent answered")
    responses: list[ResponseTimeOut]


class TurnSpanOut(Out):
    turn: int
    text: str = Field(description="turns[turn].text[start:end]")
    start: int
    end: int


class ViolationOut(TurnSpanOut):
    rule: Literal[*VIOLATION_RULES]  # type: ignore[valid-type]
    rule_zh: str = Field(description="服务禁语, 泄露隐私, 缺少问候语, 缺少结束语 or 回复超时")
    severity: Literal[*SEVERITIES]  # type: ignore[valid-type]
    severity_zh: str = Field(description="低, 中 or 高")
    category: str | None = Field(None, description="forbidden_phrase: blame_shifting, dismissive, rude ...")
    category_zh: str | None = Field(None, description="forbidden_phrase: the category's name, e.g. 推诿")
    phrase: str | None = Field(None, description="forbidden_phrase: the lexicon phrase that matched (simplified)")
    source: str | None = Field(
        None,
        description="forbidden_phrase found by the trained chat model (model), or by a rule of "
        "lexicons/qa_rules.json: similar_rule (example sentences) or keyword_rule; absent for a "
        "forbidden_phrases.csv hit",
    )
    probability: float | None = Field(
        None, ge=0, le=1, description="model: the chat model's probability of the category for this turn"
    )
    rule_id: str | None = Field(None, description="similar_rule / keyword_rule: the id of the qa_rules.json rule")
    example: str | None = Field(None, description="similar_rule: the rule's example sentence the text is closest to")
    similarity: float | None = Field(
        None,
        ge=0,
        le=1,
        description="similar_rule: similarity of text to example (0-1, 3 places); fires at the rule's threshold",
    )
    expected: Literal["greeting", "closing"] | None = Field(
        None, description="missing_greeting / missing_closing: what the turn lacked"
    )
    pii_type: Literal[*PII_TYPES] | None = None  # type: ignore[valid-type]
    pii_type_zh: str | None = Field(None, description="pii_leak: 手机号, 身份证号, 银行卡号 or 地址")
    masked: str | None = Field(None, description="pii_leak: the matched text masked, e.g. 138****5678")
    masked_text: str | None = Field(None, description="pii_leak: the whole turn with its PII masked")
    echoes_customer: bool | None = Field(None, description="pii_leak: the customer had given this value earlier")
    seconds: float | None = Field(None, description="slow_reply: the wait")
    threshold_seconds: float | None = Field(None, description="slow_reply: the profile's limit it exceeded")
    customer_turn: int | None = Field(None, description="slow_reply: the customer turn that waited")


class RuleHitOut(TurnSpanOut):
    rule_id: str = Field(description="the id of the lexicons/qa_rules.json rule")
    code: str = Field(description="the rule's code: an analyst's flag (the file's flags), or a 服务禁语 code")
    code_zh: str = Field(description="a 服务禁语 code's Chinese name; an analyst's own code as itself")
    role: Literal["agent", "customer"] = Field(description="whose turn the rule reads")
    severity: Literal[*SEVERITIES]  # type: ignore[valid-type]
    severity_zh: str
    similarity: float | None = Field(
        ge=0, le=1, description="similarity of text to example (0-1, 3 places); null for a keyword-only rule"
    )
    example: str | None = Field(description="the rule's example sentence the text is closest to; null for keywords")


class PoliteOut(TurnSpanOut):
    kind: Literal[*POLITE_KINDS]  # type: ignore[valid-type]
    kind_zh: str
    phrase: str


class CueOut(TurnSpanOut):
    phrase: str
    kind: str
    level: str | None = None
    weight: float | None = None


class EmotionOut(Out):
    turn: int
    emotion: Literal[*EMOTIONS]  # type: ignore[valid-type]
    emotion_zh: str
    score: float
    source: Literal["model", "cues", "sentiment", "none"] = Field(
        description="model: the chat model's emotion head (evidence: the cue hits of that emotion); "
        "without a chat model: cues, the review sentiment, or none"
    )
    evidence: list[CueOut]


class PiiSharedOut(Out):
    turn: int
    pii_type: str
    start: int
    end: int
    masked: str


class CustomerOut(Out):
    sentiment_start: Literal[*SENTIMENT_LABELS] | None  # type: ignore[valid-type]
    sentiment_start_zh: str | None = Field(description="正面, 中性 or 负面")
    sentiment_end: Literal[*SENTIMENT_LABELS] | None  # type: ignore[valid-type]
    sentiment_end_zh: str | None
    escalation_risk: Literal[*ESCALATION_LEVELS]  # type: ignore[valid-type]
    escalation_risk_zh: str = Field(description="无, 低, 中 or 高")
    escalation_evidence: list[CueOut]
    escalation_reasons: list[str]
    emotions: list[EmotionOut]
    pii_shared: list[PiiSharedOut] = Field(description="PII the customer gave (not a leak), masked")


class ResolutionOut(Out):
    status: Literal[*RESOLUTION_STATUSES]  # type: ignore[valid-type]
    status_zh: str = Field(description="已解决, 未解决 or 未知")
    source: Literal["model", "customer", "agent"] | None = Field(
        description="model: the chat model decided (evidence: its deciding turns); without one, the "
        "speaker of the deciding resolution cue"
    )
    probabilities: dict[str, float] | None = Field(None, description="model: resolved/unresolved/unknown")
    evidence: list[TurnSpanOut]


class ConversationRootCauseOut(Out):
    cause: str
    cause_zh: str
    score: float
    evidence: list[TurnSpanOut]


class ExplanationOut(Out):
    effect: float = Field(description="points this finding moved the dimension (the base for 'base')")
    reason: str
    finding: str
    turn: int | None


class DeductionOut(Out):
    rule: str
    rule_zh: str
    severity: str
    severity_zh: str
    turn: int
    points: float


class QAOut(Out):
    score: float = Field(ge=0, le=100)
    grade: Literal[*GRADE_CODES]  # type: ignore[valid-type]
    grade_zh: Literal[*GRADE_NAMES_ZH]  # type: ignore[valid-type]
    profile: str
    dimensions: dict[str, float]
    dimensions_zh: dict[str, str] = Field(description="each dimension's Chinese name, e.g. responsiveness: 响应速度")
    explanations: dict[str, list[ExplanationOut]]
    weights: dict[str, float]
    weighted_score: float
    deductions: list[DeductionOut]
    applicable: bool = Field(description="false when no agent took part")
    notes: list[str]


class TurnSentimentOut(Out):
    label: Literal[*SENTIMENT_LABELS]  # type: ignore[valid-type]
    label_zh: str = Field(description="正面, 中性 or 负面")
    probabilities: dict[str, float]
    mixed: bool = Field(description=MIXED_DESCRIPTION + " (within this turn)")


class SatisfactionOut(Out):
    label: Literal[*SATISFACTION_LEVELS]  # type: ignore[valid-type]
    label_zh: str
    probabilities: dict[str, float]


class TurnOut(Out):
    index: int
    role: str
    role_zh: str = Field(description="客户, 客服, 机器人 or 系统")
    sentiment: TurnSentimentOut
    keywords: list[KeywordOut]
    aspects: list[AspectOut]
    emotion: str | None = Field(description="customer turns only")
    emotion_zh: str | None = Field(description="customer turns only: 愤怒, 焦虑, 失望, 满意 or 中性")
    satisfaction: SatisfactionOut | None = Field(
        None, description="customer turns, when a chat model serves: satisfaction at that point"
    )


class ConversationResponse(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [example("conversation")]})
    id: str | None
    timing: TimingOut
    violations: list[ViolationOut]
    polite_phrases: list[PoliteOut]
    rule_hits: list[RuleHitOut] = Field(
        description="hits of lexicons/qa_rules.json rules that are not agent violations: customer-role rules and "
        "analysts' own codes (agent rules with a 服务禁语 code are violations)"
    )
    customer: CustomerOut
    resolution: ResolutionOut
    root_causes: list[ConversationRootCauseOut]
    qa: QAOut
    turns: list[TurnOut]
    model: dict[str, str]


class ConversationBatchResponse(Out):
    results: list[ConversationResponse | BatchItemError]
    summary: dict[str, Any]
