"""The report page's load time in headless Chromium: a 100,000-row job against a 1,000-row one.

Run:
    .venv/bin/python bench/bench_ui.py                      # 100,000 rows, peer 1,000 rows
    .venv/bin/python bench/bench_ui.py --screenshot docs/img/report.png   # the README picture

Starts ``uvicorn app.main:app`` (bench/bench_jobs.py's ``start_service``, temporary data dir),
submits both review files (bench_jobs.write_reviews: the shared corpus when present, else
templates; channel/agent/category/date columns with a planted spike), waits for both, then
opens ``/ui/jobs/{id}`` in headless Chromium over the DevTools protocol (the browser test's
client) and reads ``data-rendered-ms``: ``performance.now()`` when every chart has drawn, i.e.
milliseconds from the start of navigation (HTML, scripts, taxonomy, job status, summary, charts).
The first load is cold (empty browser cache); then ``--loads`` more, of which the median and
the minimum are printed. Also printed: the summary's size and how long the service takes to
answer it (the page's largest request).

``--screenshot`` instead submits 2,000 reviews composed by bench/ui_data.py over three weeks
(agents, channels, stores, a spike day) and saves the page as a PNG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ui_data  # noqa: E402
from bench_jobs import load_average, start_service, write_reviews  # noqa: E402

from tests.test_ui_browser import Browser, chromium_path  # noqa: E402


def submit_and_wait(http: httpx.Client, path: Path) -> tuple[str, float]:
    with open(path, "rb") as f:
        r = http.post("/v1/jobs", files={"file": (path.name, f, "text/csv")})
    r.raise_for_status()
    job_id, t0 = r.json()["job_id"], time.perf_counter()
    while (st := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.5)
    assert st["status"] == "done", st
    return job_id, time.perf_counter() - t0


def page_figures(browser: Browser, http: httpx.Client, base: str, job_id: str, loads: int) -> dict:
    t = time.perf_counter()
    body = http.get(f"/v1/jobs/{job_id}/summary").content
    summary_ms = (time.perf_counter() - t) * 1000
    url = f"{base}/ui/jobs/{job_id}"
    cold = float(browser.load(url))
    errors = browser.errors()
    warm = [float(browser.load(url)) for _ in range(loads)]
    return {
        "summary_bytes": len(body),
        "summary_ms": summary_ms,
        "charts": browser.js("+document.body.dataset.charts"),
        "cold_ms": cold,
        "median_ms": statistics.median(warm),
        "min_ms": min(warm),
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--peer-rows", type=int, default=1_000)
    ap.add_argument("--loads", type=int, default=5, help="warm page loads per job after the cold one")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--screenshot", type=Path, help="save the page of a realistic 2,000-row job here instead")
    args = ap.parse_args()
    if chromium_path() is None:
        sys.exit("headless Chromium is not installed (apt-get install chromium)")
    # what bench_jobs.start_service reads
    args.chunk_rows, args.start, args.fake = 500, "fork", False
    work = Path(tempfile.mkdtemp(prefix="pingjia-bench-ui-"))
    proc, base = start_service(work, args)
    browser = Browser()
    try:
        with httpx.Client(base_url=base, timeout=3600) as http:
            if args.screenshot:
                path = work / "reviews.csv"
                ui_data.write_reviews_csv(path, ui_data.reviews(2000, 21))
                job_id, _ = submit_and_wait(http, path)
                browser.load(f"{base}/ui/jobs/{job_id}")
                assert browser.errors() == [], browser.errors()
                browser.screenshot(args.screenshot, max_height=3300)  # overview to the channel test
                print(f"saved {args.screenshot} ({args.screenshot.stat().st_size} bytes), job {job_id}")
                return
            results = {}
            for label, n in (("peer", args.peer_rows), ("large", args.rows)):
                path = work / f"reviews_{n}.csv"
                write_reviews(path, n)
                job_id, scoring_s = submit_and_wait(http, path)
                print(f"{label}: {n:,} rows scored in {scoring_s:.1f} s; loading its page …", file=sys.stderr)
                results[label] = {"rows": n, **page_figures(browser, http, base, job_id, args.loads)}
    finally:
        browser.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average {load_average()}; Chromium {chromium_path()}")
    print(
        f"{'job':>6} {'rows':>9} {'summary KB':>11} {'summary ms':>11} {'charts':>7} {'cold ms':>8} {'median ms':>10} {'min ms':>7}"
    )
    for label, r in results.items():
        print(
            f"{label:>6} {r['rows']:>9,} {r['summary_bytes'] / 1024:>11.1f} {r['summary_ms']:>11.1f} {r['charts']:>7} "
            f"{r['cold_ms']:>8.1f} {r['median_ms']:>10.1f} {r['min_ms']:>7.1f}"
        )
        if r["errors"]:
            print(f"  page errors: {r['errors']}")
    ratio = results["large"]["median_ms"] / results["peer"]["median_ms"]
    print(f"page load, {args.rows:,} rows / {args.peer_rows:,} rows (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
