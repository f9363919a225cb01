"""The QA score: four dimensions (0-100) weighted by a profile, minus compliance deductions.

Each dimension starts from a base the profile sets and moves only by findings, and says
which (``Explanation``: points, reason, finding, turn), so an inspector can audit every
point. Deductions are per violation, by rule and severity, from the profile. QA reads
rules and lexicon findings only (cue emotions, lexicon aspects), never the sentiment
model's label, so a retrained model cannot silently move a grade.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.conversations.findings import (
    Deduction,
    Dimension,
    Escalation,
    Explanation,
    PoliteHit,
    QAResult,
    Resolution,
    Timing,
    TurnEmotion,
    Violation,
    grade_for,
)
from app.conversations.model import Turn
from app.conversations.profiles import QAProfile
from app.pipeline.findings import Analysis

_ASKS = re.compile(r"[?？]|[吗呢么][\s。！!…~～]*$")


@dataclass(frozen=True, slots=True)
class QAInput:
    """Everything the score reads, gathered by the engine."""

    turns: Sequence[Turn]
    analyses: Sequence[Analysis]
    timing: Timing
    violations: Sequence[Violation]
    polite: Sequence[PoliteHit]
    resolution: Resolution
    escalation: Escalation
    emotions: Sequence[TurnEmotion]


class _Tally:
    def __init__(self, name: str, base: float, reason: str):
        self.name, self.score = name, base
        self.notes = [Explanation(base, reason, "base")]

    def move(self, points: float, reason: str, finding: str, turn: int | None = None) -> None:
        if points:
            self.score += points
            self.notes.append(Explanation(points, reason, finding, turn))

    def done(self) -> Dimension:
        return Dimension(self.name, round(min(max(float(self.score), 0.0), 100.0), 1), tuple(self.notes))


def _customer_aspects(x: QAInput, aspect: str) -> list[tuple[int, str]]:
    """(turn, polarity) of each customer turn whose review analysis evaluates ``aspect``."""
    out = []
    for t, a in zip(x.turns, x.analyses):
        if t.role == "customer":
            out.extend((t.index, f.polarity) for f in a.aspects if f.aspect == aspect)
    return out


def _aspect_moves(tally: _Tally, x: QAInput, aspect: str, penalty: float, bonus: float) -> None:
    hits = _customer_aspects(x, aspect)
    for turn, _pol in [h for h in hits if h[1] == "negative"][:2]:
        tally.move(-penalty, f"customer complains about {aspect}", "customer_aspect", turn)
    praise = [h for h in hits if h[1] == "positive"]
    if praise:
        tally.move(bonus, f"customer praises {aspect}", "customer_aspect", praise[0][0])


def responsiveness(x: QAInput, p: QAProfile) -> Dimension:
    """100 when replies were timed (else the profile's unmeasured score), minus slow and unanswered replies."""
    r = p.responsiveness
    has_agent = any(t.role == "agent" for t in x.turns)
    has_customer = any(t.role == "customer" for t in x.turns)
    if not has_agent:
        base, why = (0.0, "no agent answered the customer") if has_customer else (r.unmeasured_score, "no agent turn")
        return _Tally("responsiveness", base, why).done()
    measured = any(rt.seconds is not None for rt in x.timing.responses)
    tally = _Tally(
        "responsiveness",
        100.0 if measured else r.unmeasured_score,
        "replies timed" if measured else "no reply could be timed (timestamps missing)",
    )
    for v in x.violations:
        if v.rule == "slow_reply":
            late = (v.detail["seconds"] - v.detail["threshold_seconds"]) / 60
            tally.move(
                -round(min(r.slow_penalty_per_minute * late, r.slow_reply_cap), 1),
                f"slow reply: {v.detail['seconds']:g} s > {v.detail['threshold_seconds']:g} s",
                "slow_reply",
                v.turn,
            )
    if x.timing.unanswered_turn is not None and _open_request(x):
        tally.move(
            -r.unanswered_penalty,
            "the customer's last request got no agent reply",
            "unanswered",
            x.timing.unanswered_turn,
        )
    _aspect_moves(tally, x, "responsiveness", r.customer_complaint_penalty, 0.0)
    return tally.done()


def _open_request(x: QAInput) -> bool:
    """Does the final unanswered customer run ask or press for something?"""
    start = x.timing.unanswered_turn
    pressing = {h.turn for h in x.escalation.evidence}
    return any(t.role == "customer" and (t.index in pressing or _ASKS.search(t.text.strip())) for t in x.turns[start:])


def attitude(x: QAInput, p: QAProfile) -> Dimension:
    """Base plus polite-phrase kinds, minus rude/dismissive/blame-shifting phrases and customer complaints."""
    a = p.attitude
    tally = _Tally("attitude", a.base, "base")
    kinds = sorted({h.kind for h in x.polite})
    if kinds:
        tally.move(
            min(a.polite_bonus * len(kinds), a.polite_bonus_cap),
            f"polite phrases of {len(kinds)} kinds: {', '.join(kinds)}",
            "polite_phrases",
        )
    for v in x.violations:
        if v.rule == "forbidden_phrase" and v.detail["category"] in a.forbidden_categories:
            tally.move(
                -a.forbidden_penalty.of(v.severity), f"{v.detail['category']}: {v.text}", "forbidden_phrase", v.turn
            )
    _aspect_moves(tally, x, "attitude", a.customer_complaint_penalty, a.customer_praise_bonus)
    return tally.done()


def resolution(x: QAInput, p: QAProfile) -> Dimension:
    """The status's points, minus escalation risk and an angry ending."""
    r = p.resolution
    status = x.resolution.status
    turn = x.resolution.evidence[0].turn if x.resolution.evidence else None
    if status == "resolved" and x.resolution.source == "agent":
        base, why = r.resolved_by_agent_only, "resolved by the agent's word; the customer did not confirm"
    else:
        base, why = getattr(r, status), f"status {status}"
    tally = _Tally("resolution", base, why)
    if turn is not None:
        tally.notes[0] = Explanation(base, why, "resolution", turn)
    level = x.escalation.risk
    if level != "none":
        tally.move(-r.escalation_penalty.of(level), f"escalation risk {level}", "escalation")
    last = x.emotions[-1] if x.emotions else None
    if last is not None and last.source == "cues" and last.emotion == "anger":
        tally.move(-r.angry_end_penalty, "the customer ends angry", "emotion", last.turn)
    return tally.done()


def competence(x: QAInput, p: QAProfile) -> Dimension:
    """Base minus false promises and dismissive answers, plus a solved problem, minus repeated demands."""
    c = p.competence
    tally = _Tally("competence", c.base, "base")
    for v in x.violations:
        if v.rule == "forbidden_phrase" and v.detail["category"] in c.forbidden_categories:
            tally.move(
                -c.forbidden_penalty.of(v.severity), f"{v.detail['category']}: {v.text}", "forbidden_phrase", v.turn
            )
    if x.resolution.status == "resolved":
        tally.move(
            c.resolved_bonus,
            "the problem was solved",
            "resolution",
            x.resolution.evidence[0].turn if x.resolution.evidence else None,
        )
    demands = x.escalation.repeated_demand_turns
    if len(demands) >= 2:
        tally.move(
            -c.repeated_demand_penalty,
            f"the customer had to press in {len(demands)} turns",
            "repeated_demand",
            demands[-1],
        )
    _aspect_moves(tally, x, "competence", c.customer_complaint_penalty, c.customer_praise_bonus)
    return tally.done()


def score(x: QAInput, profile: QAProfile) -> QAResult:
    """Weighted dimensions minus deductions, clamped to 0-100, with its grade band."""
    dims = (responsiveness(x, profile), attitude(x, profile), resolution(x, profile), competence(x, profile))
    weights = profile.weights.model_dump()
    weighted = sum(weights[d.name] * d.score for d in dims)
    deductions = tuple(
        Deduction(v.rule, v.severity, v.turn, profile.deduction(v.rule, v.severity))
        for v in x.violations
        if profile.deduction(v.rule, v.severity)
    )
    total = round(min(max(weighted - sum(d.points for d in deductions), 0.0), 100.0), 1)
    applicable = any(t.role == "agent" for t in x.turns)
    notes = [] if applicable else ["no agent turn: the score judges an unattended conversation"]
    for limit, why in _caps(x, profile):
        if total > limit:
            total = limit
            notes.append(f"capped at {limit:g}: {why}")
    grade, grade_zh = grade_for(total)
    return QAResult(
        total, grade, grade_zh, profile.name, round(weighted, 2), weights, dims, deductions, applicable, tuple(notes)
    )


def _caps(x: QAInput, profile: QAProfile) -> list[tuple[float, str]]:
    """The grade caps that apply: a severe violation (at most 合格), an agent who left the
    customer waiting (请稍等 as the last word, never 优秀)."""
    caps = profile.caps
    out = []
    severe = sorted({v.code for v in x.violations if v.code in caps.severe_codes})
    if severe:
        out.append((caps.severe_max, "severe violation " + ", ".join(severe)))
    if any(t.role == "customer" for t in x.turns) and not any(t.role == "agent" for t in x.turns):
        out.append((caps.unattended_max, "no agent answered the customer"))
    if left_waiting(x):
        out.append((caps.left_waiting_max, "the agent's last word asked the customer to wait and never came back"))
    return out


def left_waiting(x: QAInput) -> bool:
    """The last agent turn is a 请稍等-style waiting phrase and nothing the agent said follows."""
    agent = [t.index for t in x.turns if t.role == "agent"]
    if not agent:
        return False
    last = agent[-1]
    waiting = any(p.turn == last and p.kind == "waiting" for p in x.polite)
    return waiting and not any(t.role in ("agent", "bot") and t.index > last for t in x.turns)
