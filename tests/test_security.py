"""API keys, rate and upload limits, CORS (app.api.security, app.main): keys hashed at rest,
compared in constant time against every key, /v1 guarded and the open paths left open."""

from __future__ import annotations

import hashlib
import hmac
import logging
from functools import partial

import pytest
from fastapi.testclient import TestClient

from app.api import security
from app.api.security import KeyConfigError, TokenBucket, load_keys
from app.core.config import Settings
from app.core.middleware import route_path
from app.main import create_app

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def make_client(make_job_client):
    return partial(make_job_client, workers=0)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def envelope(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code and body["error"]["message"], body
    return body


# -- reading the keys ----------------------------------------------------------------------------
def test_keys_from_a_comma_list_are_kept_as_digests_only():
    ring = load_keys(f"alice:{ALICE}, {BOB}")
    assert [k for k, _ in ring.entries] == ["alice", sha(BOB)[:12]]
    assert ring.entries[0][1] == bytes.fromhex(sha(ALICE))
    assert ALICE not in repr(ring) and BOB not in repr(ring)
    assert ring.identify(ALICE) == "alice" and ring.identify(BOB) == sha(BOB)[:12]
    assert ring.identify("alice") is None and ring.identify(ALICE + "x") is None


def test_keys_from_a_file_with_hashed_entries_and_comments(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# operators keep only digests\n\nci:sha256:{sha(ALICE)}\nsha256:{sha(BOB).upper()}\n")
    ring = load_keys(str(path))
    assert [k for k, _ in ring.entries] == ["ci", sha(BOB)[:12]]
    assert ring.identify(ALICE) == "ci" and ring.identify(BOB) == sha(BOB)[:12]
    assert ring.identify(sha(ALICE)) is None  # the digest is not itself a key


@pytest.mark.parametrize(
    "value, message",
    [
        ("/no/such/keys-file", "not a file"),
        (f"a:{ALICE},a:{BOB}", "twice"),
        (f"{ALICE},{ALICE}", "twice"),
        ("sha256:abc", "64 hex"),
        ("bad name:" + ALICE, "key name"),
        ("x:", "empty"),
    ],
)
def test_bad_key_settings_refuse_to_start(value, message, tmp_path, fake_pipeline):
    with pytest.raises(KeyConfigError, match=message):
        load_keys(value)
    with pytest.raises(KeyConfigError):
        create_app(Settings(data_dir=tmp_path, api_keys=value), pipeline=fake_pipeline)


def test_unset_or_blank_keys_mean_open():
    assert load_keys(None) is None and load_keys("  ") is None


def test_short_plain_keys_are_flagged_weak(make_client, caplog):
    assert load_keys("a:short,b:" + ALICE).weak == ("a",)
    assert load_keys(f"a:sha256:{sha('x')}").weak == ()  # a digest says nothing of its key's length
    with caplog.at_level(logging.WARNING, logger="pingjia"):
        make_client(api_keys="a:short,b:" + ALICE)
    assert any("shorter than 16" in r.getMessage() and "a" in r.args for r in caplog.records)


def test_every_configured_key_is_compared(monkeypatch):
    """No early exit: a key matching the first entry costs as many comparisons as a wrong one."""
    ring = load_keys(",".join(f"k{i}:{ALICE}{i}" for i in range(5)))
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert ring.identify(ALICE + "0") == "k0"
    assert len(calls) == 5
    calls.clear()
    assert ring.identify("wrong") is None and len(calls) == 5


# -- the guard -----------------------------------------------------------------------------------
def test_v1_needs_a_key_when_keys_are_set(make_client):
    c = make_client(api_keys=f"alice:{ALICE},bob:{BOB}")
    missing = c.post("/v1/analyze", json={"text": "好"})
    envelope(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer" and missing.headers["x-request-id"]
    wrong = c.post("/v1/analyze", json={"text": "好"}, headers=bearer("nope"))
    envelope(wrong, 401, "unauthorized")
    assert "invalid_token" in wrong.headers["www-authenticate"]
    envelope(c.post("/v1/analyze", json={"text": "好"}, headers={"Authorization": ALICE}), 401, "unauthorized")
    envelope(c.get("/v1/taxonomy"), 401, "unauthorized")
    envelope(c.get("/v1/jobs"), 401, "unauthorized")
    envelope(c.get("/v1/no-such-path"), 401, "unauthorized")  # nothing is learnt without a key
    assert c.post("/v1/analyze", json={"text": "好"}, headers=bearer(ALICE)).status_code == 200
    assert c.post("/v1/analyze", json={"text": "好"}, headers={"authorization": f"bearer  {BOB}"}).status_code == 200


def test_open_paths_stay_open_with_keys(make_client):
    c = make_client(api_keys=ALICE)
    for path in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        assert c.get(path).status_code == 200, path


def test_admin_keeps_its_own_token(make_client):
    c = make_client(api_keys=ALICE)
    # Not guarded by API keys: admin answers by its own rules (disabled without PINGJIA_ADMIN_TOKEN) ...
    envelope(c.post("/v1/admin/reload", headers=bearer(ALICE)), 403, "admin_disabled")
    c2 = make_client(api_keys=ALICE, admin_token="admin-secret-123")
    # ... and an API key is not the admin token.
    envelope(c2.post("/v1/admin/reload", headers=bearer(ALICE)), 401, "unauthorized")


def test_keys_off_logs_a_warning_at_start(make_client, caplog):
    with caplog.at_level(logging.WARNING, logger="pingjia"):
        make_client()
    assert any("PINGJIA_API_KEYS is not set" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pingjia"):
        make_client(api_keys=ALICE)
    assert not any("PINGJIA_API_KEYS" in r.getMessage() for r in caplog.records)


# -- rate limits ---------------------------------------------------------------------------------
def test_token_bucket_refills_at_its_rate():
    b = TokenBucket(rate=2.0, capacity=3)
    assert [b.take("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("k", now=0.0) == pytest.approx(0.5)
    assert b.take("k", now=0.5) == 0.0  # one token back after 1/rate seconds
    assert b.take("other", now=0.5) == 0.0  # buckets are per key


def test_token_bucket_forgets_idle_keys_beyond_its_bound():
    b = TokenBucket(rate=1.0, capacity=1, max_keys=10)
    for i in range(50):
        b.take(f"client{i}", now=float(i) * 2)  # each is full again by the next one
    assert len(b._buckets) <= 10


def test_request_rate_per_key_answers_429_with_retry_after(make_client):
    c = make_client(api_keys=f"alice:{ALICE},bob:{BOB}", rate_per_second=0.5, rate_burst=2)
    ok = [c.get("/v1/taxonomy", headers=bearer(ALICE)).status_code for _ in range(2)]
    assert ok == [200, 200]
    limited = c.get("/v1/taxonomy", headers=bearer(ALICE))
    envelope(limited, 429, "rate_limited")
    assert limited.headers["retry-after"].isdigit() and 1 <= int(limited.headers["retry-after"]) <= 2
    assert c.get("/v1/taxonomy", headers=bearer(BOB)).status_code == 200  # bob has his own bucket
    assert c.get("/healthz").status_code == 200  # outside /v1: not limited


def test_request_rate_without_keys_is_per_client(make_client):
    c = make_client(rate_per_second=0.5, rate_burst=1)
    assert c.get("/v1/taxonomy").status_code == 200
    envelope(c.get("/v1/taxonomy"), 429, "rate_limited")


def test_upload_volume_per_hour(make_client):
    c = make_client(api_keys=ALICE, upload_bytes_per_hour=2000)
    body = {"items": [{"text": "好" * 100}]}  # ~ 330 bytes as JSON
    statuses = [c.post("/v1/analyze/batch", json=body, headers=bearer(ALICE)).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 429
    limited = c.post("/v1/analyze/batch", json=body, headers=bearer(ALICE))
    envelope(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    envelope(c.post("/v1/analyze", content=b"x" * 3000, headers=bearer(ALICE)), 413, "body_too_large")


def test_upload_volume_counts_chunked_bodies(make_client):
    c = make_client(upload_bytes_per_hour=1000)

    def chunks():
        yield b'{"items": [{"text": "'
        for _ in range(20):
            yield b"a" * 100
        yield b'"}]}'

    resp = c.post("/v1/analyze/batch", content=chunks(), headers={"content-type": "application/json"})
    envelope(resp, 429, "rate_limited")
    assert resp.headers["retry-after"].isdigit()


def test_limits_are_off_by_default(make_client):
    c = make_client()
    statuses = {c.get("/v1/taxonomy").status_code for _ in range(50)}
    assert statuses == {200}


# -- CORS ----------------------------------------------------------------------------------------
def test_cors_is_off_by_default(make_client):
    c = make_client()
    resp = c.get("/v1/taxonomy", headers={"Origin": "https://desk.example"})
    assert "access-control-allow-origin" not in resp.headers


def test_cors_allows_configured_origins_with_the_key_header(make_client):
    c = make_client(api_keys=ALICE, cors_origins="https://desk.example, https://qa.example")
    pre = c.options(
        "/v1/analyze",
        headers={
            "Origin": "https://desk.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-request-id, content-type",
        },
    )
    assert pre.status_code == 200, pre.text  # a preflight carries no key and is not refused
    assert pre.headers["access-control-allow-origin"] == "https://desk.example"
    allowed = pre.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-request-id" in allowed
    resp = c.get("/v1/taxonomy", headers={"Origin": "https://desk.example", **bearer(ALICE)})
    exposed = resp.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed
    refused = c.get("/v1/taxonomy", headers={"Origin": "https://desk.example"})  # a 401 the page can read
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "https://desk.example"
    other = c.options(
        "/v1/analyze", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_openapi_documents_the_bearer_key_when_keys_are_on(make_client):
    spec = make_client(api_keys=ALICE).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/analyze"]["post"]["security"] == [{"apiKey": []}]
    assert "401" in spec["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert "security" not in spec["paths"]["/v1/admin/reload"]["post"]
    assert "securitySchemes" not in make_client().get("/openapi.json").json().get("components", {})


def test_the_guard_sees_through_a_proxy_root_path(tmp_path, fake_pipeline):
    app = create_app(Settings(data_dir=tmp_path / "data", api_keys=ALICE), pipeline=fake_pipeline)
    with TestClient(app, root_path="/api") as c:
        envelope(c.get("/api/v1/taxonomy"), 401, "unauthorized")
        assert c.get("/api/v1/taxonomy", headers=bearer(ALICE)).status_code == 200
        assert c.get("/api/healthz").status_code == 200
    assert route_path({"path": "/apiv1/jobs", "root_path": "/api"}) == "/apiv1/jobs"
    assert route_path({"path": "/v1/jobs", "root_path": "/api"}) == "/v1/jobs"


def test_behind_a_root_path_job_uploads_keep_their_own_size_limit(tmp_path, fake_pipeline):
    """The JSON body limit exempts /v1/jobs (uploads have PINGJIA_MAX_UPLOAD_BYTES) under a proxy
    prefix too, and a refused body is counted under the ``<refused>`` route, not ``<unmatched>``."""
    app = create_app(Settings(data_dir=tmp_path / "data", max_body_bytes=1024), pipeline=fake_pipeline)
    big = "x" * 5000
    with TestClient(app, root_path="/api") as c:
        assert c.post("/api/v1/jobs", files={"file": ("a.csv", f"text\n{big}\n")}).status_code == 202
        envelope(c.post("/api/v1/analyze", json={"text": big}), 413, "body_too_large")
        assert 'route="<refused>",status="413"' in c.get("/api/metrics").text
