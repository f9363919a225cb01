"""The 差评报表 of a scored DataFrame, computed in Spark, in the shape of ``GET /v1/jobs/{id}/summary``.

Nothing of the report is written twice. The statistics (shares, the groups' z-test, the
daily series and spike alerts, complaint terms) are :func:`app.jobs.service.summary_of` over a
``ReportSource``, the code a job's summary runs. What is counted per row is the jobs' own
``Accumulator``, filled per partition in the Python workers (``AccumulateFrames``) as a job
worker fills one per chunk; Spark sums the partitions' counters with ``groupBy`` as the job
store sums chunks'. Which columns are group columns and which one gives the day is the jobs'
``ColumnProfiler.plan``, fed with counts Spark computed over every value (distinct values per
column, non-empty values, dates among them).

Per-row data the counters cannot hold is fetched for the few rows that need it: the text of
each complaint term's example (its lowest negative row, as in a job) and the first five error
rows. Differences from ``pingjia score --summary`` on the same file are listed in docs/spark.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    NumericType,
    StringType,
    TimestampNTZType,
    TimestampType,
)

from app.integrations.spark_schema import columns
from app.integrations.spark_worker import (
    COUNTER_SCHEMA,
    AccumulateFrames,
    DateFlags,
    conversation_payload,
)
from app.jobs.columns import MAX_COLUMNS, MAX_VALUE_CHARS, ColumnProfile, ColumnProfiler
from app.jobs.qa_report import qa_columns
from app.jobs.report import DEFAULT_CONFIG, ReportConfig
from app.jobs.service import example_text, summary_of

SCALAR_TYPES = (StringType, NumericType, BooleanType, DateType, TimestampType, TimestampNTZType)


def text_of(name: str) -> Column:
    """A column's values as the text a job's extra column holds (null -> empty)."""
    return F.coalesce(F.col(f"`{name}`").cast("string"), F.lit(""))


def extra_columns(scored: DataFrame, kind: str, text_col: str) -> list[str]:
    """The columns a job would profile: every scalar input column the output kept, but the text
    (and the derived chat columns first, as a job puts them), at most ``MAX_COLUMNS``."""
    fixed = {name for name, _, _ in columns(kind)} | {text_col}
    scalar = [f.name for f in scored.schema.fields if isinstance(f.dataType, SCALAR_TYPES) and f.name not in fixed]
    if kind == "conversations":
        first = [c for c in ("channel", "agent_id", "started_at") if c in scalar]
        scalar = first + [c for c in scalar if c not in first]
    return scalar[:MAX_COLUMNS]


def plan_of(
    scored: DataFrame,
    extras: Sequence[str],
    total: int,
    group_cols: Sequence[str] | None,
    date_col: str | None,
    config: ReportConfig,
) -> dict:
    """The report plan (group columns, date column, each column's profile) by the jobs' own
    ``ColumnProfiler.plan``; raises its ``InvalidUpload`` for a group or date column that cannot
    be one, as ``pingjia score`` does."""
    profiler = ColumnProfiler(date_col, config)
    profiles = {name: ColumnProfile(name, hint=name == date_col) for name in extras}
    profiler.columns = profiles
    if extras:
        pairs = F.explode(F.array(*[F.struct(F.lit(c).alias("name"), text_of(c).alias("value")) for c in extras]))
        counted = (
            scored.select(pairs.alias("p"))
            .select("p.name", "p.value")
            .where(F.col("value") != "")
            .groupBy("name", "value")
            .count()
        )
        flagged = counted.mapInPandas(
            DateFlags({n: p.hint for n, p in profiles.items()}),
            "name STRING, value STRING, count BIGINT, date BOOLEAN",
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            stats = flagged.groupBy("name").agg(
                F.count("*").alias("distinct"),
                F.sum("count").alias("nonempty"),
                F.sum(F.when(F.col("date"), F.col("count")).otherwise(0)).alias("dates"),
                F.max(F.length("value")).alias("longest"),
            )
            small = []
            for r in stats.collect():
                p = profiles[r["name"]]
                p.nonempty, p.dates = int(r["nonempty"]), int(r["dates"])
                if r["distinct"] <= config.max_group_values and r["longest"] <= MAX_VALUE_CHARS:
                    small.append(r["name"])
                else:
                    p.values = None
            for r in flagged.where(F.col("name").isin(small)).select("name", "value").collect():
                profiles[r["name"]].values.add(r["value"])
        finally:
            flagged.unpersist()
    return profiler.plan(total, None if group_cols is None else tuple(group_cols))


class SparkSource:
    """A ``ReportSource`` over counters Spark summed (collected once: counts and examples are
    bounded by groups x days x metrics; terms are filtered to those a complaint term needs,
    with their totals summed in Spark)."""

    def __init__(self, scored: DataFrame, plan: dict, kind: str, text_col: str, config: ReportConfig):
        self.scored, self.kind, self.text_col = scored, kind, text_col
        values = [*plan["group_columns"], *([plan["date_column"]] if plan["date_column"] else [])]
        qa = tuple(qa_columns(plan)) if kind == "conversations" else None
        values += list(qa or ())
        frame = scored.select(
            "row", "id", "error_code", "report_facts", *[text_of(c).alias(f"v{i}") for i, c in enumerate(values)]
        )
        fn = AccumulateFrames(tuple(plan["group_columns"]), plan["date_column"], bool(plan.get("date_epoch")), qa)
        summed = (
            frame.mapInPandas(fn, COUNTER_SCHEMA)
            .groupBy("part", "dim", "key", "metric")
            .agg(
                F.sum("n").alias("n"),
                F.sum("neg").alias("neg"),
                F.sum("pos").alias("pos"),
                F.min("row").alias("row"),
                F.min_by("data", "row").alias("data"),
            )
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        try:
            part = F.col("part")
            counts = summed.where(part == "count").select("dim", "key", "metric", "n").collect()
            # in the job store's order (its primary key), so equal counts list in the same order
            self.counts = sorted(tuple(r) for r in counts)
            totals = summed.where(part == "term").agg(F.sum("neg"), F.sum("pos"), F.sum("n")).first()
            self.totals = tuple(int(x or 0) for x in totals)
            keep = (part == "term") & (F.col("neg") >= config.terms_min_negative)
            self.terms = [tuple(r) for r in summed.where(keep).select("metric", "neg", "pos", "n", "row").collect()]
            examples = summed.where(part == "example").select("dim", "key", "metric", "row", "data")
            self.examples = [tuple(r) for r in examples.collect()]
        finally:
            summed.unpersist()

    def iter_counts(self):
        return iter(self.counts)

    def iter_terms(self):
        return iter(self.terms)

    def term_totals(self):
        return self.totals

    def texts(self, rows: list[int]) -> dict[int, tuple[str, str]]:
        """(id, text) of rows (0-based) from the kept text column (none when it was not kept)."""
        if not rows or self.text_col not in self.scored.columns:
            return {}
        found = self.scored.where(F.col("row").isin([r + 1 for r in rows])).select("row", "id", f"`{self.text_col}`")
        out = {}
        for row, rid, value in found.collect():
            payload = value if self.kind == "reviews" else conversation_payload(value)
            out[row - 1] = (rid, example_text(payload if not isinstance(payload, tuple) else ""))
        return out

    def error_examples(self, limit: int) -> list[dict]:
        bad = self.scored.where(F.col("error_code").isNotNull()).orderBy("row").limit(limit)
        return [
            {"row": r["row"], "id": r["id"], "code": r["error_code"], "message": r["error_message"]}
            for r in bad.select("row", "id", "error_code", "error_message").collect()
        ]

    def iter_examples(self):
        return iter(self.examples)


def report(
    scored: DataFrame,
    group_cols: Sequence[str] | None = None,
    date_col: str | None = None,
    *,
    text_col: str = "text",
    kind: str | None = None,
) -> dict:
    """The summary ``GET /v1/jobs/{id}/summary`` answers, for the output of ``score()``
    (``job_id`` null). ``group_cols`` / ``date_col``: as ``pingjia score --group-columns`` /
    ``--date-column`` (None: detected, by the same rule); ``text_col``: the kept text or
    transcript column, for the complaint terms' examples; ``kind``: from the columns when None.

    It reads ``scored`` a few times: pass the written output (``spark.read.parquet``) or a
    cached DataFrame, or the scoring runs again. Raises ``app.core.errors.PingjiaError`` for a
    group or date column that cannot be one (the message says why)."""
    kind = kind or ("conversations" if "result_json" in scored.columns else "reviews")
    needed = ("row", "id", "error_code", "error_message", "model", "report_facts")
    missing = [c for c in needed if c not in scored.columns]
    if missing:
        raise ValueError(f"report() reads the output of score(); {missing} are not among the columns {scored.columns}")
    total = scored.count()
    plan = plan_of(scored, extra_columns(scored, kind, text_col), total, group_cols, date_col, DEFAULT_CONFIG)
    source = SparkSource(scored, plan, kind, text_col, DEFAULT_CONFIG)
    first = scored.select("model").where(F.col("model").isNotNull()).first()
    return summary_of(source, plan, kind, dict(first["model"]) if first else None)
