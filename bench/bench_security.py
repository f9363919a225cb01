"""What API keys, metrics, JSON access logging and rate limiting cost on ``/v1/analyze``.

Run: .venv/bin/python bench/bench_security.py [--data ../shared/data] [--n 3000] [--rounds 3]

Three uvicorn servers on loopback, built by :func:`make_app` from the same code and models:
``off`` and ``off2`` (no keys, no limits, metrics switched off, access log not written) and
``on`` (API keys, rate and upload limits, /metrics instruments, JSON access lines with the PII
filter written to a file). One client sends the same texts to all three, in turn, request by
request (rotating who goes first), so the machine's load (it is shared) falls on all alike.
Each round reports p50/p99 per server and the differences ``on - off`` (the overhead) and
``off2 - off`` (the same configuration twice: how far two servers differ by chance); the
figures to read are the medians over the rounds (issue 14's target: p50 overhead <= 0.2 ms). Afterwards it checks the ``on`` server really did the work:
a request without a key is refused, /metrics counted the requests, the log file has a line each.
"""

from __future__ import annotations

import argparse
import json
import logging.config
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # also when uvicorn imports bench.bench_security

from bench_hostile import pct  # noqa: E402
from bench_pipeline import free_port, load_average, load_reviews  # noqa: E402

KEY = "bench-key-0123456789abcdef0123"
SAMPLE = [
    "发货太慢了，客服也不耐烦",
    "质量很好，物流很快，非常满意",
    "还行吧，价格有点贵",
    "客服很耐心，但是物流太慢",
    "东西与描述不符，退款拖了一周",
    "包装破损，联系客服没人理",
    "味道不错，送餐准时，下次还点",
    "尺码偏小，换货流程太麻烦了",
]


def make_app():
    """The app for one server, by ``BENCH_MODE`` (``off`` / ``on``); uvicorn calls it (--factory)."""
    from app.core.config import Settings
    from app.core.logs import logging_config
    from app.main import create_app

    data = os.environ["BENCH_DATA_DIR"]
    if os.environ["BENCH_MODE"] == "on":
        config = logging_config("json", "info")
        config["handlers"]["stderr"] = {
            "class": "logging.FileHandler",
            "filename": os.environ["BENCH_LOG_FILE"],
            "formatter": "default",
            "filters": ["pii"],
        }
        logging.config.dictConfig(config)
        settings = Settings(
            data_dir=data,
            job_workers=1,
            api_keys=f"bench:{KEY},other:{KEY[::-1]}",
            rate_per_second=100_000,
            rate_burst=100_000,
            upload_bytes_per_hour=10**12,
            metrics_enabled=True,
        )
    else:
        logging.getLogger("pingjia.access").setLevel(logging.WARNING)
        settings = Settings(data_dir=data, job_workers=1, metrics_enabled=False)
    return create_app(settings)


def load_texts(data: Path | None, n: int) -> tuple[list[str], str]:
    path = data / "reviews_train.csv" if data else None
    if path and path.is_file():
        return [
            t[:300] for t in load_reviews(data, n)
        ], f"{path} (first {n} after a seeded shuffle, cut to 300 characters)"
    rng = random.Random(7)
    return [f"{rng.choice(SAMPLE)}{i}" for i in range(n)], f"{len(SAMPLE)} built-in sample reviews (no --data)"


def start(mode: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINGJIA_")}
    env.update(BENCH_MODE=mode, BENCH_DATA_DIR=str(tmp / mode), BENCH_LOG_FILE=str(tmp / "access.log"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bench_security:make_app", "--factory", "--port", str(port)]
        + ["--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(base: str, headers: dict) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                httpx.post(f"{base}/v1/analyze", json={"text": "好"}, headers=headers).raise_for_status()
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{base} did not become ready in 120 s")


def run_round(clients: dict[str, httpx.Client], headers: dict[str, dict], texts: list[str]) -> dict[str, list]:
    lat: dict[str, list[float]] = {m: [] for m in clients}
    order = list(clients)
    for i, text in enumerate(texts):
        k = i % len(order)
        for mode in order[k:] + order[:k]:  # rotate who goes first
            t = time.perf_counter()
            r = clients[mode].post("/v1/analyze", json={"text": text}, headers=headers[mode])
            lat[mode].append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=3000, help="requests per server per round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    texts, source = load_texts(args.data, args.n)
    headers = {"off": {}, "off2": {}, "on": {"Authorization": f"Bearer {KEY}"}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        servers = {mode: start(mode, tmp) for mode in ("off", "off2", "on")}
        try:
            for mode, (_, base) in servers.items():
                wait_ready(base, headers[mode])
            clients = {mode: httpx.Client(base_url=base, timeout=30) for mode, (_, base) in servers.items()}
            run_round(clients, headers, texts[:300])  # warm-up: connections, caches, allocator
            print(f"texts: {source}; {args.rounds} rounds x {len(texts)} requests per server, interleaved")
            print(f"start: {load_average()}")
            diffs50, diffs99, aa50, aa99, floor = [], [], [], [], {}
            for r in range(args.rounds):
                lat = run_round(clients, headers, texts)
                p = {m: (statistics.median(v), pct(v, 99)) for m, v in lat.items()}
                diffs50.append(p["on"][0] - p["off"][0])
                diffs99.append(p["on"][1] - p["off"][1])
                aa50.append(p["off2"][0] - p["off"][0])
                aa99.append(p["off2"][1] - p["off"][1])
                print(
                    f"round {r + 1}: p50 / p99 off {p['off'][0]:.3f} / {p['off'][1]:.3f} ms, "
                    f"off2 {p['off2'][0]:.3f} / {p['off2'][1]:.3f} ms, on {p['on'][0]:.3f} / {p['on'][1]:.3f} ms; "
                    f"on - off {diffs50[-1]:+.3f} / {diffs99[-1]:+.3f} ms; off2 - off {aa50[-1]:+.3f} / {aa99[-1]:+.3f} ms"
                )
            for mode, c in clients.items():
                hz = []
                for _ in range(300):
                    t = time.perf_counter()
                    c.get("/healthz").raise_for_status()
                    hz.append((time.perf_counter() - t) * 1000)
                floor[mode] = statistics.median(hz)
            print(f"end: {load_average()}")
            med50, med99 = statistics.median(diffs50), statistics.median(diffs99)
            print(
                f"overhead of keys + metrics + JSON access log + rate limits on /v1/analyze: "
                f"p50 {med50:+.3f} ms, p99 {med99:+.3f} ms (median over {args.rounds} rounds; target p50 <= 0.2 ms: "
                f"{'met' if med50 <= 0.2 else 'NOT met'}); same configuration twice (off2 - off): p50 "
                f"{statistics.median(aa50):+.3f} ms, p99 {statistics.median(aa99):+.3f} ms; GET /healthz p50 "
                + ", ".join(f"{m} {v:.3f}" for m, v in floor.items())
                + " ms"
            )
            # The "on" server did the work it is charged for.
            on = clients["on"]
            assert on.post("/v1/analyze", json={"text": "好"}).status_code == 401
            scraped = on.get("/metrics").text
            counted = sum(
                float(line.rsplit(" ", 1)[1])
                for line in scraped.splitlines()
                if line.startswith('pingjia_http_requests_total{method="POST",route="/v1/analyze",status="200"')
            )
            lines = (tmp / "access.log").read_text(encoding="utf-8").splitlines()
            access = [json.loads(ln) for ln in lines if '"pingjia.access"' in ln]
            access = [a for a in access if a["route"] == "/v1/analyze" and a["status"] == 200]
            expected = 1 + 300 + args.rounds * len(texts)
            print(f"checks: 401 without a key; /metrics counted {counted:.0f} analyses; {len(access)} access lines")
            assert counted == expected, (counted, expected)
            assert len(access) == expected and all(a["key_id"] == "bench" for a in access)
            for c in clients.values():
                c.close()
        finally:
            for proc, _ in servers.values():
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)


if __name__ == "__main__":
    main()
