"""Frozen result types of transcript inspection.

Every span is an offset pair into the ORIGINAL text of one turn:
``turns[f.turn].text[f.start:f.end] == f.text`` holds for every finding below.
The codes they carry (rules, severities, emotions, levels, statuses, grades) are in
:mod:`app.core.taxonomy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.core.taxonomy import GRADES
from app.pipeline.findings import Analysis

if TYPE_CHECKING:
    from app.conversations.custom_rules import RuleHit


@dataclass(frozen=True, slots=True)
class Evidence:
    turn: int
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken service rule. ``detail`` holds rule-specific facts (category, pii_type, masked, seconds ...)."""

    turn: int
    rule: str
    text: str
    start: int
    end: int
    severity: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str:
        """What was broken: a 服务禁语 code (blame_shifting ...) for phrase/model findings, else the rule."""
        return self.detail.get("category", self.rule)


@dataclass(frozen=True, slots=True)
class PoliteHit:
    turn: int
    text: str
    start: int
    end: int
    kind: str
    phrase: str


@dataclass(frozen=True, slots=True)
class CueHit:
    """A lexicon cue found in a turn: ``kind`` is its class (complaint, anger, resolved ...),
    ``value`` its strength (escalation level, emotion weight)."""

    turn: int
    text: str
    start: int
    end: int
    phrase: str
    kind: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class ResponseTime:
    customer_turn: int
    agent_turn: int
    seconds: float | None  # None: a timestamp is missing on either side


@dataclass(frozen=True, slots=True)
class Timing:
    first_response_seconds: float | None
    avg_response_seconds: float | None
    max_response_seconds: float | None
    slow_replies: int
    threshold_seconds: float
    responses: tuple[ResponseTime, ...]
    unanswered_turn: int | None  # first turn of a final customer run no agent answered


@dataclass(frozen=True, slots=True)
class TurnEmotion:
    turn: int
    emotion: str
    score: float
    source: str  # "cues", "sentiment" or "none"
    evidence: tuple[CueHit, ...]


@dataclass(frozen=True, slots=True)
class Escalation:
    risk: str
    evidence: tuple[CueHit, ...]
    reasons: tuple[str, ...]
    repeated_demand_turns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PiiFinding:
    turn: int
    pii_type: str
    text: str
    start: int
    end: int
    masked: str


@dataclass(frozen=True, slots=True)
class CustomerReport:
    sentiment_start: str | None
    sentiment_end: str | None
    emotions: tuple[TurnEmotion, ...]
    escalation: Escalation
    pii_shared: tuple[PiiFinding, ...]


@dataclass(frozen=True, slots=True)
class Resolution:
    status: str
    source: str | None  # "model", or the cue's speaker "customer"/"agent" (no chat model), None: unknown
    evidence: tuple[Evidence, ...]
    probabilities: dict[str, float] | None = None  # the chat model's, when it decided


@dataclass(frozen=True, slots=True)
class RootCause:
    cause: str
    score: float
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a QA dimension moved: ``effect`` points (signed), the finding behind it, and the turn."""

    effect: float
    reason: str
    finding: str
    turn: int | None = None


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    score: float
    explanations: tuple[Explanation, ...]


@dataclass(frozen=True, slots=True)
class Deduction:
    rule: str
    severity: str
    turn: int
    points: float


@dataclass(frozen=True, slots=True)
class QAResult:
    score: float
    grade: str
    grade_zh: str
    profile: str
    weighted_score: float
    weights: dict[str, float]
    dimensions: tuple[Dimension, ...]
    deductions: tuple[Deduction, ...]
    applicable: bool
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnReport:
    index: int
    role: str
    analysis: Analysis
    emotion: TurnEmotion | None
    satisfaction: tuple[str, dict[str, float]] | None = None  # customer turns, with a chat model


@dataclass(frozen=True, slots=True)
class ConversationReport:
    id: str | None
    timing: Timing
    violations: tuple[Violation, ...]
    polite_phrases: tuple[PoliteHit, ...]
    customer: CustomerReport
    resolution: Resolution
    root_causes: tuple[RootCause, ...]
    qa: QAResult
    turns: tuple[TurnReport, ...]
    versions: dict[str, str]
    rule_hits: tuple[RuleHit, ...] = ()  # qa_rules.json hits that are not violations (flags, customer rules)


def grade_for(score: float) -> tuple[str, str]:
    """Grade band of a 0-100 score (API.md: 优秀 >= 90, 良好 80-89, 合格 60-79, 待改进 < 60).

    >>> grade_for(89.9), grade_for(90)
    (('good', '良好'), ('excellent', '优秀'))
    """
    for floor, code, zh in GRADES:
        if score >= floor:
            return code, zh
    return GRADES[-1][1], GRADES[-1][2]
