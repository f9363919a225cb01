"""bench/targets.py judges one `make bench` run against issue 13's targets, bench_jobs.pss_growth
gives it the memory figure, bench_pipeline.server_side_p50 reads the server's own timing from
its access log and bench_pipeline.alternating_latency times this server and the baseline on the
same texts: all read or order numbers, so all are checked here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_jobs  # noqa: E402
import bench_pipeline  # noqa: E402
import targets  # noqa: E402

PIPELINE = {
    "pipeline_vs_jieba": 1.04,
    "batch_http_vs_jieba": 0.79,
    "seq_p50_ms": 2.14,
    "seq_p99_ms": 3.11,
    "lean_seq_p50_ms": 1.23,
    "lean_seq_p99_ms": 2.14,
    "server_peak_rss_mb": 247.0,
    "startup_to_readyz_s": 2.58,
    "ab_seq_p50_ms": 2.0,
    "baseline_seq_p50_ms": 3.0,  # 0.67x: more than 1.5 / 2.4
    "ab_seq_p99_ms": 3.0,
    "baseline_seq_p99_ms": 5.0,
}
JOBS = {
    "rows": 100_000,
    "rows_per_s": 6349.0,
    "pss_second_quarter_mb": 300.0,
    "pss_last_quarter_mb": 345.0,
    "jobs_vs_baseline": 2.12,  # at least 6,000 / 2,900
}


def judged(tmp_path, monkeypatch, capsys, pipeline: dict, jobs: dict) -> dict[str, str]:
    paths = []
    for name, data in (("p.json", pipeline), ("j.json", jobs)):
        (tmp_path / name).write_text(json.dumps(data))
        paths.append(str(tmp_path / name))
    monkeypatch.setattr(sys, "argv", ["targets.py", *paths])
    targets.main()
    lines = capsys.readouterr().out.splitlines()[2:]
    return {name: next(line for line in lines if name in line) for name, *_ in targets.TARGETS}


def verdict(line: str) -> str:
    return "NOT met" if line.endswith("NOT met") else "met" if line.endswith(" met") else "none"


def test_each_target_is_judged_on_its_own_figure(tmp_path, monkeypatch, capsys):
    out = judged(tmp_path, monkeypatch, capsys, PIPELINE, JOBS)
    verdicts = {name: verdict(line) for name, line in out.items()}
    assert verdicts == {
        "pipeline in-process vs raw jieba": "met",
        "/v1/analyze/batch vs raw jieba": "NOT met",  # 0.79 < 0.8
        "/v1/analyze p50, httpx": "NOT met",
        "/v1/analyze p99, httpx": "met",
        "/v1/analyze p50, httpx, vs before 13": "NOT met",
        "/v1/analyze p99, httpx, vs before 13": "met",
        "/v1/analyze p50, raw client": "met",
        "/v1/analyze p99, raw client": "met",
        "server peak RSS, one worker": "met",
        "start-up to /readyz": "met",
        "jobs, rows/s on 2 cores": "met",
        "jobs, rows/s vs before 13": "met",
        "jobs, Pss growth over the run": "NOT met",  # +15 % is not flat
    }
    assert "1.04x" in out["pipeline in-process vs raw jieba"] and "2.14 ms" in out["/v1/analyze p50, httpx"]
    assert "0.67x" in out["/v1/analyze p50, httpx, vs before 13"]
    assert "6,349" in out["jobs, rows/s on 2 cores"] and "2.12x" in out["jobs, rows/s vs before 13"]
    assert "+15.0%" in out["jobs, Pss growth over the run"]


def test_a_figure_the_run_lacks_is_not_measured_rather_than_met(tmp_path, monkeypatch, capsys):
    jobs = {"rows": 1000, "rows_per_s": 7000.0}  # too short to sample Pss twice, no --baseline
    pipeline = {k: v for k, v in PIPELINE.items() if not k.startswith(("ab_", "baseline_"))}  # no --baseline
    out = judged(tmp_path, monkeypatch, capsys, pipeline, jobs)
    for name in ("jobs, Pss growth over the run", "jobs, rows/s vs before 13", "/v1/analyze p50, httpx, vs before 13"):
        assert "not measured" in out[name]
        assert verdict(out[name]) == "none"


class FakeClient:
    """Records the texts it is sent, in order, in a log it shares with the other client."""

    def __init__(self, name: str, log: list):
        self.name, self.log = name, log

    def post(self, path: str, json: dict):
        assert path == "/v1/analyze"
        self.log.append((self.name, json["text"]))
        return self

    def raise_for_status(self) -> None:
        pass


def test_the_baseline_and_this_server_take_turns_on_the_same_texts():
    log: list = []
    texts = [f"t{i}" for i in range(5)]
    clients = {"now": FakeClient("now", log), "before": FakeClient("before", log)}
    ms = bench_pipeline.alternating_latency(clients, texts, 2)
    assert [name for name, _ in log] == ["now"] * 2 + ["before"] * 2 + ["now"] * 2 + ["before"] * 2 + ["now", "before"]
    assert [t for name, t in log if name == "now"] == [t for name, t in log if name == "before"] == texts
    assert len(ms["now"]) == len(ms["before"]) == 5 and all(v >= 0 for v in ms["now"])


@pytest.mark.parametrize(
    "progress, expected",
    [
        # (rows done, Pss kB) per poll of a 100-row job: the highest of each quarter's readings
        ([(0, 0), (30, 1024 * 300), (40, 1024 * 310), (80, 1024 * 305), (99, 1024 * 320)], (310, 320)),
        ([(0, 0), (30, 0), (80, 1024 * 305)], None),  # no Pss read yet in the second quarter
        ([(30, 1024 * 300)], None),  # finished before the last quarter was polled
    ],
)
def test_pss_growth_compares_the_second_and_the_last_quarter(progress, expected):
    got = bench_jobs.pss_growth(progress, 100)
    if expected is None:
        assert got == {}
    else:
        assert (got["pss_second_quarter_mb"], got["pss_last_quarter_mb"]) == expected


def access_line(route: str, status: int, ms: float) -> str:
    fields = {"logger": "pingjia.access", "route": route, "status": status, "duration_ms": ms}
    return json.dumps({"ts": "2026-12-05T21:00:00.000Z", "level": "info", **fields})


def test_server_side_p50_splits_the_sequential_requests_by_client(tmp_path):
    log = tmp_path / "server.log"
    lines = [json.dumps({"logger": "uvicorn.error", "message": "Started"}), access_line("/v1/analyze/batch", 200, 90.0)]
    lines += [access_line("/v1/analyze", 200, ms) for ms in (1.0, 2.0, 3.0)]  # httpx
    lines += [access_line("/v1/analyze", 422, 0.2)]  # refused bodies are not counted
    lines += [access_line("/v1/analyze", 200, ms) for ms in (0.5, 0.7, 0.9)]  # the raw client
    lines += [access_line("/v1/analyze", 200, 9.0)]  # the concurrent requests after them
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert bench_pipeline.server_side_p50(log, 3) == {"server_seq_p50_ms": 2.0, "server_lean_seq_p50_ms": 0.7}
    assert bench_pipeline.server_side_p50(log, 4) == {}  # fewer lines than two runs of 4: not measured


def test_a_baseline_that_does_not_start_leaves_this_trees_figures_standing(tmp_path, monkeypatch):
    """``make bench`` still reports this tree when the earlier revision's server or job service
    cannot start (its worktree is made and removed as usual)."""
    removed = []
    for module in (bench_pipeline, bench_jobs):
        monkeypatch.setattr(module, "checkout", lambda rev, where: where)
        monkeypatch.setattr(module, "remove", removed.append)

    def no_server(*args, **kwargs):
        raise SystemExit("server did not become ready in 60 s")

    monkeypatch.setattr(bench_pipeline, "launch", no_server)
    assert bench_pipeline.bench_baseline("13a99ba", "http://127.0.0.1:1", ["好"]) == {}

    started, stopped = [], []

    def first_only(data_dir, args, code):
        if started:
            raise SystemExit("service not ready after 120 s")
        started.append(code)
        return "this tree's service", "http://127.0.0.1:1"

    monkeypatch.setattr(bench_jobs, "start_service", first_only)
    monkeypatch.setattr(bench_jobs, "stop_service", stopped.append)
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,text\nr0,好\n", encoding="utf-8")
    args = type("Args", (), {"baseline": "13a99ba", "work_dir": str(tmp_path), "rows": 1})()
    assert bench_jobs.baseline_jobs(csv_path, args) == {}
    assert started == [bench_jobs.ROOT] and stopped == ["this tree's service"]
    assert len(removed) == 2  # both worktrees removed
