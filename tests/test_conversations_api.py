"""POST /v1/conversations/analyze and /analyze/batch: the contract shape and every kind of bad input.

Bad input is a 4xx JSON envelope, never a 5xx; a batch keeps good conversations beside bad ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import needs_models

FIXTURES = Path(__file__).parent / "fixtures" / "conversations"
URL, BATCH = "/v1/conversations/analyze", "/v1/conversations/analyze/batch"
SETTINGS = dict(
    max_turns=6, max_text_chars=200, max_conversation_chars=300, max_batch_conversations=4, max_body_bytes=64 * 1024
)
GOOD = {
    "id": "c-1001",
    "profile": "default",
    "turns": [
        {"role": "customer", "text": "在吗？我的快递三天了还没发货", "time": "2026-11-20T10:00:00+08:00"},
        {"role": "agent", "text": "您好，请稍等，我帮您查一下", "time": "2026-11-20T10:00:40+08:00", "agent_id": "a17"},
        {"role": "agent", "text": "这不归我管，你找快递", "time": "2026-11-20T10:01:00+08:00"},
        {"role": "customer", "text": "好的解决了", "time": "2026-11-20T10:02:00+08:00"},
    ],
}


@pytest.fixture(scope="module")
def client(fake_pipeline, tmp_path_factory):
    settings = Settings(**SETTINGS, data_dir=tmp_path_factory.mktemp("data"))
    with TestClient(create_app(settings, pipeline=fake_pipeline)) as c:
        yield c


def error_code(resp) -> str:
    assert 400 <= resp.status_code < 500, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


def with_turns(*turns, **extra) -> dict:
    return {"id": "x", "turns": list(turns), **extra}


def test_contract_shape(client):
    r = client.post(URL, json=GOOD)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "c-1001"
    assert {
        "first_response_seconds": 40.0,
        "avg_response_seconds": 40.0,
        "max_response_seconds": 40.0,
        "slow_replies": 0,
    }.items() <= body["timing"].items()
    v = next(v for v in body["violations"] if v["rule"] == "forbidden_phrase")
    assert (v["turn"], v["text"], v["start"], v["end"], v["severity"]) == (2, "这不归我管", 0, 5, "high")
    assert {"turn": 1, "text": "您好", "start": 0, "end": 2}.items() <= body["polite_phrases"][0].items()
    assert {"sentiment_start", "sentiment_end", "escalation_risk", "escalation_evidence"} <= set(body["customer"])
    assert body["resolution"] == {
        "status": "resolved",
        "status_zh": "已解决",
        "source": "customer",
        "evidence": [{"turn": 3, "text": "好的解决了", "start": 0, "end": 5}],
    }
    assert isinstance(body["root_causes"], list)
    qa = body["qa"]
    assert {"score", "grade", "grade_zh", "profile", "dimensions"} <= set(qa) and qa["profile"] == "default"
    assert set(qa["dimensions"]) == {"responsiveness", "attitude", "resolution", "competence"}
    assert [t["index"] for t in body["turns"]] == [0, 1, 2, 3]
    assert {"index", "role", "sentiment", "keywords", "aspects", "emotion"} <= set(body["turns"][0])
    assert body["turns"][1]["emotion"] is None and body["turns"][0]["emotion"] is not None
    assert "conversation_rules" in body["model"]
    for group in (body["violations"], body["polite_phrases"], body["resolution"]["evidence"]):
        for s in group:
            assert GOOD["turns"][s["turn"]]["text"][s["start"] : s["end"]] == s["text"]


def test_every_fixture_through_http(client):
    """The fixtures are realistic transcripts; over HTTP each answers 200 or its expected 4xx."""
    for path in sorted(FIXTURES.glob("*.json")):
        conv = json.loads(path.read_text(encoding="utf-8"))
        if len(conv["turns"]) > SETTINGS["max_turns"] or sum(len(t.get("text", "")) for t in conv["turns"]) > 300:
            continue
        r = client.post(URL, json=conv)
        if "error" in conv["expected"]:
            assert error_code(r) == conv["expected"]["error"]["code"] or error_code(r) == "invalid_input"
        else:
            assert r.status_code == 200, (path.name, r.text)


@pytest.mark.parametrize(
    "body, status, code",
    [
        (with_turns(), 422, "empty_conversation"),
        (with_turns({"role": "manager", "text": "我是经理"}), 422, "invalid_input"),
        (with_turns({"role": "customer"}), 422, "invalid_input"),
        (with_turns({"role": "customer", "text": ""}), 422, "empty_text"),
        (with_turns({"role": "customer", "text": "   "}), 422, "empty_text"),
        (with_turns({"role": "customer", "text": 123}), 422, "invalid_input"),
        (with_turns({"role": "customer", "text": ["你好"]}), 422, "invalid_input"),
        (with_turns(*[{"role": "customer", "text": "在吗"}] * 7), 413, "too_many_turns"),
        (with_turns({"role": "customer", "text": "长" * 201}), 413, "text_too_long"),
        (with_turns(*[{"role": "customer", "text": "长" * 100}] * 4), 413, "conversation_too_long"),
        (with_turns({"role": "customer", "text": "你好", "time": "yesterday"}), 422, "invalid_time"),
        (with_turns({"role": "customer", "text": "你好", "time": True}), 422, "invalid_input"),
        (with_turns({"role": "customer", "text": "你好", "time": 1795140000000}), 422, "invalid_time"),
        (
            with_turns(
                {"role": "customer", "text": "你好", "time": 100}, {"role": "agent", "text": "您好", "time": 50}
            ),
            422,
            "turns_out_of_order",
        ),
        (with_turns({"role": "customer", "text": "你好"}, profile="vip"), 422, "unknown_profile"),
        ({"turns": "你好"}, 422, "invalid_input"),
        ({"id": ["x"], "turns": [{"role": "customer", "text": "你好"}]}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
        ([GOOD], 422, "invalid_input"),
    ],
)
def test_bad_input(client, body, status, code):
    r = client.post(URL, json=body)
    assert r.status_code == status and error_code(r) == code, r.text


def test_out_of_order_names_the_turn(client):
    body = json.loads((FIXTURES / "26_out_of_order_times.json").read_text(encoding="utf-8"))
    r = client.post(URL, json=body)
    assert error_code(r) == "turns_out_of_order" and "turns[2]" in r.json()["error"]["message"]


def test_unknown_profile_lists_the_known_ones(client):
    r = client.post(URL, json=with_turns({"role": "customer", "text": "你好"}, profile="vip"))
    assert "default" in r.json()["error"]["message"] and "promotion" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 422, "invalid_input"),
        (b"null", 422, "invalid_input"),
    ],
)
def test_not_json(client, raw, status, code):
    r = client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status and error_code(r) == code


def test_body_too_large(client):
    r = client.post(URL, json=with_turns({"role": "customer", "text": "长" * 70_000}))
    assert r.status_code == 413 and error_code(r) == "body_too_large"


def test_batch_keeps_good_beside_bad(client):
    items = [GOOD, {"id": "empty", "turns": []}, {"id": "role", "turns": [{"role": "boss", "text": "x"}]}, 42]
    r = client.post(BATCH, json={"items": items})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[0]["id"] == "c-1001" and "qa" in results[0]
    assert results[1] == {
        "id": "empty",
        "error": {"code": "empty_conversation", "message": "turns: is empty; send at least one turn"},
    }
    assert results[2]["id"] == "role" and results[2]["error"]["code"] == "invalid_input"
    assert "turns[0].role" in results[2]["error"]["message"]
    assert results[3] == {
        "id": None,
        "error": {"code": "invalid_input", "message": "a conversation must be an object with turns, not int"},
    }
    assert r.json()["summary"] == {
        "total": 4,
        "analysed": 1,
        "errors": 3,
        "grades": {results[0]["qa"]["grade"]: 1},
        "resolution": {"resolved": 1},
        "escalation_risk": {"none": 1},
        "avg_score": results[0]["qa"]["score"],
    }


def test_batch_answers_like_the_single_endpoint(client):
    single = client.post(URL, json=GOOD).json()
    batch = client.post(BATCH, json={"items": [GOOD]}).json()["results"][0]
    assert batch == single


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"items": []}, 422, "empty_batch"),
        ({"items": [GOOD] * 5}, 413, "too_many_items"),
        ({"items": "x"}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
    ],
)
def test_bad_batch(client, body, status, code):
    r = client.post(BATCH, json=body)
    assert r.status_code == status and error_code(r) == code


def test_not_ready_without_rules(fake_pipeline):
    c = TestClient(create_app(Settings(**SETTINGS), pipeline=fake_pipeline))  # no lifespan: rules never load
    r = c.post(URL, json=GOOD)
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_openapi_documents_both_endpoints(client):
    spec = client.get("/openapi.json").json()
    assert {URL, BATCH} <= set(spec["paths"])
    assert "ConversationRequest" in spec["components"]["schemas"]
    assert "ConversationResponse" in spec["components"]["schemas"]


@needs_models
def test_end_to_end_with_the_real_model(segmenter):
    """The served pipeline (trained sentiment model) behind the real app, lifespan and all."""
    from app.pipeline.engine import build_pipeline

    settings = Settings()
    pipeline = build_pipeline(settings.lexicon_dir, settings.models_dir, segmenter=segmenter)
    with TestClient(create_app(settings, pipeline=pipeline)) as c:
        for name in ("01_resolved_polite", "02_blame_shifting", "21_traditional_chinese"):
            conv = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
            r = c.post(URL, json=conv)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["resolution"]["status"] == conv["expected"]["resolution"]
            assert {v["rule"] for v in body["violations"]} == set(conv["expected"]["rules"])
            assert body["customer"]["sentiment_start"] in {"positive", "neutral", "negative"}
            assert body["model"]["sentiment"] != "fake-1"
