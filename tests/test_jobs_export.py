"""CSV exports neutralise spreadsheet formulas (OWASP "CSV Injection"): every text cell
starting, also after leading whitespace, with = + - @ tab or CR gets a leading quote,
through ``csv_stream`` (with and without BOM), ``pingjia score`` and the jobs API."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from app.jobs import export
from tests.conftest import ROOT, needs_models, wait

# The OWASP payloads, plus the same behind leading whitespace (a spreadsheet that trims
# cells on import would otherwise still evaluate them).
OWASP = [
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "-2+3+cmd",
    "@SUM(A1)",
    '=HYPERLINK("http://x","y")',
    "\t=1+1",
    "\r=1+1",
    "\tplain after a tab",
    "\rplain after a CR",
    "-12",
]
BEHIND_WHITESPACE = [" =1+1", "  +1", '\u3000=HYPERLINK("http://x","y")', "\n@SUM(A1)", " \t-3"]
PAYLOADS = OWASP + BEHIND_WHITESPACE
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HARMLESS = ["r1", "12", "好评", "a=b", "x-1", "'quoted", ""]
REVIEW_TEXT_COLUMNS = ["id", "sentiment", "root_causes", "aspects", "keywords", "error"]
CONVERSATION_TEXT_COLUMNS = [
    "id",
    "qa_grade",
    "resolution",
    "escalation_risk",
    "sentiment_start",
    "sentiment_end",
    "root_causes",
    "violations",
    "error",
]


def review_body(row: int, payload: str) -> str:
    """A stored review result with the payload in every text-bearing field."""
    return json.dumps(
        {
            "row": row,
            "id": payload,
            "sentiment": {"label": payload, "probabilities": {"positive": 0.1, "neutral": 0.0, "negative": 0.9}},
            "root_causes": [{"cause": payload}, {"cause": "物流"}],
            "aspects": [{"aspect": payload, "polarity": "negative"}],
            "keywords": [{"term": payload, "polarity": "negative"}],
        },
        ensure_ascii=False,
    )


def review_error_body(row: int, payload: str) -> str:
    return json.dumps({"row": row, "id": payload, "error": {"code": payload, "message": "x"}}, ensure_ascii=False)


def conversation_body(row: int, payload: str) -> str:
    return json.dumps(
        {
            "row": row,
            "id": payload,
            "qa": {"score": 72, "grade": payload},
            "resolution": {"status": payload},
            "customer": {"escalation_risk": payload, "sentiment_start": payload, "sentiment_end": payload},
            "root_causes": [{"cause": payload}],
            "violations": [{"rule": payload}, {"rule": "no_greeting"}],
        },
        ensure_ascii=False,
    )


def read_csv(data: bytes, bom: bool) -> list[dict]:
    if bom:
        assert data.startswith(b"\xef\xbb\xbf")
    else:
        assert not data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def stream(bodies, kind="reviews", bom=False, batch=1000) -> bytes:
    return b"".join(export.csv_stream(list(enumerate(bodies)), kind, batch=batch, bom=bom))


def starts_dangerously(cell: str) -> bool:
    return cell.startswith(TRIGGERS) or cell.lstrip().startswith(TRIGGERS)


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("batch", [1000, 3])
def test_review_csv_neutralises_every_payload_in_every_text_column(bom, batch):
    rows = read_csv(stream([review_body(i + 1, p) for i, p in enumerate(PAYLOADS)], bom=bom, batch=batch), bom)
    assert len(rows) == len(PAYLOADS)
    for row, payload in zip(rows, PAYLOADS):
        assert row["id"] == "'" + payload
        assert row["sentiment"] == "'" + payload
        assert row["root_causes"] == "'" + payload + "|物流"
        assert row["aspects"] == "'" + payload + ":negative"
        assert row["keywords"] == "'" + payload + ":negative"
        # figures the service computes stay numbers a spreadsheet can sum
        assert (row["p_positive"], row["p_neutral"], row["p_negative"]) == ("0.1", "0.0", "0.9")
        assert row["row"].isdigit()
        assert not any(starts_dangerously(v) for v in row.values()), row


@pytest.mark.parametrize("bom", [False, True])
def test_review_error_rows_are_neutralised(bom):
    rows = read_csv(stream([review_error_body(i + 1, p) for i, p in enumerate(PAYLOADS)], bom=bom), bom)
    for row, payload in zip(rows, PAYLOADS):
        assert (row["id"], row["error"]) == ("'" + payload, "'" + payload)


@pytest.mark.parametrize("bom", [False, True])
def test_conversation_csv_neutralises_every_text_column(bom):
    data = stream([conversation_body(i + 1, p) for i, p in enumerate(PAYLOADS)], "conversations", bom=bom)
    rows = read_csv(data, bom)
    assert len(rows) == len(PAYLOADS)
    for row, payload in zip(rows, PAYLOADS):
        for col in (
            "id",
            "qa_grade",
            "resolution",
            "escalation_risk",
            "sentiment_start",
            "sentiment_end",
            "root_causes",
        ):
            assert row[col] == "'" + payload, col
        assert row["violations"] == "'" + payload + "|no_greeting"
        assert row["qa_score"] == "72"
        assert not any(starts_dangerously(v) for v in row.values()), row


@pytest.mark.parametrize("bom", [False, True])
def test_harmless_cells_are_untouched_and_no_raw_field_starts_with_a_payload(bom):
    one_line = OWASP[:5]  # no line breaks: the raw file can be checked line by line
    data = stream([review_body(i + 1, p) for i, p in enumerate(HARMLESS + one_line)], bom=bom)
    rows = read_csv(data, bom)
    assert [r["id"] for r in rows[: len(HARMLESS)]] == HARMLESS
    assert rows[HARMLESS.index("'quoted")]["keywords"] == "'quoted:negative"
    text = data.decode("utf-8-sig")
    for payload in one_line:
        quoted = '"' + payload.replace('"', '""')
        for raw in (f",{payload}", f"\n{payload}", f",{quoted}", f"\n{quoted}"):
            assert raw not in text, raw


def test_safe_cell_keeps_numbers_and_prefixes_text():
    assert export.safe_cell(-0.5) == -0.5 and export.safe_cell(3) == 3 and export.safe_cell(None) is None
    assert export.safe_cell("-0.5") == "'-0.5"
    assert [export.safe_cell(p) for p in PAYLOADS] == ["'" + p for p in PAYLOADS]
    assert [export.safe_cell(h) for h in HARMLESS] == HARMLESS


# --- end to end: pingjia score --------------------------------------------------------
def payload_csv(path, ids):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review_id", "content", "channel"])
        for i, rid in enumerate(ids):
            w.writerow([rid, "发货太慢了，客服态度很差" if i % 2 else "质量很好，物流很快", "app"])


@needs_models
@pytest.mark.slow
def test_cli_score_writes_neutralised_csv(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    ids = PAYLOADS
    payload_csv(src, ids)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "score",
            str(src),
            "-o",
            str(out),
            "--text-column",
            "content",
            "--id-column",
            "review_id",
            "--workers",
            "1",
            "--work-dir",
            str(tmp_path),
            "-q",
            "--columns",
            "codes",
            "--no-bom",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    rows = read_csv(out.read_bytes(), bom=False)
    assert [row["id"] for row in rows] == ["'" + p for p in ids]
    for row in rows:
        assert not any(starts_dangerously(v) for v in row.values()), row
        assert 0.0 <= float(row["p_negative"]) <= 1.0


# --- end to end: the jobs API -------------------------------------------------------------
@pytest.fixture
def client(make_job_client):
    return make_job_client(workers=1, chunk_rows=4)


@pytest.mark.parametrize("bom", [False, True])
def test_api_csv_results_are_neutralised(client, bom):
    items = [{"id": p, "text": "发货太慢了，客服态度很差"} for p in PAYLOADS]
    r = client.post("/v1/jobs", json={"kind": "reviews", "items": items})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert wait(client, job_id)["status"] == "done"
    resp = client.get(f"/v1/jobs/{job_id}/results", params={"format": "csv", "bom": str(bom).lower()})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = read_csv(resp.content, bom)
    assert [row["id"] for row in rows] == ["'" + p for p in PAYLOADS]
    for row in rows:
        assert not any(starts_dangerously(v) for v in row.values()), row
    # JSONL is data, not a spreadsheet: ids are returned exactly as sent
    jl = client.get(f"/v1/jobs/{job_id}/results").text.splitlines()
    assert [json.loads(line)["id"] for line in jl] == PAYLOADS
