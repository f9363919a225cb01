"""``sentiment.mixed``: the text praises and blames on different evidence (a typical 中评).

The rule is a pure function of the aspects (``app.pipeline.findings.is_mixed``); end to end,
every response's flag must equal that rule applied to the aspects the same response returns,
and the MIXED_TEXTS must come back mixed (else aspects that lost their evidence would pass)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.pipeline.findings import AspectFinding, Span, is_mixed
from tests.conftest import ROOT, needs_models

GOODS = Span("东西质量很好", 0, 6)
SLOW = Span("就是物流太慢了", 7, 14)
RUDE = Span("客服也不耐烦", 15, 21)


def finding(aspect: str, polarity: str, *evidence: Span) -> AspectFinding:
    return AspectFinding(aspect, polarity, 0.9, evidence)


@pytest.mark.parametrize(
    "aspects, mixed",
    [
        ([finding("quality", "positive", GOODS), finding("logistics", "negative", SLOW)], True),
        ([finding("logistics", "negative", SLOW), finding("quality", "positive", GOODS)], True),  # order is free
        ([finding("logistics", "negative", SLOW), finding("attitude", "negative", RUDE)], False),  # blame only
        ([finding("quality", "positive", GOODS), finding("price", "positive", SLOW)], False),  # praise only
        ([finding("quality", "positive", GOODS), finding("quality", "negative", GOODS)], False),  # same evidence
        ([finding("quality", "positive", GOODS), finding("logistics", "negative", Span("好，就是", 5, 9))], False),
        ([finding("quality", "positive", GOODS, SLOW), finding("logistics", "negative", SLOW)], False),  # shares SLOW
        (
            [
                finding("quality", "positive", GOODS, SLOW),
                finding("logistics", "negative", SLOW),
                finding("attitude", "negative", RUDE),  # apart from both of the praise's clauses
            ],
            True,
        ),
        ([finding("quality", "positive", Span("好", 5, 6)), finding("logistics", "negative", Span("，", 6, 7))], True),
        ([finding("quality", "positive"), finding("logistics", "negative", SLOW)], False),  # no evidence
        ([], False),
    ],
)
def test_rule(aspects, mixed):
    assert is_mixed(aspects) is mixed
    assert is_mixed(iter(aspects)) is mixed  # any iterable, read once


def rule_on_response(aspects: list[dict]) -> bool:
    """The rule restated over response JSON (not the implementation): a positive and a negative
    aspect, each with evidence, no span of one overlapping a span of the other."""

    def apart(a: dict, b: dict) -> bool:
        return all(x["end"] <= y["start"] or y["end"] <= x["start"] for x in a["evidence"] for y in b["evidence"])

    pos = [a for a in aspects if a["polarity"] == "positive" and a["evidence"]]
    neg = [a for a in aspects if a["polarity"] == "negative" and a["evidence"]]
    return any(apart(p, n) for p in pos for n in neg)


MIXED_TEXTS = ["东西质量很好，就是物流太慢了", "東西質量很好，就是物流太慢了", "味道不错，但是送餐太慢，汤都洒了"]
NEGATIVE_ONLY = "物流太慢了"


def check(body: dict) -> None:
    assert isinstance(body["sentiment"]["mixed"], bool)
    assert body["sentiment"]["mixed"] is rule_on_response(body["aspects"]), body


def exercise(client: TestClient) -> None:
    for text in MIXED_TEXTS:
        r = client.post("/v1/analyze", json={"text": text})
        assert r.status_code == 200, r.text
        check(r.json())
        assert r.json()["sentiment"]["mixed"] is True, r.json()
    negative = client.post("/v1/analyze", json={"text": NEGATIVE_ONLY}).json()
    check(negative)
    assert negative["sentiment"]["mixed"] is False

    items = [{"id": str(i), "text": t} for i, t in enumerate([*MIXED_TEXTS, NEGATIVE_ONLY])]
    batch = client.post("/v1/analyze/batch", json={"items": items}).json()
    for row in batch["results"]:
        check(row)
    assert [row["sentiment"]["mixed"] for row in batch["results"]] == [True] * len(MIXED_TEXTS) + [False]
    assert batch["summary"]["mixed"] == len(MIXED_TEXTS)

    turns = [{"role": "customer", "text": MIXED_TEXTS[0]}, {"role": "agent", "text": "抱歉，我帮您催一下物流"}]
    conversation = client.post("/v1/conversations/analyze", json={"turns": turns})
    assert conversation.status_code == 200, conversation.text
    for turn in conversation.json()["turns"]:
        check(turn)
    assert conversation.json()["turns"][0]["sentiment"]["mixed"] is True  # the customer's MIXED_TEXTS[0]


def test_end_to_end_with_the_fake_pipeline(fake_pipeline, tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path), pipeline=fake_pipeline)) as client:
        exercise(client)


@pytest.mark.slow  # loads the shipped models
@needs_models
def test_end_to_end_with_the_served_models(segmenter, tmp_path):
    from app.pipeline.engine import build_pipeline

    pipeline = build_pipeline(ROOT / "lexicons", ROOT / "models", segmenter=segmenter)
    with TestClient(create_app(Settings(data_dir=tmp_path), pipeline=pipeline)) as client:
        exercise(client)


def test_job_report_counts_mixed_reviews_and_chat_reports_leave_it_out():
    from app.jobs.qa_report import build_chat_report
    from app.jobs.report import Accumulator, MemorySource, RowFacts, build_report

    acc = Accumulator()
    acc.add(0, RowFacts("negative", ("logistics",), (("logistics", "negative"), ("quality", "positive")), mixed=True))
    acc.add(1, RowFacts("negative", ("logistics",), (("logistics", "negative"),)))
    acc.add(2, None, error="invalid_row")
    assert build_report(MemorySource(acc), {})["mixed"] == {"count": 1, "share": 0.5}
    assert "mixed" not in build_chat_report(MemorySource(acc), {})


def test_csv_export_has_a_mixed_column():
    import csv
    import io
    import json

    from app.jobs.export import csv_stream

    body = {
        "id": "r1",
        "sentiment": {"label": "negative", "probabilities": {"positive": 0.3, "neutral": 0.1, "negative": 0.6}},
        "keywords": [],
        "aspects": [],
        "root_causes": [],
    }
    older = json.dumps(body)  # a row stored before sentiment.mixed existed
    body["sentiment"]["mixed"] = True
    rows = [(0, json.dumps(body)), (1, older)]
    out = list(csv.DictReader(io.StringIO(b"".join(csv_stream(rows)).decode())))
    assert [r["mixed"] for r in out] == ["True", ""]
