"""The readable CSV (issue 14): every original column of the upload, in its order (extra ones
too), then the findings under Chinese headers; a UTF-8 BOM by default; row order kept with
error rows; formulas neutralised in the original columns as well; ``columns=codes`` still
gives the machine-readable CSV."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from app.jobs import export, service
from tests.conftest import CONVERSATIONS, conversation, wait

HEADER = ["review_id", "content", "agent", "channel", "date", "订单号", "note"]
ROWS = [
    ["r1", "发货太慢了，客服也不耐烦", "a1", "app", "2026-11-01", "A-001", '=HYPERLINK("http://x","y")'],
    ["r2", "质量很好，物流很快", "a2", "web", "2026-11-02", "A-002", "+1"],
    ["r3", "", "a1", "app", "2026-11-02", "A-003", "empty text"],
    ["r4", "东西不错，就是价格有点贵", "a2", "web", "2026-11-03", "-12", " @SUM(A1)"],
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def upload_bytes(rows=ROWS, bad_row_at: int | None = None) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for i, r in enumerate(rows):
        if i == bad_row_at:
            buf.write("bad,row\n")  # two fields: a row error, kept in its place
        w.writerow(r)
    return buf.getvalue().encode()


def parse(data: bytes, bom: bool = True) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf") == bom
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def dangerous(cell: str) -> bool:
    return cell.startswith(TRIGGERS) or cell.lstrip().startswith(TRIGGERS)


@pytest.fixture
def client(make_job_client):
    return make_job_client(workers=1, chunk_rows=2)


def finished(client, resp) -> str:
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    wait(client, job_id)
    return job_id


def submit_upload(client, data: bytes) -> str:
    form = {"text_column": "content", "id_column": "review_id"}
    return finished(client, client.post("/v1/jobs", files={"file": ("reviews.csv", data)}, data=form))


def test_upload_csv_keeps_every_original_column_in_order_then_chinese_findings(client):
    job_id = submit_upload(client, upload_bytes(bad_row_at=2))
    resp = client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    table = parse(resp.content)  # BOM on by default
    header, body = table[0], table[1:]
    assert header[: len(HEADER)] == HEADER
    assert header[len(HEADER) :] == export.REVIEW_HEADERS
    assert len(body) == len(ROWS) + 1 and all(len(r) == len(header) for r in body)
    col = {h: i for i, h in enumerate(header)}
    # input order, the refused row in its own place
    assert [r[col["review_id"]] for r in body] == ["r1", "r2", "", "r3", "r4"]
    assert body[2][col["错误"]].startswith("invalid_row") and body[2][col["review_id"]] == ""
    assert body[3][col["错误"]].startswith("empty_text")
    assert body[0][col["content"]] == ROWS[0][1] and body[0][col["订单号"]] == "A-001"
    assert body[0][col["情感"]] == "差评" and "物流配送" in body[0][col["根因"]].split("；")
    assert "物流配送：发货太慢" in body[0][col["证据"]]
    assert body[1][col["情感"]] == "好评" and body[1][col["根因"]] == ""
    # formulas in the uploader's own columns are neutralised too
    assert body[0][col["note"]] == "'" + ROWS[0][6] and body[1][col["note"]] == "'+1"
    assert body[4][col["订单号"]] == "'-12" and body[4][col["note"]] == "' @SUM(A1)"
    assert not any(dangerous(c) for r in table for c in r)


def test_bom_off_and_the_codes_csv_stay_reachable(client):
    job_id = submit_upload(client, upload_bytes())
    url = f"/v1/jobs/{job_id}/results"
    plain = parse(client.get(url, params={"format": "csv", "bom": "false"}).content, bom=False)
    assert plain[0][: len(HEADER)] == HEADER
    codes = parse(client.get(url, params={"format": "csv", "columns": "codes"}).content)
    assert codes[0] == export.CSV_FIELDS and [r[1] for r in codes[1:]] == ["r1", "r2", "r3", "r4"]
    assert client.get(url, params={"format": "csv", "columns": "nope"}).status_code == 422


def test_json_job_keeps_each_items_fields_first_seen_first(client):
    items = [
        {"id": "x1", "text": "发货太慢了", "channel": "app"},
        {"text": "质量很好", "id": "x2", "extra": "=1+1"},
        7,  # not an object: an error row in its place
        {"id": "x4", "text": "还行", "meta": {"k": "v"}},
    ]
    job_id = finished(client, client.post("/v1/jobs", json={"items": items}))
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    header, body = table[0], table[1:]
    assert header[:5] == ["id", "text", "channel", "extra", "meta"]
    col = {h: i for i, h in enumerate(header)}
    assert [r[col["id"]] for r in body] == ["x1", "x2", "", "x4"]
    assert body[1][col["extra"]] == "'=1+1" and json.loads(body[3][col["meta"]]) == {"k": "v"}
    assert body[2][col["错误"]].startswith("invalid_row")


def test_a_job_without_its_upload_falls_back_to_the_work_file(client, tmp_path):
    job_id = submit_upload(client, upload_bytes())
    (tmp_path / "jobs" / job_id / service.UPLOAD_FILE).unlink()
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    col = {h: i for i, h in enumerate(table[0])}
    assert [r[col["review_id"]] for r in table[1:]] == ["r1", "r2", "r3", "r4"]
    assert table[1][col["content"]] == ROWS[0][1] and table[1][col["情感"]] == "差评"


def test_conversation_csv_has_a_transcript_and_qa_columns(client):
    items = [conversation(p, ("id", "turns", "channel")) for p in CONVERSATIONS[:4]]
    job_id = finished(client, client.post("/v1/jobs", json={"kind": "conversations", "items": items}))
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    header, body = table[0], table[1:]
    assert header[-len(export.CONVERSATION_HEADERS) :] == export.CONVERSATION_HEADERS
    col = {h: i for i, h in enumerate(header)}
    assert [r[col["id"]] for r in body] == [i["id"] for i in items]
    first = body[0][col["turns"]].splitlines()
    assert first[0] == "客户：" + items[0]["turns"][0]["text"]
    assert all(r[col["质检等级"]] in ("优秀", "良好", "合格", "待改进") for r in body)
    assert all(float(r[col["质检得分"]]) >= 0 for r in body)


def test_conversation_csv_names_violations_and_masks_leaked_numbers(client):
    items = [conversation(p, ("id", "turns")) for p in CONVERSATIONS if p.match("0[6-9]_pii*.json")]
    job_id = finished(client, client.post("/v1/jobs", json={"kind": "conversations", "items": items}))
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    col = {h: i for i, h in enumerate(table[0])}
    cells = [r[col["违规"]] for r in table[1:]]
    assert any("泄露隐私（第" in c for c in cells), cells
    assert not any(re.search(r"\d{11}", c) for c in cells), cells  # no phone, ID or card number in clear


def test_a_header_that_clashes_with_a_finding_gets_a_suffix():
    originals = export.OriginalRows(lambda: iter([{"id": "1", "情感": "=mine"}]), ["id", "情感"])
    body = json.dumps({"row": 1, "id": "1", "error": {"code": "empty_text", "message": "x"}})
    table = parse(b"".join(export.readable_csv_stream([(0, body)], originals)))
    assert table[0][:3] == ["id", "情感", "情感（评价）"] and table[1][1] == "'=mine"


def test_the_sentiment_score_is_the_expected_rating():
    assert export.sentiment_score({"positive": 1.0, "neutral": 0.0, "negative": 0.0}) == 100.0
    assert export.sentiment_score({"positive": 0.0, "neutral": 0.0, "negative": 1.0}) == 0.0
    assert export.sentiment_score({"positive": 0.2, "neutral": 0.6, "negative": 0.2}) == 50.0


def test_results_of_a_cancelled_job_are_paired_with_their_own_rows():
    """Chunks finish out of order: results can skip rows, and must not shift onto their neighbours."""
    originals = [{"id": f"o{i}", "text": f"t{i}"} for i in range(6)]
    rows = export.OriginalRows(lambda: iter(originals), ["id", "text"])
    bodies = [(i, json.dumps({"row": i + 1, "id": f"o{i}", "error": {"code": "c", "message": "m"}})) for i in (0, 1, 4)]
    table = parse(b"".join(export.readable_csv_stream(bodies, rows)))
    assert [r[:2] for r in table[1:]] == [["o0", "t0"], ["o1", "t1"], ["o4", "t4"]]


def test_a_transcript_with_odd_turns_is_written_not_crashed():
    """A role that is not a string (a list crashed the taxonomy lookup), no role, a text that is
    not a string and a turn that is not an object: each shown as a cell, Chinese kept."""
    turns = [
        {"role": ["customer"], "text": "在吗"},
        {"role": None, "text": {"k": "值"}},
        {"role": "agent", "text": 3},
        "客服走开了",
        {"role": "customer"},
    ]
    originals = export.OriginalRows(lambda: iter([{"id": "c1", "turns": turns}]), ["id", "turns"])
    body = json.dumps({"row": 1, "id": "c1", "error": {"code": "invalid_conversation", "message": "x"}})
    table = parse(b"".join(export.readable_csv_stream([(0, body)], originals, "conversations")))
    assert table[1][1].splitlines() == ['["customer"]：在吗', '：{"k":"值"}', "客服：3", "客服走开了", "客户："]


def test_the_columns_come_from_ingest_not_from_another_read(client, monkeypatch):
    """Ingest records the upload's columns: the export reads the upload once, and a CSV whose
    every row was refused still gives back its header (the rows' own fields are unreadable)."""
    monkeypatch.setattr(export, "_columns", lambda *a, **k: pytest.fail("the upload was read for its columns"))
    data = ",".join(HEADER).encode() + b"\nbad,row\nr2,only,three\n"
    job_id = submit_upload(client, data)
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    assert table[0] == HEADER + export.REVIEW_HEADERS
    assert [r[-1].split(":")[0] for r in table[1:]] == ["invalid_row", "invalid_row"]
    items = [{"id": "x1", "text": "发货太慢了"}, {"id": "x2", "text": "好", "k": "v"}]
    job_id = finished(client, client.post("/v1/jobs", json={"items": items}))
    table = parse(client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv"}).content)
    assert table[0][:3] == ["id", "text", "k"] and table[2][2] == "v"


def test_a_job_from_before_the_recorded_columns_still_finds_them(tmp_path):
    path = tmp_path / "upload.raw"
    path.write_text('{"id": "1", "text": "好", "a": 1}\n[2]\n{"b": 2, "text": "差"}\n', encoding="utf-8")
    assert export.OriginalRows.from_upload(path, {"format": "jsonl"}).columns == ["id", "text", "a", "b"]
    recorded = export.OriginalRows.from_upload(tmp_path / "gone.raw", {"format": "jsonl"}, ["id", "text"])
    assert recorded.columns == ["id", "text"]  # taken as recorded: nothing read until the rows are
