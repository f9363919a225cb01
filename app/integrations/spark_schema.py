"""The output schema of :func:`app.integrations.spark.score`: one table per kind, written out
column by column so docs/spark.md can show it (a test keeps the two equal).

Plain strings (Spark DDL), no pyspark here: the Python workers read these names too, and
importing this module costs nothing. Every finding's shape is the API's own (the field names of
``app.pipeline.present`` and ``app.conversations.present``), so a row of the table reads like a
``POST /v1/analyze`` answer.
"""

from __future__ import annotations

from app.core.taxonomy import SENTIMENT_LABELS

SPAN = "STRUCT<`text`: STRING, `start`: INT, `end`: INT>"
TURN_SPAN = "STRUCT<`turn`: INT, `text`: STRING, `start`: INT, `end`: INT>"
KEYWORD = (
    "STRUCT<`term`: STRING, `text`: STRING, `dimension`: STRING, `dimension_zh`: STRING, `polarity`: STRING, "
    "`polarity_zh`: STRING, `negated`: BOOLEAN, `weight`: DOUBLE, `start`: INT, `end`: INT>"
)
ASPECT = (
    "STRUCT<`aspect`: STRING, `aspect_zh`: STRING, `polarity`: STRING, `polarity_zh`: STRING, `score`: DOUBLE, "
    f"`evidence`: ARRAY<{SPAN}>>"
)
ROOT_CAUSE = f"STRUCT<`cause`: STRING, `cause_zh`: STRING, `score`: DOUBLE, `evidence`: ARRAY<{SPAN}>>"
CHAT_ROOT_CAUSE = f"STRUCT<`cause`: STRING, `cause_zh`: STRING, `score`: DOUBLE, `evidence`: ARRAY<{TURN_SPAN}>>"
VIOLATION = (
    "STRUCT<`turn`: INT, `rule`: STRING, `rule_zh`: STRING, `code`: STRING, `text`: STRING, `start`: INT, "
    "`end`: INT, `severity`: STRING, `severity_zh`: STRING>"
)
VIOLATION_FIELDS = ("turn", "rule", "rule_zh", "code", "text", "start", "end", "severity", "severity_zh")
"""The fields of ``VIOLATION``: the API's violation (``app.conversations.present``) and the Violation's ``code``."""
PROBABILITIES = "STRUCT<" + ", ".join(f"`{label}`: DOUBLE" for label in SENTIMENT_LABELS) + ">"
QA_FACTS = (
    "STRUCT<`score`: DOUBLE, `grade`: STRING, `resolution`: STRING, `first_response_seconds`: DOUBLE, "
    "`applicable`: BOOLEAN, `violations`: ARRAY<STRUCT<`code`: STRING, `turn`: INT, `text`: STRING>>, "
    "`dimensions`: ARRAY<STRUCT<`code`: STRING, `score`: DOUBLE>>>"
)
REPORT_FACTS = (
    "STRUCT<`label`: STRING, `causes`: ARRAY<STRING>, `aspects`: ARRAY<STRUCT<`aspect`: STRING, "
    f"`polarity`: STRING>>, `terms`: ARRAY<STRING>, `mixed`: BOOLEAN, `qa`: {QA_FACTS}>"
)

HEAD = [
    ("row", "BIGINT", "position of the row in the input, from 1 (Spark's read order; a file's own order)"),
    ("id", "STRING", "the id column's value as text; the row number when it is absent or empty"),
    ("error_code", "STRING", "null, or why the row was not analysed (docs/errors.md: `empty_text`, `text_too_long` …)"),
    ("error_message", "STRING", "null, or the error's message naming the field"),
]
TAIL = [
    ("model", "MAP<STRING, STRING>", "versions of the models, lexicon (and chat rules) that scored the row"),
    (
        "report_facts",
        REPORT_FACTS,
        "what `report()` counts of the row (the jobs' `RowFacts`: label, causes, aspect pairs, complaint-term "
        "vocabulary, `qa` for chats); null on an error row; drop it if you need no report",
    ),
]
REVIEW_COLUMNS: list[tuple[str, str, str]] = [
    *HEAD,
    ("sentiment", "STRING", "`positive`, `neutral` or `negative`"),
    ("probabilities", PROBABILITIES, "the sentiment model's probability of each label"),
    ("mixed", "BOOLEAN", "praise and blame on different evidence (the API's `sentiment.mixed`)"),
    ("keywords", f"ARRAY<{KEYWORD}>", "lexicon terms found, polarity after negation, offsets into the text"),
    ("aspects", f"ARRAY<{ASPECT}>", "(aspect, polarity) pairs asserted, with the clauses that carried them"),
    ("root_causes", f"ARRAY<{ROOT_CAUSE}>", "the negative aspects, best first, with evidence"),
    *TAIL,
]
CONVERSATION_COLUMNS: list[tuple[str, str, str]] = [
    *HEAD,
    ("customer_sentiment_start", "STRING", "the customer's sentiment in their first turns"),
    ("customer_sentiment_end", "STRING", "… and in their last turns (the report's sentiment of a chat)"),
    ("escalation_risk", "STRING", "`none`, `low`, `medium` or `high`"),
    ("qa_score", "DOUBLE", "QA score, 0–100"),
    ("qa_grade", "STRING", "`excellent`, `good`, `pass` or `needs_improvement` (优秀/良好/合格/待改进)"),
    ("qa_applicable", "BOOLEAN", "false when no agent turn was there to judge"),
    ("qa_profile", "STRING", "the QA profile that scored it"),
    ("resolution", "STRING", "`resolved`, `unresolved` or `unknown`"),
    ("resolution_source", "STRING", "`model`, or the speaker of the cue that decided (no chat model)"),
    ("first_response_seconds", "DOUBLE", "seconds to the agent's first reply (null without times)"),
    ("avg_response_seconds", "DOUBLE", "mean agent reply time"),
    ("slow_replies", "INT", "agent replies slower than the profile's threshold"),
    ("violations", f"ARRAY<{VIOLATION}>", "服务禁语, PII leaks, missing greeting/closing, slow replies, turn by turn"),
    ("root_causes", f"ARRAY<{CHAT_ROOT_CAUSE}>", "the customer's complaints merged per cause, with their turns"),
    (
        "result_json",
        "STRING",
        "the row as `pingjia score` writes it: `row`, `id` and the inspection `POST /v1/conversations/analyze` "
        "answers (without `model`)",
    ),
    *TAIL,
]
DERIVED_CHAT_COLUMNS: list[tuple[str, str, str]] = [
    ("agent_id", "STRING", "the first agent turn's agent_id (only when the input has no such column)"),
    ("channel", "STRING", "the transcript's channel or meta.channel (only when the input has no such column)"),
    ("started_at", "STRING", "the first turn's time (only when the input has no such column)"),
]
"""Group and date values of a conversation, as ``pingjia score`` derives them for its report."""


def columns(kind: str) -> list[tuple[str, str, str]]:
    """The fixed output columns of ``kind`` (without the derived chat columns)."""
    if kind == "reviews":
        return REVIEW_COLUMNS
    if kind == "conversations":
        return CONVERSATION_COLUMNS
    raise ValueError(f"kind must be 'reviews' or 'conversations', not {kind!r}")


def ddl(cols: list[tuple[str, str, str]]) -> str:
    """A Spark DDL schema string for ``(name, type, _)`` columns.

    >>> ddl([("id", "STRING", ""), ("n", "INT", "")])
    '`id` STRING, `n` INT'
    """
    return ", ".join(f"`{name}` {type_}" for name, type_, _ in cols)
