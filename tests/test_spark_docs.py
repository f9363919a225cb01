"""docs/spark.md shows the Spark output schema as :mod:`app.integrations.spark_schema` defines it
(no Spark needed: the schema module is plain strings)."""

from __future__ import annotations

import pytest

from app.integrations.spark_schema import CONVERSATION_COLUMNS, DERIVED_CHAT_COLUMNS, REVIEW_COLUMNS, columns, ddl
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "spark.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name, type_", [(n, t) for n, t, _ in (*REVIEW_COLUMNS, *CONVERSATION_COLUMNS, *DERIVED_CHAT_COLUMNS)]
)
def test_docs_show_every_output_column_with_its_type(name, type_):
    assert f"| `{name}` | `{type_.replace('`', '')}` |" in DOC


def test_both_kinds_start_with_the_same_head_and_end_with_model_and_facts():
    for kind in ("reviews", "conversations"):
        names = [n for n, _, _ in columns(kind)]
        assert names[:4] == ["row", "id", "error_code", "error_message"]
        assert names[-2:] == ["model", "report_facts"] and len(set(names)) == len(names)
    assert ddl(REVIEW_COLUMNS[:2]) == "`row` BIGINT, `id` STRING"
    with pytest.raises(ValueError, match="kind"):
        columns("tweets")
