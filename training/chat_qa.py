"""Fitting the QA profile's free constants to the inspectors' labelled scores.

The score's structure stays the inspector's (four dimensions weighted by the profile, per
violation deductions, hard caps); what is fitted is the handful of point values. Inputs are
the findings the trained models produced for conversations they never saw (cross-validated),
so the constants absorb the models' real noise, not gold labels. Bounded Powell search on the
mean absolute error of the score, from the current values.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from app.conversations import qa
from app.conversations.profiles import QAProfile

PARAMS: tuple[tuple[str, ...], ...] = (
    ("attitude", "base"),
    ("attitude", "forbidden_penalty", "medium"),
    ("attitude", "forbidden_penalty", "high"),
    ("competence", "base"),
    ("competence", "forbidden_penalty", "medium"),
    ("competence", "forbidden_penalty", "high"),
    ("resolution", "unresolved"),
    ("resolution", "unknown"),
    ("responsiveness", "slow_penalty_per_minute"),
    ("responsiveness", "unanswered_penalty"),
    ("responsiveness", "unmeasured_score"),
    ("deductions", "forbidden_phrase", "medium"),
    ("deductions", "forbidden_phrase", "high"),
    ("deductions", "pii_leak", "high"),
    ("deductions", "missing_closing", "low"),
)


def _get(d: dict, path: Sequence[str]) -> float:
    for k in path[:-1]:
        d = d.get(k, {})
    return float(d.get(path[-1], 0.0))


def _set(d: dict, path: Sequence[str], value: float) -> None:
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = round(float(value), 1)


def full_dict(profile: QAProfile) -> dict:
    """The profile with every default written out (so each parameter has a value to start from)."""
    return profile.model_dump(exclude={"name"})


def with_values(base: dict, values: Sequence[float]) -> QAProfile:
    d = copy.deepcopy(base)
    for path, v in zip(PARAMS, values):
        _set(d, path, min(max(v, 0.0), 100.0))
    return QAProfile.model_validate(d)


def mae(profile: QAProfile, inputs: Sequence[qa.QAInput], gold: Sequence[float]) -> float:
    return float(np.mean([abs(qa.score(x, profile).score - g) for x, g in zip(inputs, gold)]))


def fit_constants(base: QAProfile, inputs: Sequence[qa.QAInput], gold: Sequence[float]) -> dict:
    """The base profile (as a dict) with PARAMS fitted on (inputs, gold scores)."""
    start_dict = full_dict(base)
    x0 = np.array([_get(start_dict, p) for p in PARAMS])
    res = minimize(
        lambda v: mae(with_values(start_dict, v), inputs, gold),
        x0,
        method="Powell",
        bounds=[(0, 100)] * len(PARAMS),
        options={"maxiter": 4, "xtol": 0.5, "ftol": 1e-3},
    )
    out = copy.deepcopy(start_dict)
    for path, v in zip(PARAMS, res.x):
        _set(out, path, v)
    return out
