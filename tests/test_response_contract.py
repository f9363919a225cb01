"""The response schemas are the contract: real responses of every endpoint validate against
their pydantic models, which forbid keys they do not document (``app.api.schemas.Out``)."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from app.api.conversation_schemas import ConversationBatchResponse, ConversationResponse
from app.api.job_schemas import JobAccepted, JobStatus, JobSummary
from app.api.schemas import AnalyzeResponse, BatchItemError, BatchResponse, ErrorResponse, Out
from app.conversations import load_conversation_rules
from app.core.config import Settings
from app.main import create_app
from tests.conftest import CONVERSATIONS, ROOT, conversation

REVIEWS = [
    "发货太慢了，客服也不耐烦",
    "質量很好，物流很快，非常滿意",
    "还行吧",
    "客服很耐心，但是物流太慢",
    "东西与描述不符，退款拖了一周",
    "🙂🙂",
    "价格有点贵",
]


@pytest.fixture(scope="module")
def client(fake_pipeline, tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("contract"))
    app = create_app(settings, pipeline=fake_pipeline)
    app.state.conversation_rules = load_conversation_rules(ROOT / "lexicons")
    with TestClient(app) as c:
        yield c


def conforms(model: type[BaseModel], resp, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    model.model_validate(body)
    return body


def test_every_response_model_forbids_undocumented_keys():
    from app.api import conversation_schemas, job_schemas, schemas

    models = [
        m
        for mod in (schemas, conversation_schemas, job_schemas)
        for m in vars(mod).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m.__name__.endswith(("Out", "Response"))
    ]
    assert len(models) > 20
    loose = [m.__name__ for m in models if not issubclass(m, Out)]
    assert loose == [], loose


@pytest.mark.parametrize("text", REVIEWS)
def test_analyze(client, text):
    conforms(AnalyzeResponse, client.post("/v1/analyze", json={"text": text, "id": "r", "meta": {"k": "v"}}))
    conforms(AnalyzeResponse, client.post("/v1/analyze", json={"text": text * 30, "top_terms": 3}))


def test_analyze_batch_with_bad_items(client):
    items = [{"id": str(i), "text": t} for i, t in enumerate(REVIEWS)] + [{"text": ""}, 7, {"id": 3}]
    body = conforms(BatchResponse, client.post("/v1/analyze/batch", json={"items": items, "top_terms": 2}))
    assert len(body["results"]) == len(items)


@pytest.mark.parametrize("path", CONVERSATIONS, ids=lambda p: p.stem)
def test_conversation(client, path):
    resp = client.post("/v1/conversations/analyze", json=conversation(path))
    if resp.status_code == 422:  # fixtures of refused transcripts
        conforms(ErrorResponse, resp, 422)
    else:
        conforms(ConversationResponse, resp)


def test_conversation_batch(client):
    items = [conversation(p) for p in CONVERSATIONS] + [{"turns": []}, "x"]
    conforms(ConversationBatchResponse, client.post("/v1/conversations/analyze/batch", json={"items": items}))


@pytest.mark.slow  # the real job runner: worker processes
@pytest.mark.parametrize(
    "kind, items",
    [
        (
            "reviews",
            [
                {"id": str(i), "text": t, "channel": "app" if i % 2 else "web", "date": f"2026-11-0{1 + i % 3}"}
                for i, t in enumerate(REVIEWS * 5)
            ]
            + [{"text": ""}],
        ),
        ("conversations", [conversation(p) for p in CONVERSATIONS]),
    ],
)
def test_jobs(client, kind, items):
    accepted = conforms(JobAccepted, client.post("/v1/jobs", json={"kind": kind, "items": items}), 202)
    url = f"/v1/jobs/{accepted['job_id']}"
    deadline = time.monotonic() + 60
    while (status := conforms(JobStatus, client.get(url)))["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    assert status["status"] == "done"
    conforms(JobSummary, client.get(f"{url}/summary"))
    model = AnalyzeResponse if kind == "reviews" else ConversationResponse
    for line in client.get(f"{url}/results").text.splitlines():
        row = json.loads(line)  # a job row: the response body + its row number, the model once per job
        assert isinstance(row.pop("row"), int)
        if "error" in row:
            BatchItemError.model_validate(row)
        else:
            model.model_validate({**row, "model": status["model"]})


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/v1/analyze", {"text": ""}),
        ("post", "/v1/analyze", {"txt": "x"}),
        ("post", "/v1/analyze/batch", {"items": []}),
        ("get", "/v1/jobs/nope", None),
        ("post", "/v1/conversations/analyze", {"turns": [{"role": "boss", "text": "x"}]}),
        ("post", "/v1/admin/reload", None),
        ("get", "/nowhere", None),
    ],
)
def test_errors(client, method, path, body):
    resp = getattr(client, method)(path, **({"json": body} if body is not None else {}))
    assert 400 <= resp.status_code < 500
    ErrorResponse.model_validate(resp.json())


@pytest.mark.parametrize("model", [AnalyzeResponse, BatchResponse, ConversationResponse])
def test_the_openapi_examples_are_valid_responses(model):
    (body,) = model.model_config["json_schema_extra"]["examples"]
    model.model_validate(body)
