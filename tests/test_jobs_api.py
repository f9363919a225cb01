"""/v1/jobs through the app (fake sentiment, in-thread workers): submit, poll, results,
summary, cancel, errors, retention."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from app.core.config import Settings
from app.jobs import service
from tests.conftest import wait

NEG_TEXT, POS_TEXT = "发货太慢了，客服态度很差", "质量很好，物流很快"


@pytest.fixture
def rules(conversation_rules):
    return conversation_rules


@pytest.fixture
def make_client(make_job_client):
    """tests/conftest.py's ``make_job_client`` (also imported by test_jobs_hostile)."""
    return make_job_client


@pytest.fixture
def client(make_client):
    return make_client()


def error_code(resp, status):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


def csv_bytes(n=100):
    lines = ["review_id,content,channel,date"]
    for i in range(n):
        text = NEG_TEXT if i % 10 == 0 or (i % 2 and i < 60) else POS_TEXT
        lines.append(f"r{i},{text},{'app' if i % 2 else 'web'},2026-11-{1 + i % 10:02d}")
    return ("\n".join(lines) + "\n").encode()


def submit_csv(client, data=None, **form):
    form = {"text_column": "content", "id_column": "review_id", **form}
    return client.post("/v1/jobs", files={"file": ("reviews.csv", data or csv_bytes())}, data=form)


def results(client, job_id, fmt="jsonl"):
    params = {"format": fmt, "columns": "codes", "bom": "false"} if fmt == "csv" else {"format": fmt}
    r = client.get(f"/v1/jobs/{job_id}/results", params=params)  # the readable CSV: tests/test_export_csv.py
    assert r.status_code == 200, r.text
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(r.text)))
    return [json.loads(line) for line in r.text.splitlines()]


def test_csv_upload_runs_to_done_with_every_row_once_in_order(client):
    r = submit_csv(client)
    assert r.status_code == 202
    body = r.json()
    assert body["status"] == "queued" and body["total"] == 100
    st = wait(client, body["job_id"])
    assert (st["status"], st["done"], st["total"], st["errors"]) == ("done", 100, 100, 0)
    assert st["rows_per_second"] > 0 and st["eta_seconds"] is None and st["finished_at"] >= st["started_at"]
    rows = results(client, body["job_id"])
    assert [x["id"] for x in rows] == [f"r{i}" for i in range(100)]
    assert [x["row"] for x in rows] == list(range(1, 101))
    assert rows[0]["sentiment"]["label"] == "negative" and rows[0]["root_causes"]


def test_jsonl_upload(client):
    lines = [
        json.dumps({"id": f"j{i}", "text": NEG_TEXT if i % 2 else POS_TEXT}, ensure_ascii=False) for i in range(40)
    ]
    r = client.post("/v1/jobs", files={"file": ("x.jsonl", "\n".join(lines).encode())})
    assert r.status_code == 202 and r.json()["total"] == 40
    wait(client, r.json()["job_id"])
    assert [x["id"] for x in results(client, r.json()["job_id"])] == [f"j{i}" for i in range(40)]


def test_json_items_with_extra_fields(client):
    items = [{"id": f"i{i}", "text": POS_TEXT, "channel": "app"} for i in range(5)] + [{"text": NEG_TEXT}]
    r = client.post("/v1/jobs", json={"kind": "reviews", "items": items})
    assert r.status_code == 202 and r.json()["total"] == 6
    st = wait(client, r.json()["job_id"])
    assert st["done"] == 6
    assert [x["id"] for x in results(client, r.json()["job_id"])] == ["i0", "i1", "i2", "i3", "i4", "6"]


def test_bad_rows_are_row_errors_and_the_job_still_finishes(client):
    data = b'{"id": "a", "text": "\xe5\xa5\xbd"}\n{"id": "b", "text": ""}\n[1]\n{"id": "d", "text": 7}\n'
    r = client.post("/v1/jobs", files={"file": ("x.jsonl", data)})
    st = wait(client, r.json()["job_id"])
    assert (st["status"], st["done"], st["errors"]) == ("done", 4, 3)
    rows = results(client, r.json()["job_id"])
    assert "sentiment" in rows[0]
    assert [x.get("error", {}).get("code") for x in rows[1:]] == ["empty_text", "invalid_row", "invalid_input"]
    summary = client.get(f"/v1/jobs/{r.json()['job_id']}/summary").json()
    assert summary["errors"]["by_code"] == {"empty_text": 1, "invalid_input": 1, "invalid_row": 1}


@pytest.mark.parametrize(
    "name, data, form, code, words",
    [
        ("x.csv", b"id,body\n1,x\n", {}, "missing_column", ["'text'", "body"]),
        ("x.csv", "id,text\n1,好\n".encode() + "2,差\n".encode("gbk"), {}, "bad_encoding", ["line 3"]),
        ("x.jsonl", b'{"text": "a"}\n{"text": \n', {}, "invalid_jsonl", ["line 2"]),
        ("x.csv", b"", {}, "empty_file", []),
        ("x.csv", b"id,text\n1,x\n", {"kind": "conversations"}, "unsupported_format", ["JSONL"]),
        ("x.csv", b"id,text\n1,x\n", {"text_col": "x"}, "invalid_input", ["text_col"]),
    ],
)
def test_malformed_uploads_are_refused_at_submit(client, tmp_path, name, data, form, code, words):
    err = error_code(client.post("/v1/jobs", files={"file": (name, data)}, data=form), 422)
    assert err["code"] == code and all(w in err["message"] for w in words), err
    assert not any((tmp_path / "jobs").iterdir())  # nothing left behind


def test_other_refusals(make_client):
    c = make_client(max_upload_bytes=2048, max_body_bytes=4096)
    assert (
        error_code(c.post("/v1/jobs", content=b"x", headers={"content-type": "text/plain"}), 415)["code"]
        == "unsupported_media_type"
    )
    assert (
        error_code(c.post("/v1/jobs", files={"file": ("x.csv", b"text\n" + b"a\n" * 2000)}), 413)["code"]
        == "body_too_large"
    )
    assert error_code(c.post("/v1/jobs", json={"items": [{"text": "好" * 3000}]}), 413)["code"] == "body_too_large"
    assert (
        error_code(c.post("/v1/jobs", content=b"{oops", headers={"content-type": "application/json"}), 400)["code"]
        == "invalid_json"
    )
    assert error_code(c.post("/v1/jobs", json={"items": []}), 422)["code"] == "invalid_input"
    assert error_code(c.post("/v1/jobs", files={"upload": ("x.csv", b"text\nx\n")}), 422)["code"] == "missing_file"


def test_results_as_csv(client):
    job_id = submit_csv(client).json()["job_id"]
    wait(client, job_id)
    rows = results(client, job_id, "csv")
    assert [x["id"] for x in rows] == [f"r{i}" for i in range(100)]
    assert rows[0]["sentiment"] == "negative" and "logistics" in rows[0]["root_causes"]
    bom = client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv", "columns": "codes"})  # BOM by default
    assert bom.content.startswith("\ufeffrow,id".encode())
    assert error_code(client.get(f"/v1/jobs/{job_id}/results", params={"format": "xml"}), 422)


def test_summary_is_the_report(client):
    job_id = submit_csv(client).json()["job_id"]
    wait(client, job_id)
    s = client.get(f"/v1/jobs/{job_id}/summary").json()
    assert s["complete"] and s["totals"] == {"rows": 100, "analysed": 100, "errors": 0}
    assert {c["cause"] for c in s["root_causes"]} >= {"logistics", "attitude"}
    channel = s["groups"]["columns"][0]
    assert channel["column"] == "channel" and channel["flagged"] == ["app"]  # app: 30/50 negative, web 10/50
    assert s["daily"]["column"] == "date" and len(s["daily"]["series"]) == 10
    assert s["complaint_terms"]["items"][0]["example"]["text"] == NEG_TEXT
    assert s["thresholds"]["group_min_rows"] == 30
    assert client.get(f"/v1/jobs/{job_id}/summary").json() == s  # cached once done


def test_explicit_report_columns(client):
    job_id = submit_csv(client, group_columns="channel", date_column="").json()["job_id"]
    st = wait(client, job_id)
    assert st["report_plan"] == {"group_columns": ["channel"], "date_column": "date"}


def test_queued_job_can_be_cancelled_and_results_wait_for_done(make_client):
    c = make_client(workers=0)
    job_id = submit_csv(c).json()["job_id"]
    assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert error_code(c.get(f"/v1/jobs/{job_id}/results"), 409)["code"] == "job_not_done"
    partial = c.get(f"/v1/jobs/{job_id}/summary").json()
    assert partial["complete"] is False and partial["totals"]["rows"] == 0
    r = c.delete(f"/v1/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    assert error_code(c.delete(f"/v1/jobs/{job_id}"), 409)["code"] == "job_finished"
    assert results(c, job_id) == []  # nothing was scored


def test_cancel_stops_a_running_job(make_client):
    c = make_client(workers=1, chunk_rows=1)
    job_id = submit_csv(c, csv_bytes(2000)).json()["job_id"]
    wait(c, job_id, until=("running",))
    assert c.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    time.sleep(0.2)
    st = c.get(f"/v1/jobs/{job_id}").json()
    assert st["status"] == "cancelled" and st["done"] < 2000
    ids = [x["id"] for x in results(c, job_id)]
    assert ids == [f"r{i}" for i in range(len(ids))]  # what was done, in order, once


def test_unknown_job_is_404_everywhere(client):
    for method, path in [("get", ""), ("get", "/results"), ("get", "/summary"), ("delete", "")]:
        err = error_code(getattr(client, method)(f"/v1/jobs/nope{path}"), 404)
        assert err["code"] == "not_found" and "nope" in err["message"]


def test_conversation_jobs(client):
    conv = {
        "id": "c1",
        "turns": [
            {"role": "customer", "text": "我的快递三天了还没发货", "time": "2026-11-20T10:00:00+08:00"},
            {
                "role": "agent",
                "text": "您好，请稍等，我帮您查一下",
                "time": "2026-11-20T10:00:40+08:00",
                "agent_id": "a17",
            },
        ],
    }
    data = "\n".join(json.dumps({**conv, "id": f"c{i}"}, ensure_ascii=False) for i in range(5)) + '\n{"id": "bad"}\n'
    r = client.post("/v1/jobs", files={"file": ("t.jsonl", data.encode())}, data={"kind": "conversations"})
    assert r.status_code == 202, r.text
    st = wait(client, r.json()["job_id"])
    assert (st["kind"], st["done"], st["errors"]) == ("conversations", 6, 1)
    rows = results(client, r.json()["job_id"])
    assert rows[0]["id"] == "c0" and "qa" in rows[0] and rows[5]["error"]["code"] == "invalid_conversation"
    s = client.get(f"/v1/jobs/{r.json()['job_id']}/summary").json()
    assert s["totals"]["analysed"] == 5 and s["daily"]["series"][0]["date"] == "2026-11-20"
    assert results(client, r.json()["job_id"], "csv")[0]["qa_grade"]


def test_finished_jobs_are_pruned_after_retention(client, make_client, tmp_path):
    job_id = submit_csv(client).json()["job_id"]
    wait(client, job_id)
    settings = Settings(data_dir=tmp_path, job_retention_days=7)
    store = client.app.state.job_store
    assert service.prune_jobs(store, settings, now=time.time() + 6 * 86400) == []
    assert service.prune_jobs(store, settings, now=time.time() + 8 * 86400) == [job_id]
    assert error_code(client.get(f"/v1/jobs/{job_id}"), 404)
    assert not (tmp_path / "jobs" / job_id).exists()
