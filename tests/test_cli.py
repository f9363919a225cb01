"""The installed CLI as a user runs it (real models; skipped when none are shipped)."""

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs_models

pytestmark = [needs_models, pytest.mark.slow]  # a real process, loading the real models
FIXTURE = ROOT / "tests" / "fixtures" / "reviews_small.csv"


def run(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=180, **kw
    )


def test_analyze_prints_the_finding():
    r = run("analyze", "发货太慢了，客服也不耐烦")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["sentiment"]["label"] == "negative"
    assert {c["cause"] for c in body["root_causes"]} >= {"logistics", "attitude"}


def test_analyze_reports_bad_input_as_json():
    r = run("analyze", "   ")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["code"] == "empty_text"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_score_csv_to_jsonl_in_order(tmp_path, workers):
    out = tmp_path / "out.jsonl"
    r = run(
        "score",
        str(FIXTURE),
        "-o",
        str(out),
        "--text-column",
        "content",
        "--id-column",
        "review_id",
        "--workers",
        workers,
        "-q",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in rows] == ["r1", "r2", "r3", "r4", "r5"]
    assert rows[2]["error"]["code"] == "empty_text"
    assert rows[1]["sentiment"]["label"] == "positive"
    assert "price" in {c["cause"] for c in rows[3]["root_causes"]}


def test_score_to_csv(tmp_path):
    out = tmp_path / "out.csv"
    r = run(
        "score",
        str(FIXTURE),
        "-o",
        str(out),
        "--text-column",
        "content",
        "--id-column",
        "review_id",
        "--workers",
        "1",
        "-q",
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # for Excel
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig", newline="")))
    assert [x["review_id"] for x in rows] == ["r1", "r2", "r3", "r4", "r5"]
    assert rows[2]["错误"].startswith("empty_text") and rows[1]["情感"] == "好评"


def test_score_missing_column_fails_clearly(tmp_path):
    r = run("score", str(FIXTURE), "-o", str(tmp_path / "o.jsonl"), "--text-column", "nope", "-q", "--workers", "1")
    assert r.returncode == 2 and "nope" in r.stderr
