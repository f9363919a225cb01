"""Issue 13's targets against the figures of one ``make bench`` run, one line each.

Reads the JSON that ``bench_pipeline.py --json`` and ``bench_jobs.py --json`` wrote in the same
run; prints each figure, its target and whether it was met. It judges, it does not measure, and
it is where the targets live (the benches print figures only).

    .venv/bin/python bench/targets.py .bench/pipeline.json .bench/jobs.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLAT = 0.10  # "memory flat": Pss in the last quarter of a job's rows at most this much above the second
# Issue 13's latency and jobs rows ("today" 2.4 / 5.3 ms and ~2,900 rows/s, the targets 1.5 / 5 ms
# and 6,000 rows/s) as the ratios its table heads ("ratios, not absolute times"): this tree's
# figure over the code before the issue's, measured in the same run (``--baseline 13a99ba``).
P50_RATIO, P99_RATIO, JOBS_RATIO = 1.5 / 2.4, 5 / 5.3, 6000 / 2900

# (figure, its value from the pipeline run p and the jobs run j, how it is shown, the target, met?)
TARGETS = [
    ("pipeline in-process vs raw jieba", lambda p, j: p["pipeline_vs_jieba"], "{:.2f}x", ">= 1.0x", lambda v: v >= 1.0),
    ("/v1/analyze/batch vs raw jieba", lambda p, j: p["batch_http_vs_jieba"], "{:.2f}x", ">= 0.8x", lambda v: v >= 0.8),
    ("/v1/analyze p50, httpx", lambda p, j: p["seq_p50_ms"], "{:.2f} ms", "<= 1.5 ms", lambda v: v <= 1.5),
    ("/v1/analyze p99, httpx", lambda p, j: p["seq_p99_ms"], "{:.2f} ms", "<= 5 ms", lambda v: v <= 5),
    (
        "/v1/analyze p50, httpx, vs before 13",
        lambda p, j: p["ab_seq_p50_ms"] / p["baseline_seq_p50_ms"],
        "{:.2f}x",
        f"<= {P50_RATIO:.3f}x (2.4 -> 1.5)",
        lambda v: v <= P50_RATIO,
    ),
    (
        "/v1/analyze p99, httpx, vs before 13",
        lambda p, j: p["ab_seq_p99_ms"] / p["baseline_seq_p99_ms"],
        "{:.2f}x",
        f"<= {P99_RATIO:.3f}x (5.3 -> 5)",
        lambda v: v <= P99_RATIO,
    ),
    ("/v1/analyze p50, raw client", lambda p, j: p["lean_seq_p50_ms"], "{:.2f} ms", "<= 1.5 ms", lambda v: v <= 1.5),
    ("/v1/analyze p99, raw client", lambda p, j: p["lean_seq_p99_ms"], "{:.2f} ms", "<= 5 ms", lambda v: v <= 5),
    ("server peak RSS, one worker", lambda p, j: p["server_peak_rss_mb"], "{:.0f} MB", "<= 300 MB", lambda v: v <= 300),
    ("start-up to /readyz", lambda p, j: p["startup_to_readyz_s"], "{:.2f} s", "<= 3 s", lambda v: v <= 3),
    ("jobs, rows/s on 2 cores", lambda p, j: j["rows_per_s"], "{:,.0f}", ">= 6,000", lambda v: v >= 6000),
    (
        "jobs, rows/s vs before 13",
        lambda p, j: j["jobs_vs_baseline"],
        "{:.2f}x",
        f">= {JOBS_RATIO:.2f}x (2,900 -> 6,000)",
        lambda v: v >= JOBS_RATIO,
    ),
    (
        "jobs, Pss growth over the run",
        lambda p, j: j["pss_last_quarter_mb"] / j["pss_second_quarter_mb"] - 1,
        "{:+.1%}",
        f"<= +{FLAT:.0%} (flat)",
        lambda v: v <= FLAT,
    ),
]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    pipeline, jobs = (json.loads(Path(a).read_text(encoding="utf-8")) for a in sys.argv[1:])
    print(f"\n== issue 13's targets, this run (jobs: {jobs['rows']:,} rows) ==")
    for name, value_of, shown, target, met in TARGETS:
        try:
            value = value_of(pipeline, jobs)
        except KeyError:  # e.g. a jobs run too short to sample Pss twice
            print(f"  {name:38s} {'not measured':>12s}   target {target}")
            continue
        print(f"  {name:38s} {shown.format(value):>12s}   target {target:26s} {'met' if met(value) else 'NOT met'}")


if __name__ == "__main__":
    main()
