"""QA profiles: the weights, thresholds and points a quality inspector scores with.

A profile is a JSON file in ``lexicons/qa_profiles/`` named after the profile
(``promotion.json`` -> ``"profile": "promotion"``). Only ``version``, ``description``
and ``weights`` are required; every other knob has the default shown here, so an
analyst writes only what differs. Unknown keys are rejected (a typo must not silently
fall back to a default).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.taxonomy import FORBIDDEN_CATEGORIES, QA_DIMENSIONS, SEVERITIES, VIOLATION_RULES

Category = Literal[*FORBIDDEN_CATEGORIES]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The fields of Points and Weights are taxonomy.SEVERITIES and QA_DIMENSIONS (tests/test_taxonomy.py).
class Points(_Strict):
    """Points by severity."""

    low: float = Field(0, ge=0, le=100)
    medium: float = Field(0, ge=0, le=100)
    high: float = Field(0, ge=0, le=100)

    def of(self, severity: str) -> float:
        return getattr(self, severity)


class Weights(_Strict):
    responsiveness: float = Field(ge=0, le=1)
    attitude: float = Field(ge=0, le=1)
    resolution: float = Field(ge=0, le=1)
    competence: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self):
        total = sum(getattr(self, d) for d in QA_DIMENSIONS)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must add up to 1.0, not {total:g}")
        return self


class ResponsivenessRules(_Strict):
    slow_penalty_per_minute: float = Field(
        10, ge=0, le=100, description="per minute a reply came later than the threshold (in proportion)"
    )
    slow_reply_cap: float = Field(25, ge=0, le=100, description="at most this per slow reply")
    very_slow_factor: float = Field(3, ge=1, description="a reply over threshold x this is very slow (severity)")
    unanswered_penalty: float = Field(30, ge=0, le=100, description="the customer's last request got no reply")
    unmeasured_score: float = Field(80, ge=0, le=100, description="score when no reply could be timed")
    customer_complaint_penalty: float = Field(10, ge=0, le=100, description="customer complains of slowness")


class AttitudeRules(_Strict):
    base: float = Field(80, ge=0, le=100)
    polite_bonus: float = Field(5, ge=0, le=100, description="per distinct polite kind used")
    polite_bonus_cap: float = Field(20, ge=0, le=100)
    forbidden_penalty: Points = Points(low=10, medium=20, high=30)
    forbidden_categories: tuple[Category, ...] = ("blame_shifting", "dismissive", "rude", "impatient")
    customer_complaint_penalty: float = Field(15, ge=0, le=100, description="customer complains of the attitude")
    customer_praise_bonus: float = Field(10, ge=0, le=100)


class ResolutionRules(_Strict):
    resolved: float = Field(100, ge=0, le=100)
    resolved_by_agent_only: float = Field(85, ge=0, le=100, description="the agent said done; customer silent")
    unknown: float = Field(60, ge=0, le=100)
    unresolved: float = Field(20, ge=0, le=100)
    escalation_penalty: Points = Points(low=0, medium=10, high=20)
    angry_end_penalty: float = Field(10, ge=0, le=100, description="last customer turn shows anger (cues)")


class CompetenceRules(_Strict):
    base: float = Field(85, ge=0, le=100)
    forbidden_penalty: Points = Points(low=5, medium=10, high=20)
    forbidden_categories: tuple[Category, ...] = ("over_promise", "dismissive", "off_platform")
    resolved_bonus: float = Field(10, ge=0, le=100)
    repeated_demand_penalty: float = Field(10, ge=0, le=100, description="customer had to ask again and again")
    customer_complaint_penalty: float = Field(15, ge=0, le=100)
    customer_praise_bonus: float = Field(10, ge=0, le=100)


class Caps(_Strict):
    """Hard limits an inspector applies whatever the points say (CHAT_ANNOTATION.md)."""

    severe_codes: tuple[str, ...] = ("rude", "off_platform", "pii_leak")
    severe_max: float = Field(79, ge=0, le=100, description="one severe violation: at most 合格")
    left_waiting_max: float = Field(89, ge=0, le=100, description="the agent's last word was 请稍等: never 优秀")
    unattended_max: float = Field(59, ge=0, le=100, description="a customer spoke and no agent answered: 待改进")


class QAProfile(_Strict):
    name: str = ""
    version: str = Field(min_length=1)
    description: str = Field(min_length=1)
    weights: Weights
    slow_reply_seconds: float | None = Field(None, gt=0, description="None: the service setting (default 60 s)")
    very_slow_severity: Literal[*SEVERITIES] = "high"  # type: ignore[valid-type]
    deductions: dict[Literal[*VIOLATION_RULES], Points] = {}  # type: ignore[valid-type]
    responsiveness: ResponsivenessRules = ResponsivenessRules()
    attitude: AttitudeRules = AttitudeRules()
    resolution: ResolutionRules = ResolutionRules()
    competence: CompetenceRules = CompetenceRules()
    caps: Caps = Caps()
    fitted: dict | None = Field(None, description="how the constants were fitted (written by training)")

    def deduction(self, rule: str, severity: str) -> float:
        points = self.deductions.get(rule)
        return points.of(severity) if points else 0.0
