"""``pingjia score`` on the jobs engine, as a user runs it (real models; skipped without)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, needs_models

pytestmark = [needs_models, pytest.mark.slow]  # real processes, loading the real models
FIXTURE = ROOT / "tests" / "fixtures" / "reviews_small.csv"


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "score", *args], cwd=ROOT, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_score_writes_results_and_the_report(tmp_path, workers):
    out, summary = tmp_path / "out.jsonl", tmp_path / "report.json"
    r = run(
        str(FIXTURE),
        "-o",
        str(out),
        "--summary",
        str(summary),
        "--text-column",
        "content",
        "--id-column",
        "review_id",
        "--workers",
        workers,
        "--work-dir",
        str(tmp_path),
        "-q",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in rows] == ["r1", "r2", "r3", "r4", "r5"]
    report = json.loads(summary.read_text(encoding="utf-8"))
    assert report["totals"] == {"rows": 5, "analysed": 4, "errors": 1}
    assert report["errors"]["by_code"] == {"empty_text": 1} and "thresholds" in report
    assert [g["column"] for g in report["groups"]["columns"]] == ["channel"]
    assert [p.name for p in tmp_path.iterdir()] == [] or all(
        not p.name.startswith("pingjia-score-") for p in tmp_path.iterdir()
    )


def test_bad_input_is_refused_before_scoring(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\n{"text": \n', encoding="utf-8")
    r = run(str(bad), "-o", str(tmp_path / "o.jsonl"), "-q", "--workers", "1")
    assert r.returncode == 2 and "line 2" in r.stderr
