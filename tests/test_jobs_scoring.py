"""Scoring one chunk: result rows in order with their ids, row errors, report counters."""

from __future__ import annotations

import json

from app.jobs.scoring import ReviewScorer
from app.jobs.workfile import WorkRow
from app.pipeline.engine import TextItem
from app.pipeline.terms import ContentWords

PLAN = {"group_columns": ["channel"], "date_column": "date"}


def test_content_words_keep_single_characters_and_drop_stop_words(fake_pipeline):
    (a,) = fake_pipeline.analyze_batch([TextItem("发货太慢了，质量也差，2次")], with_words=True)
    assert {"太慢", "差", "发货", "质量"} <= set(a.words)
    assert not {"了", "，", "2", "也"} & set(a.words)
    (b,) = fake_pipeline.analyze_batch([TextItem("发货太慢了")])
    assert b.words == ()  # only when asked for


def test_content_words_are_the_wordlike_words_that_are_not_stop_words(fake_pipeline):
    """ContentWords against its definition: distinct words in order, not stop words, at most 12
    characters, holding a CJK character or a Latin letter (wherever in the word)."""
    import re

    wordlike = re.compile(r"[\u4e00-\u9fffA-Za-z]")
    stop = fake_pipeline.lexicon.stopwords
    texts = [
        "发货太慢了，质量也差，2次",
        "质量很好，物流也快，物流快",
        "ＡＢＣ全角１２３ iPhone15 3.5kg",
        "的了吗？！……",
        "😀很好👍",
        "a" * 20 + " 超长的词语" * 3,
    ]
    cw = ContentWords(stop)
    for d in (fake_pipeline.make_doc(t) for t in texts):
        expected = [w for w in d.features.words if w not in stop and len(w) <= 12 and wordlike.search(w)]
        assert cw(d) == tuple(dict.fromkeys(expected))
    assert "iphone15" in cw(fake_pipeline.make_doc(texts[2]))  # a letter after a digit still counts


def test_a_chunk_scores_in_order_with_row_errors_and_counters(fake_pipeline):
    rows = [
        WorkRow("a", "发货太慢了", {"channel": "app", "date": "2026-11-20"}),
        WorkRow("b", "", {"channel": "web"}),
        WorkRow("c", None, {}, ("invalid_row", "line 4: expected a JSON object")),
        WorkRow("d", "质量很好", {"channel": "web", "date": "2026/11/21 09:00"}),
    ]
    out = ReviewScorer(fake_pipeline).score(10, rows, PLAN)
    assert [(r[0], r[1], r[2]) for r in out.rows] == [(10, "a", 0), (11, "b", 1), (12, "c", 1), (13, "d", 0)]
    bodies = [json.loads(r[3]) for r in out.rows]
    assert [b["row"] for b in bodies] == [11, 12, 13, 14] and "model" not in bodies[0]
    assert bodies[1]["error"]["code"] == "empty_text" and bodies[2]["error"]["code"] == "invalid_row"
    assert out.counts[("all", "", "rows")] == 4 and out.counts[("all", "", "errors")] == 2
    assert out.counts[("g:channel", "web", "rows")] == 2 and out.counts[("day", "2026-11-21", "analysed")] == 1
    assert out.counts[("day", "", "rows")] == 2  # rows without a date
    assert out.terms["慢"][0] == 1 and out.terms["慢"][3] == 10  # in one negative text: row 10
    assert out.model == fake_pipeline.versions
