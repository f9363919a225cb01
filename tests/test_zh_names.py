"""Chinese names beside every code a person reads (issue 14): review, batch, chat and job-summary
responses carry ``*_zh`` fields, each equal to the one taxonomy's name of the code beside it."""

from __future__ import annotations

import json

import pytest

from app.core import taxonomy as T
from tests.conftest import CONVERSATIONS, conversation, wait

REVIEWS = [
    "发货太慢了，客服也不耐烦",
    "质量很好，物流很快",
    "东西不错，就是价格有点贵",
    "颜色和图片不一样，退款也很麻烦",
]


@pytest.fixture
def client(make_job_client):
    return make_job_client(workers=1, chunk_rows=4)


# --- the taxonomy -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, codes",
    [
        ("aspect", T.ASPECTS),
        ("dimension", T.KEYWORD_DIMENSIONS),
        ("polarity", T.POLARITIES),
        ("review_sentiment", T.SENTIMENT_LABELS),
        ("sentiment", T.SENTIMENT_LABELS),
        ("grade", T.GRADE_CODES),
        ("rule", T.VIOLATION_RULES),
        ("violation", tuple(dict.fromkeys((*T.VIOLATION_RULES, *T.VIOLATION_CODES)))),
        ("severity", T.SEVERITIES),
        ("escalation", T.ESCALATION_LEVELS),
        ("emotion", T.EMOTIONS),
        ("satisfaction", T.SATISFACTION_LEVELS),
        ("resolution", T.RESOLUTION_STATUSES),
        ("role", T.ROLES),
        ("pii", T.PII_TYPES),
        ("polite", T.POLITE_KINDS),
        ("qa_dimension", T.QA_DIMENSIONS),
    ],
)
def test_every_code_of_every_kind_has_its_own_chinese_name(kind, codes):
    names = [T.zh(kind, c) for c in codes]
    assert all(n and n != c and not n.isascii() for n, c in zip(names, codes)), names
    assert len(set(names)) == len(names), names  # two codes of one kind never read the same


def test_zh_of_unknown_codes_and_kinds():
    assert T.zh("violation", "my_own_flag") == "my_own_flag"  # an analyst's rule code reads as itself
    assert T.zh("sentiment", None) is None
    assert T.zh("review_sentiment", "negative") == "差评" and T.zh("sentiment", "negative") == "负面"
    with pytest.raises(KeyError):
        T.zh("no_such_kind", "x")


# --- checking a body: every *_zh beside its code ------------------------------------------------
PAIRS = {  # field -> (code field, taxonomy kind)
    "aspect_zh": ("aspect", "aspect"),
    "cause_zh": ("cause", "cause"),
    "dimension_zh": ("dimension", "dimension"),
    "polarity_zh": ("polarity", "polarity"),
    "rule_zh": ("rule", "violation"),
    "severity_zh": ("severity", "severity"),
    "category_zh": ("category", "violation"),
    "pii_type_zh": ("pii_type", "pii"),
    "status_zh": ("status", "resolution"),
    "emotion_zh": ("emotion", "emotion"),
    "kind_zh": ("kind", "polite"),
    "role_zh": ("role", "role"),
    "grade_zh": ("grade", "grade"),
    "code_zh": ("code", "violation"),
    "escalation_risk_zh": ("escalation_risk", "escalation"),
    "sentiment_start_zh": ("sentiment_start", "sentiment"),
    "sentiment_end_zh": ("sentiment_end", "sentiment"),
}


def check_names(node, seen: set[str]) -> None:
    """Every ``*_zh`` of ``node`` (recursively) equals the taxonomy's name of its code."""
    if isinstance(node, list):
        for x in node:
            check_names(x, seen)
        return
    if not isinstance(node, dict):
        return
    for key, (code_field, kind) in PAIRS.items():
        if key in node:
            assert node[key] == T.zh(kind, node[code_field]), (key, node)
            seen.add(key)
    for value in node.values():
        check_names(value, seen)


def codes_have_names(node) -> None:
    """The converse: a dict with a code field also has its name."""
    if isinstance(node, list):
        for x in node:
            codes_have_names(x)
    elif isinstance(node, dict):
        for key, (code_field, _) in PAIRS.items():
            if code_field in ("aspect", "cause", "dimension", "rule", "status") and code_field in node:
                assert key in node, (key, node)
        for value in node.values():
            codes_have_names(value)


def test_review_response_names_every_code(client):
    seen: set[str] = set()
    for text in REVIEWS:
        body = client.post("/v1/analyze", json={"text": text}).json()
        assert body["sentiment"]["label_zh"] == T.REVIEW_SENTIMENT_NAMES_ZH[body["sentiment"]["label"]]
        check_names(body, seen)
        codes_have_names(body)
    assert seen >= {"aspect_zh", "cause_zh", "dimension_zh", "polarity_zh"}


def test_batch_results_and_summary_name_every_code(client):
    body = client.post("/v1/analyze/batch", json={"items": [{"text": t} for t in REVIEWS] + [{"text": ""}]}).json()
    seen: set[str] = set()
    check_names(body, seen)
    codes_have_names(body["results"])
    causes = body["summary"]["root_causes"]
    assert causes and all(c["cause_zh"] == T.ASPECT_NAMES_ZH[c["cause"]] for c in causes)


def test_conversation_response_names_every_code(client):
    seen: set[str] = set()
    for path in CONVERSATIONS:
        resp = client.post("/v1/conversations/analyze", json=conversation(path))
        if resp.status_code != 200:
            continue
        body = resp.json()
        check_names(body, seen)
        codes_have_names(body)
        assert body["qa"]["dimensions_zh"] == {d: T.QA_DIMENSION_NAMES_ZH[d] for d in body["qa"]["dimensions"]}
        for turn in body["turns"]:
            assert turn["sentiment"]["label_zh"] == T.SENTIMENT_NAMES_ZH[turn["sentiment"]["label"]]
    assert seen >= {"rule_zh", "severity_zh", "category_zh", "status_zh", "role_zh", "cause_zh", "kind_zh"}


def test_review_job_results_and_summary_name_every_code(client):
    items = [{"id": str(i), "text": t, "channel": "app" if i % 2 else "web"} for i, t in enumerate(REVIEWS * 10)]
    job_id = client.post("/v1/jobs", json={"items": items}).json()["job_id"]
    wait(client, job_id)
    rows = [json.loads(line) for line in client.get(f"/v1/jobs/{job_id}/results").text.splitlines()]
    seen: set[str] = set()
    check_names(rows, seen)
    codes_have_names(rows)
    s = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert {k: v["label_zh"] for k, v in s["sentiment"].items()} == T.REVIEW_SENTIMENT_NAMES_ZH
    assert s["root_causes"] and all(c["cause_zh"] == T.ASPECT_NAMES_ZH[c["cause"]] for c in s["root_causes"])
    assert s["aspects"] and all(a["aspect_zh"] == T.ASPECT_NAMES_ZH[a["aspect"]] for a in s["aspects"])
    for col in s["groups"]["columns"]:
        check_names(col["groups"], seen)


def test_chat_job_summary_names_grades_and_violations(client):
    items = [conversation(p) for p in CONVERSATIONS]
    job_id = client.post("/v1/jobs", json={"kind": "conversations", "items": items}).json()["job_id"]
    wait(client, job_id)
    s = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert {k: v["label_zh"] for k, v in s["sentiment"].items()} == T.SENTIMENT_NAMES_ZH  # a chat is no review
    overall = s["qa"]["overall"]
    assert [g["grade_zh"] for g in overall["grades"]] == list(T.GRADE_NAMES_ZH)
    assert overall["violations"]
    assert all(v["code_zh"] == T.zh("violation", v["code"]) != v["code"] for v in overall["violations"])
