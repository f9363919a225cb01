"""Every endpoint, including the hostile inputs: always a JSON envelope, never a 5xx."""

import json

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import assert_spans


@pytest.fixture(scope="module")
def client(fake_pipeline, tmp_path_factory):
    settings = Settings(
        max_text_chars=5000, max_batch_items=20, max_body_bytes=64 * 1024, data_dir=tmp_path_factory.mktemp("data")
    )
    with TestClient(create_app(settings, pipeline=fake_pipeline)) as c:
        yield c


def error_code(resp):
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


def test_analyze_contract_shape(client):
    text = "发货太慢了，客服也不耐烦"
    r = client.post("/v1/analyze", json={"text": text, "id": "r1", "meta": {"shop": "s1"}})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "r1" and body["meta"] == {"shop": "s1"}
    assert body["sentiment"]["label"] in {"positive", "neutral", "negative"}
    assert set(body["sentiment"]["probabilities"]) == {"positive", "neutral", "negative"}
    assert set(body["model"]) == {"sentiment", "aspects", "lexicon"}
    assert [c["cause"] for c in body["root_causes"]]
    for k in body["keywords"]:
        assert {"term", "dimension", "polarity", "negated", "start", "end"} <= set(k)
    assert_spans(text, body)


def test_top_terms_on_request(client):
    r = client.post("/v1/analyze", json={"text": "手机屏幕很清晰，这个手机很耐用", "top_terms": 2})
    assert [t["term"] for t in r.json()["top_terms"]][0] == "手机"


@pytest.mark.parametrize(
    "payload,status,code",
    [
        ({}, 422, "invalid_input"),
        ({"text": ""}, 422, "empty_text"),
        ({"text": "   \n\t "}, 422, "empty_text"),
        ({"text": "\u200b\u200b"}, 422, "empty_text"),
        ({"text": 123}, 422, "invalid_input"),
        ({"text": ["a"]}, 422, "invalid_input"),
        ({"text": None}, 422, "invalid_input"),
        ({"text": "好", "id": 5.5}, 422, "invalid_input"),  # integer ids are taken, as in batches and chats
        ({"text": "好", "id": True}, 422, "invalid_input"),
        ({"text": "好", "meta": {"a": 1}}, 422, "invalid_input"),
        ({"text": "好" * 5001}, 413, "text_too_long"),
        ([], 422, "invalid_input"),
        ("just a string", 422, "invalid_input"),
    ],
)
def test_analyze_bad_input(client, payload, status, code):
    r = client.post("/v1/analyze", json=payload)
    assert r.status_code == status, r.text
    assert error_code(r) == code


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_input"),
        (b'{"text": "\xff\xfe bad utf8"}', "bad_request"),
    ],
)
def test_analyze_malformed_body(client, raw, code):
    r = client.post("/v1/analyze", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert error_code(r) == code


def test_lone_surrogate_is_a_4xx(client):
    raw = b'{"text": "bad \\ud800 text"}'
    r = client.post("/v1/analyze", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and error_code(r) == "invalid_text"


def test_body_over_limit(client):
    r = client.post(
        "/v1/analyze", content=json.dumps({"text": "好" * 40000}), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and error_code(r) == "body_too_large"


def test_chunked_body_over_limit(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(100):
            yield "好".encode() * 1000
        yield b'"}'

    r = client.post("/v1/analyze", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_code(r) == "body_too_large"


@pytest.mark.parametrize(
    "text", ["😀😀", "https://example.com 质量差", "<p>好评</p>", "fast shipping", "12345", "好" * 5000, "?!?!"]
)
def test_odd_but_valid_texts(client, text):
    r = client.post("/v1/analyze", json={"text": text})
    assert r.status_code == 200, r.text
    assert_spans(text, r.json())


def test_batch_keeps_good_items_beside_bad_ones(client):
    items = [
        {"id": "a", "text": "物流太慢"},
        {"id": "b", "text": ""},
        {"id": "c", "text": "好" * 5001},
        {"id": "d"},
        "not an object",
        {"id": 7, "text": "客服很耐心"},
        {"id": "g", "text": 3},
    ]
    r = client.post("/v1/analyze/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    res = body["results"]
    assert [x["id"] for x in res] == ["a", "b", "c", "d", None, "7", "g"]
    assert [("error" in x) for x in res] == [False, True, True, True, True, False, True]
    assert [x["error"]["code"] for x in res if "error" in x] == [
        "empty_text",
        "text_too_long",
        "invalid_input",
        "invalid_item",
        "invalid_input",
    ]
    assert body["summary"]["total"] == 7 and body["summary"]["errors"] == 5
    assert body["summary"]["root_causes"][0]["cause"] == "logistics"


@pytest.mark.parametrize(
    "item",
    [
        {"text": "物流太慢", "id": 7, "meta": {"shop": "s1"}},
        {"text": "物流太慢", "id": "r1", "meta": {"shop": 5}},
        {"text": "物流太慢", "id": ["x"]},
        {"text": 3},
        {"id": "r2"},
        {"text": ""},
        {"text": "好" * 5001},
        {"text": "物流太慢", "id": "x" * 201},
    ],
)
def test_a_batch_item_is_validated_like_a_single_request(client, item):
    """One validator: the slot holds what the single endpoint answers (before: integer ids
    only in batches, ``meta`` dropped from batch results)."""
    single = client.post("/v1/analyze", json=item)
    slot = client.post("/v1/analyze/batch", json={"items": [item]}).json()["results"][0]
    if single.status_code == 200:
        assert {k: v for k, v in slot.items()} == single.json()
        assert slot.get("meta") == item.get("meta")
    else:
        assert slot["error"] == single.json()["error"], (slot, single.json())


@pytest.mark.parametrize(
    "payload,status,code",
    [
        ({"items": []}, 422, "empty_batch"),
        ({"items": [{"text": "好"}] * 21}, 413, "too_many_items"),
        ({"items": "nope"}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
    ],
)
def test_batch_bad_requests(client, payload, status, code):
    r = client.post("/v1/analyze/batch", json=payload)
    assert r.status_code == status and error_code(r) == code


def test_health_ready_taxonomy_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"]["sentiment"] == "fake-1"
    tax = client.get("/v1/taxonomy").json()
    assert [a["code"] for a in tax["aspects"]][:2] == ["logistics", "quality"]
    assert tax["model"]["lexicon"]
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_unknown_route_and_method_are_enveloped(client):
    assert error_code(client.get("/nope")) == "not_found"
    assert error_code(client.get("/v1/analyze")) == "method_not_allowed"


def test_not_ready_is_reported(fake_pipeline):
    app = create_app(Settings(), pipeline=fake_pipeline)
    with TestClient(app) as c:
        app.state.pipeline = None  # as while the lifespan is still loading
        assert c.get("/readyz").status_code == 503
        assert error_code(c.post("/v1/analyze", json={"text": "好"})) == "not_ready"
        assert error_code(c.post("/v1/analyze/batch", json={"items": [{"text": "好"}]})) == "not_ready"
        conversation = {"turns": [{"role": "customer", "text": "好"}]}
        assert error_code(c.post("/v1/conversations/analyze", json=conversation)) == "not_ready"
        assert error_code(c.post("/v1/conversations/analyze/batch", json={"items": [conversation]})) == "not_ready"
