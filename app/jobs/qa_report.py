"""The QA section of a chat job's report: per agent, per channel and overall.

Built from the additive counters :class:`app.jobs.report.Accumulator` keeps for
conversations, scope ``("qa", "")`` for the whole job and ``("qa:<column>", value)`` for
each agent_id and channel value:

- ``rows``, ``errors``, ``conversations`` (analysed), ``unattended`` (no agent turn);
- ``score_centi``: the sum of QA scores x 100 (the mean is exact to 0.01 points);
- ``dim_centi:<dimension>`` / ``dim_n:<dimension>``: the sum of one QA dimension's scores x 100
  and the number of conversations summed, over the conversations QA judged (an unattended one,
  ``applicable`` false, is left out), for ``dimensions_mean``;
- ``grade:<code>``, ``res:<status>``, ``viol:<code>`` (occurrences), ``vconv:<code>``
  (conversations with the code), ``service_violation`` (conversations with >= 1 code
  outside ``NON_SERVICE_CODES``);
- ``frt:<bucket>`` / ``frt_missing``: the first-response histogram over
  ``FIRST_RESPONSE_EDGES``, from which p50/p90 are interpolated;

plus one example per (scope, code): the conversation with the lowest row number.

Agents and channels whose violation rate or unresolved rate is above the rest are found with
the report's own group test (:func:`app.jobs.report.rate_tests`), with its numbers shown.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from app.core.taxonomy import GRADES, QA_DIMENSIONS, RESOLUTION_STATUSES, zh
from app.jobs.report import (
    DEFAULT_CONFIG,
    FIRST_RESPONSE_EDGES,
    NON_SERVICE_CODES,
    QA_COLUMNS,
    ReportConfig,
    ReportSource,
    bucket_percentile,
    build_report,
    group_test_rule,
    rate_tests,
    read_scopes,
)

TABLES = {"agent_id": "agents", "channel": "channels"}


def qa_columns(plan: Mapping) -> list[str]:
    """The QA columns whose values every row carries: seen at ingest and not dropped for having
    more than ``max_group_values`` distinct values (the profiler stops copying such a column,
    so its values would be missing from later rows)."""
    described = plan.get("columns") or {}
    return [c for c in QA_COLUMNS if isinstance((described.get(c) or {}).get("distinct"), int)]


def build_chat_report(source: ReportSource, plan: Mapping, *, config: ReportConfig = DEFAULT_CONFIG) -> dict:
    """A chat job's report: the review report over the customers' sentiment, plus ``qa``."""
    scopes = read_scopes(source)
    report = build_report(source, plan, config=config, scopes=scopes, sentiment_names="sentiment", mixed=False)
    report["qa"] = qa_report(scopes, source.iter_examples(), plan, config)
    return report


def qa_report(
    scopes: Mapping[tuple[str, str], Counter],
    examples: Iterable[tuple[str, str, str, int, str]],
    plan: Mapping,
    cfg: ReportConfig = DEFAULT_CONFIG,
) -> dict:
    """The QA section (docs/jobs.md, "QA section")."""
    ex: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for dim, key, code, _row, data in examples:
        ex[(dim, key)][code] = json.loads(data)
    overall = scopes.get(("qa", ""), Counter())
    usable = set(qa_columns(plan))
    return {
        "conversations": overall["conversations"],
        "overall": qa_stats(overall, ex.get(("qa", ""), {})),
        "dimensions_zh": {code: zh("qa_dimension", code) for code in QA_DIMENSIONS},
        **{TABLES[col]: _table(col, col in usable, scopes, ex, overall, plan, cfg) for col in QA_COLUMNS},
        "test": group_test_rule(cfg) + "; violation_rate = conversations with >= 1 service violation / conversations; "
        "unresolved_rate = unresolved / (resolved + unresolved)",
        "service_violations": "every violation code except " + ", ".join(sorted(NON_SERVICE_CODES)),
        "first_response_buckets_seconds": list(FIRST_RESPONSE_EDGES),
        "percentiles": "from a histogram of first-response seconds with the bucket lower edges "
        "above (the last bucket is open): linear inside the bucket holding the rank q x n; in the "
        "open bucket its lower edge is reported",
    }


def qa_stats(c: Counter, examples: Mapping[str, dict]) -> dict:
    """Counts, mean score, grades, violations, resolution and first response of one scope."""
    n = c["conversations"]
    codes = sorted({m[5:] for m in c if m.startswith("viol:")}, key=lambda k: (-c[f"viol:{k}"], k))
    resolved, unresolved = c["res:resolved"], c["res:unresolved"]
    known = resolved + unresolved
    buckets = [c[f"frt:{i}"] for i in range(len(FIRST_RESPONSE_EDGES))]
    return {
        "conversations": n,
        "errors": c["errors"],
        "unattended": c["unattended"],
        "qa_score_mean": round(c["score_centi"] / 100 / n, 2) if n else None,
        "dimensions_mean": dimensions_mean(c),
        "grades": [
            {
                "grade": code,
                "grade_zh": name,
                "name_zh": name,
                "count": c[f"grade:{code}"],
                "share": _share(c[f"grade:{code}"], n),
            }
            for _, code, name in GRADES
        ],
        "violations": [
            {
                "code": code,
                "code_zh": zh("violation", code),
                "service": code not in NON_SERVICE_CODES,
                "count": c[f"viol:{code}"],
                "conversations": c[f"vconv:{code}"],
                "example": examples.get(code),
            }
            for code in codes
        ],
        "conversations_with_service_violation": c["service_violation"],
        "violation_rate": _share(c["service_violation"], n),
        "resolution": {
            **{s: c[f"res:{s}"] for s in RESOLUTION_STATUSES},
            "resolution_rate": _share(resolved, known) if known else None,
            "unresolved_rate": _share(unresolved, known) if known else None,
        },
        "first_response": {
            "measured": sum(buckets),
            "missing": c["frt_missing"],
            "p50_seconds": bucket_percentile(buckets, 0.5),
            "p90_seconds": bucket_percentile(buckets, 0.9),
        },
    }


def dimensions_mean(c: Counter) -> dict[str, float | None]:
    """Each QA dimension's mean score (0-100) over the conversations of the scope that QA judged
    (not the unattended ones), in the taxonomy's order; None when there were none.

    >>> dimensions_mean(Counter({"dim_centi:attitude": 17050, "dim_n:attitude": 2}))["attitude"]
    85.25
    """
    return {
        code: round(c[f"dim_centi:{code}"] / 100 / c[f"dim_n:{code}"], 2) if c[f"dim_n:{code}"] else None
        for code in QA_DIMENSIONS
    }


def _table(
    col: str,
    usable: bool,
    scopes: Mapping[tuple[str, str], Counter],
    ex: Mapping[tuple[str, str], Mapping[str, dict]],
    overall: Counter,
    plan: Mapping,
    cfg: ReportConfig,
) -> dict:
    """One QA column: a row per value (most conversations first) with both rate tests, and the
    values flagged by either."""
    if not usable:
        described = (plan.get("columns") or {}).get(col)
        why = (
            f"no row has {col!r}"
            if described is None
            else f"{col!r} has more than {cfg.max_group_values} distinct values (or values over 64 "
            "characters): no per-value table"
        )
        return {"column": col, "available": False, "note": why, "without_value": None, "groups": [], "flagged": []}
    groups = {key: c for (dim, key), c in scopes.items() if dim == f"qa:{col}" and key}
    viol, _, _ = rate_tests({k: (c["service_violation"], c["conversations"]) for k, c in groups.items()}, cfg)
    unres, _, _ = rate_tests(
        {k: (c["res:unresolved"], c["res:resolved"] + c["res:unresolved"]) for k, c in groups.items()}, cfg
    )
    rows, flagged = [], []
    for key, c in sorted(groups.items(), key=lambda kv: (-kv[1]["conversations"], kv[0])):
        tests = {"violation_rate": viol[key], "unresolved_rate": unres[key]}
        rows.append({"value": key, **qa_stats(c, ex.get((f"qa:{col}", key), {})), "tests": tests})
        flagged += [
            {"value": key, "metric": metric, **{k: v for k, v in t.items() if k != "flagged"}}
            for metric, t in tests.items()
            if t["flagged"]
        ]
    return {
        "column": col,
        "available": True,
        "note": None,
        "without_value": overall["rows"] - sum(c["rows"] for c in groups.values()),
        "groups": rows,
        "flagged": flagged,
    }


def _share(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0
