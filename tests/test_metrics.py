"""GET /metrics: parsed with prometheus_client's own parser; route templates (never raw paths)
as labels, texts by kind, jobs and rows/s read from the store at scrape time, model versions."""

from __future__ import annotations

from functools import partial

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait


@pytest.fixture
def make_client(make_job_client):
    return partial(make_job_client, workers=0, inline=True, chunk_rows=4)


def scrape(client, **headers) -> dict[str, list]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(resp.text)}


def value(samples, name, **labels) -> float | None:
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_requests_are_counted_by_route_template_and_status(make_client):
    c = make_client()
    job_id = c.post("/v1/jobs", json={"items": [{"text": "好"}]}).json()["job_id"]
    for _ in range(3):
        c.get(f"/v1/jobs/{job_id}")
    c.get("/v1/jobs/" + "f" * 32)
    c.get("/no/such/page/123")
    c.post("/v1/analyze", json={"text": ""})
    m = scrape(c)
    reqs = m["pingjia_http_requests"]
    assert value(reqs, "pingjia_http_requests_total", route="/v1/jobs/{job_id}", status="200", method="GET") == 3
    assert value(reqs, "pingjia_http_requests_total", route="/v1/jobs/{job_id}", status="404") == 1
    assert value(reqs, "pingjia_http_requests_total", route="/v1/jobs", status="202", method="POST") == 1
    assert value(reqs, "pingjia_http_requests_total", route="<unmatched>", status="404") == 1
    assert value(reqs, "pingjia_http_requests_total", route="/v1/analyze", status="422") == 1
    labels = {v for s in reqs for v in s.labels.values()}
    assert not any(job_id in v or "123" in v for v in labels), labels  # no raw paths, no ids
    hist = m["pingjia_http_request_duration_seconds"]
    count = value(hist, "pingjia_http_request_duration_seconds_count", route="/v1/jobs/{job_id}", status="200")
    inf = value(
        hist, "pingjia_http_request_duration_seconds_bucket", route="/v1/jobs/{job_id}", status="200", le="+Inf"
    )
    assert count == inf == 3
    assert value(hist, "pingjia_http_request_duration_seconds_sum", route="/v1/jobs/{job_id}", status="200") > 0


def test_texts_analysed_by_kind_count_batch_items(make_client):
    c = make_client()
    c.post("/v1/analyze", json={"text": "发货太慢了"})
    c.post("/v1/analyze/batch", json={"items": [{"text": "好"}, {"text": "差"}, {"text": ""}]})
    c.post("/v1/analyze", json={"text": ""})  # refused: not counted
    turns = [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "您好"}]
    assert c.post("/v1/conversations/analyze", json={"turns": turns}).status_code == 200
    texts = scrape(c)["pingjia_texts_analysed"]
    assert value(texts, "pingjia_texts_analysed_total", kind="review") == 4
    assert value(texts, "pingjia_texts_analysed_total", kind="conversation") == 1


def test_jobs_queue_and_models_are_read_at_scrape_time(make_client, fake_pipeline):
    c = make_client(workers=0)
    for _ in range(2):
        c.post("/v1/jobs", json={"items": [{"text": "好"}]})
    m = scrape(c)
    assert value(m["pingjia_jobs"], "pingjia_jobs", status="queued") == 2
    assert value(m["pingjia_job_queue_depth"], "pingjia_job_queue_depth") == 2
    assert value(m["pingjia_job_rows_per_second"], "pingjia_job_rows_per_second") == 0
    assert value(m["pingjia_analysis_queue_depth"], "pingjia_analysis_queue_depth") == 0
    (info,) = m["pingjia_model_info"]  # an info metric is a gauge of 1 in the text format
    assert info.value == 1 and info.labels == {k: str(v) for k, v in fake_pipeline.versions.items()}


def test_rows_per_second_after_a_job_is_scored(make_client):
    c = make_client(workers=1)
    job_id = c.post("/v1/jobs", json={"items": [{"text": f"发货太慢了{i}"} for i in range(30)]}).json()["job_id"]
    wait(c, job_id)
    m = scrape(c)
    assert value(m["pingjia_jobs"], "pingjia_jobs", status="done") == 1
    assert value(m["pingjia_job_queue_depth"], "pingjia_job_queue_depth") == 0
    assert value(m["pingjia_job_rows_per_second"], "pingjia_job_rows_per_second") == pytest.approx(30 / 60)


def test_metrics_token_guards_the_scrape_when_set(make_client):
    c = make_client(metrics_token="scrape-secret")
    resp = c.get("/metrics")
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scrape(c, Authorization="Bearer scrape-secret")


def test_metrics_can_be_switched_off(make_client):
    c = make_client(metrics_enabled=False)
    assert c.get("/metrics").status_code == 404
    assert c.get("/healthz").status_code == 200


def test_a_broken_job_store_does_not_break_the_scrape(make_client):
    c = make_client()
    c.app.state.job_store.close()
    (tmp := c.app.state.job_store.path).unlink()
    for suffix in ("-wal", "-shm"):
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    tmp.mkdir()  # the path is now a directory: every query fails
    m = scrape(c)
    assert "pingjia_http_requests" in m and "pingjia_jobs" not in m
