"""Throughput, latency, memory and start-up of the review pipeline, against plain Python jieba
(``jieba.lcut``, the segmentation-only reference) and SnowNLP.

Run: .venv/bin/python bench/bench_pipeline.py --data ../shared/data [--n 5000] [--baseline REV] [--stages]
``--stages`` instead prints where a review's time goes: each stage of ``analyze_batch`` run on
its own over the same reviews (CPU time, best of 3), beside raw ``jieba.lcut``.
Everything below is measured in this one run on the same reviews; the service keeps no
results, and the sequential requests each carry a different text. Throughput figures are also
given as ratios to ``jieba.lcut`` interleaved with them in the same run, which the machine's
load moves less than absolute rates. Latency is timed from two clients: httpx, and a raw
socket client whose own cost is microseconds (:class:`RawClient`). ``--baseline REV`` also
serves the code at ``REV`` (``make bench``: 13a99ba, the code before issue 13) from a temporary
worktree and times both servers from httpx on the same bodies, taking turns
(:func:`bench_baseline`): issue 13's latency row as a ratio, which the machine's drift moves
far less than milliseconds. ``--json`` writes the figures for ``bench/targets.py``, which
judges them against issue 13's targets (``make bench``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worktree import checkout, remove  # noqa: E402


def load_reviews(data: Path, n: int, seed: int = 7) -> list[str]:
    with open(data / "reviews_train.csv", encoding="utf-8") as f:
        texts = [row["review"] for row in csv.DictReader(f) if row["review"].strip()]
    random.Random(seed).shuffle(texts)
    return [t[:5000] for t in texts[:n]]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.0f} docs/s"


def interleaved_with_jieba(texts: list[str], run_batch, rounds: int = 3) -> tuple[float, float]:
    """Seconds of raw ``jieba.lcut`` and of ``run_batch`` (called on 500 texts at a time) over
    ``texts``, interleaved slice by slice (1,000 texts, jieba then ``run_batch``) for ``rounds``
    rounds; each slice's best time per side, summed. The machine's speed drifts by up to 2x
    within minutes (other sessions share it): interleaving keeps a drift from favouring either
    side."""
    import jieba

    jieba.setLogLevel(60)
    jieba.lcut("预热")
    slices = [texts[i : i + 1000] for i in range(0, len(texts), 1000)]
    best_jieba = [float("inf")] * len(slices)
    best_other = [float("inf")] * len(slices)
    for _ in range(rounds):
        for k, part in enumerate(slices):
            t = time.perf_counter()
            for x in part:
                jieba.lcut(x)
            best_jieba[k] = min(best_jieba[k], time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(0, len(part), 500):
                run_batch(part[i : i + 500])
            best_other[k] = min(best_other[k], time.perf_counter() - t)
    return sum(best_jieba), sum(best_other)


def bench_inprocess(texts: list[str]) -> dict:
    """Raw jieba and the pipeline's ``analyze_batch``, interleaved (:func:`interleaved_with_jieba`)."""
    from app.core.config import get_settings
    from app.pipeline.engine import TextItem, build_pipeline

    s = get_settings()
    pipeline = build_pipeline(s.lexicon_dir, s.models_dir)
    pipeline.analyze("预热一下")
    jieba_s, pipe_s = interleaved_with_jieba(texts, lambda part: pipeline.analyze_batch([TextItem(x) for x in part]))

    from snownlp import SnowNLP

    sample = texts[:1000]  # SnowNLP is slow; a fifth of the set gives a stable rate
    t = time.perf_counter()
    for x in sample:
        _ = SnowNLP(x).sentiments  # the property computes the score
    snow_s = time.perf_counter() - t
    return {
        "jieba_lcut_docs_s": len(texts) / jieba_s,
        "pipeline_docs_s": len(texts) / pipe_s,
        "pipeline_vs_jieba": jieba_s / pipe_s,
        "snownlp_docs_s": len(sample) / snow_s,
        "chars_per_doc": sum(map(len, texts)) / len(texts),
    }


def load_average() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVER_LOG = ROOT / ".bench" / "server.log"


def start_server(port: int) -> tuple[subprocess.Popen, float]:
    """The server as ``make run`` starts it (``pingjia serve``: its protocol, a JSON access line
    per request, written to ``SERVER_LOG`` as a log collector would take it) and the seconds
    from launching it to its first ``/readyz`` 200."""
    cmd = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return launch(cmd, ROOT, SERVER_LOG, port)


def launch(cmd: list[str], tree: Path, log_path: Path, port: int) -> tuple[subprocess.Popen, float]:
    """``cmd`` run in ``tree`` (its own code first on the path), stderr to ``log_path``; the
    seconds to its first ``/readyz`` 200."""
    log_path.parent.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.Popen(cmd, cwd=tree, env=env, start_new_session=True, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not become ready in 60 s; its log: {log_path}")


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_http(texts: list[str], baseline: str | None = None) -> dict:
    port = free_port()
    proc, startup = start_server(port)
    base = f"http://127.0.0.1:{port}"
    out: dict = {"startup_to_readyz_s": startup}
    try:
        with httpx.Client(base_url=base, timeout=60) as c:

            def post_batch(part: list[str]) -> None:
                items = [{"id": str(j), "text": x} for j, x in enumerate(part)]
                c.post("/v1/analyze/batch", json={"items": items}).raise_for_status()

            jieba_s, http_s = interleaved_with_jieba(texts, post_batch)
            out["batch_http_docs_s"] = len(texts) / http_s
            out["jieba_beside_http_docs_s"] = len(texts) / jieba_s

            floor = []
            for _ in range(500):  # the HTTP round trip alone, for scale
                t = time.perf_counter()
                c.get("/healthz").raise_for_status()
                floor.append((time.perf_counter() - t) * 1000)
            out["healthz_p50_ms"] = statistics.median(floor)

            lat = []
            for x in texts[:2000]:
                t = time.perf_counter()
                r = c.post("/v1/analyze", json={"text": x})
                lat.append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
            out["seq_p50_ms"], out["seq_p99_ms"] = p50_p99(lat)

            refused = []
            for x in texts[:500]:  # the same bodies, refused before any analysis: the floor
                t = time.perf_counter()
                r = c.post("/v1/analyze", json=refused_body(x))
                refused.append((time.perf_counter() - t) * 1000)
                if r.status_code != 422:
                    raise SystemExit(f"/v1/analyze with top_terms 99: HTTP {r.status_code}, expected 422")
            out["refused_p50_ms"] = statistics.median(refused)
        out.update(bench_lean_client(port, texts[:2000]))

        def worker(chunk):
            with httpx.Client(base_url=base, timeout=60) as c:
                for x in chunk:
                    c.post("/v1/analyze", json={"text": x}).raise_for_status()

        conc = texts[:2000]
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(worker, [conc[i::8] for i in range(8)]))
        out["c8_req_s"] = len(conc) / (time.perf_counter() - t)
        out["server_peak_rss_mb"] = peak_rss_mb(proc.pid)
        if baseline:
            out.update(bench_baseline(baseline, base, texts[:2000]))
    finally:
        stop(proc)
    out.update(server_side_p50(SERVER_LOG, 2000))
    return out


BASELINE_LOG = ROOT / ".bench" / "baseline_server.log"
BLOCK = 250  # requests to one server before the other takes its turn


def alternating_latency(
    clients: dict[str, httpx.Client], texts: list[str], block: int = BLOCK
) -> dict[str, list[float]]:
    """Milliseconds of each sequential ``POST /v1/analyze`` of ``texts`` to each server, the
    servers taking turns every ``block`` texts, so the machine's drift hits them alike."""
    ms: dict[str, list[float]] = {name: [] for name in clients}
    for i in range(0, len(texts), block):
        for name, client in clients.items():
            for x in texts[i : i + block]:
                t = time.perf_counter()
                r = client.post("/v1/analyze", json={"text": x})
                ms[name].append((time.perf_counter() - t) * 1000)
                r.raise_for_status()
    return ms


def bench_baseline(rev: str, base: str, texts: list[str]) -> dict:
    """The sequential httpx latency of this server against the code at ``rev`` (its models
    and lexicons too), served as that code's own bench served it (``uvicorn app.main:app``),
    the same bodies in alternating blocks: issue 13's latency row as a ratio. ``{}`` when
    ``rev`` cannot be checked out (a shallow clone)."""
    with tempfile.TemporaryDirectory(prefix="pingjia-baseline-") as tmp:
        try:
            tree = checkout(rev, Path(tmp) / "tree")
        except subprocess.CalledProcessError as exc:
            print(f"baseline {rev}: not measured, no checkout ({exc.stderr.strip()})")
            return {}
        try:
            port = free_port()
            cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"]
            try:
                proc, _ = launch(cmd, tree, BASELINE_LOG, port)
            except SystemExit as exc:  # this tree's figures stand without the baseline's
                print(f"baseline {rev}: not measured ({exc})")
                return {}
            try:
                with (
                    httpx.Client(base_url=base, timeout=60) as now,
                    httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as before,
                ):
                    alternating_latency({"now": now, "before": before}, texts[:200])  # warm-up
                    ms = alternating_latency({"now": now, "before": before}, texts)
            finally:
                stop(proc)
        finally:
            remove(tree)
    (now_p50, now_p99), (before_p50, before_p99) = p50_p99(ms["now"]), p50_p99(ms["before"])
    return {
        "baseline_rev": rev,
        "ab_seq_p50_ms": now_p50,
        "ab_seq_p99_ms": now_p99,
        "baseline_seq_p50_ms": before_p50,
        "baseline_seq_p99_ms": before_p99,
    }


def server_side_p50(log: Path, n: int) -> dict:
    """The sequential ``/v1/analyze`` requests as the server timed them (its access lines'
    ``duration_ms``: from the app's first middleware to the last byte handed to uvicorn): the
    first ``n`` answered 200 came from httpx, the next ``n`` from the raw client."""
    ms = []
    for line in log.read_text(encoding="utf-8").splitlines():
        if '"pingjia.access"' in line and '"/v1/analyze"' in line:
            entry = json.loads(line)
            if entry.get("route") == "/v1/analyze" and entry.get("status") == 200:
                ms.append(entry["duration_ms"])
    if len(ms) < 2 * n:
        return {}  # not measured: the log lacks the lines
    return {"server_seq_p50_ms": statistics.median(ms[:n]), "server_lean_seq_p50_ms": statistics.median(ms[n : 2 * n])}


def refused_body(text: str) -> dict:
    """A request /v1/analyze refuses (422: ``top_terms`` is at most 50) after reading and
    validating the whole body, before any analysis: what the framework and the client cost."""
    return {"text": text, "top_terms": 99}


def p50_p99(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[int(len(ms) * 0.99) - 1]


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: a request is one ``sendall``, its response is read
    by Content-Length (the service always sends one). Its own cost is microseconds, so what
    it times is the server and the loopback: what curl, wrk or a Go or Java client sees. Python
    clients add their own: httpx ~0.5-1 ms a request on this machine, ``http.client`` ~0.25 ms
    (its header parser)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + body)
        status = int(self.file.readline().split()[1])
        length = None
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise SystemExit(f"{path}: a response without Content-Length")
        return status, self.file.read(length)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def bench_lean_client(port: int, texts: list[str]) -> dict:
    """The same sequential requests from :class:`RawClient`; every answer is checked (after
    its timing) to be a 200 with an analysis in it."""
    client = RawClient(port)

    def timed(method: str, path: str, body: bytes = b"", expect: int = 200) -> tuple[float, bytes]:
        t = time.perf_counter()
        status, data = client.request(method, path, body)
        ms = (time.perf_counter() - t) * 1000
        if status != expect:
            raise SystemExit(f"{path}: HTTP {status}, expected {expect}")
        return ms, data

    try:
        floor = [timed("GET", "/healthz")[0] for _ in range(500)]
        refused = [timed("POST", "/v1/analyze", json.dumps(refused_body(x)).encode(), 422)[0] for x in texts[:500]]
        lat = []
        for x in texts:
            ms, data = timed("POST", "/v1/analyze", json.dumps({"text": x}).encode())
            if "sentiment" not in json.loads(data):
                raise SystemExit(f"/v1/analyze answered without an analysis: {data[:200]!r}")
            lat.append(ms)
    finally:
        client.close()
    p50, p99 = p50_p99(lat)
    return {
        "lean_healthz_p50_ms": statistics.median(floor),
        "lean_refused_p50_ms": statistics.median(refused),
        "lean_seq_p50_ms": p50,
        "lean_seq_p99_ms": p99,
    }


def bench_stages(texts: list[str]) -> None:
    """Each stage of ``Pipeline.analyze_batch`` on its own, in order, over the same texts (500 per
    batch where the stage takes batches); CPU seconds, best of 3 rounds."""
    import jieba

    from app.core.config import get_settings
    from app.pipeline import aspect_model as AM
    from app.pipeline.engine import TextItem, build_pipeline
    from app.pipeline.findings import Doc
    from app.pipeline.normalize import normalize
    from app.pipeline.segment import clauses

    s = get_settings()
    p = build_pipeline(s.lexicon_dir, s.models_dir)
    p.analyze("预热一下")
    jieba.setLogLevel(60)
    jieba.lcut("预热")
    best: dict[str, float] = {}

    def timed(name, fn):
        t = time.process_time()
        out = fn()
        best[name] = min(best.get(name, float("inf")), time.process_time() - t)
        return out

    def batches(xs):
        return [xs[i : i + 500] for i in range(0, len(xs), 500)]

    def pass_over(texts: list[str]) -> None:
        timed("raw jieba.lcut (the reference)", lambda: [jieba.lcut(x) for x in texts])
        timed("analyze_batch, all stages", lambda: [p.analyze_batch([TextItem(x) for x in b]) for b in batches(texts)])
        norms = timed("normalise", lambda: [normalize(x) for x in texts])
        tokens = timed("segment (rjieba)", lambda: [p.segmenter.tokenize(n.text) for n in norms])
        docs = [Doc(id=None, norm=n, tokens=t) for n, t in zip(norms, tokens)]
        timed("clauses", lambda: [setattr(d, "clauses", clauses(d.text, d.tokens, p.lexicon.contrast)) for d in docs])
        timed("keywords", lambda: [setattr(d, "hits", p.matcher.find(d)) for d in docs])
        timed("feature pass (words, ids)", lambda: [d.features.encoded(p.space) for d in docs])
        timed("sentiment", lambda: [p.sentiment.predict(b) for b in batches(docs)])
        timed(
            "aspects, whole texts",
            lambda: [p.aspects.linear_parts(AM.doc_parts(b, p.space, p.aspects._target_cols)) for b in batches(docs)],
        )
        timed("aspects, all (evidence incl.)", lambda: [p.aspects.score(b) for b in batches(docs)])

    for _ in range(3):
        pass_over(texts)
    ref = best["raw jieba.lcut (the reference)"]
    print(f"{len(texts)} reviews; CPU time per review, best of 3; {load_average()}")
    for name, sec in best.items():
        print(f"  {name:32s} {sec / len(texts) * 1e6:7.1f} us   {sec / ref:5.2f}x jieba")
    print("  (aspects, all: whole texts, then per-clause evidence for texts whose decided pair has no lexicon hit)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--stages", action="store_true", help="where a review's time goes, stage by stage")
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also time /v1/analyze against the code at this git revision, alternating (make bench: "
        "13a99ba, the code before issue 13)",
    )
    args = ap.parse_args()
    if not (args.data / "reviews_train.csv").is_file():
        raise SystemExit(f"{args.data}/reviews_train.csv not found: pass --data")
    texts = load_reviews(args.data, args.n)
    if args.stages:
        bench_stages(texts)
        return
    res = bench_inprocess(texts)
    res.update(bench_http(texts, args.baseline))
    jieba_rate = res["jieba_lcut_docs_s"]
    res["batch_http_vs_jieba"] = res["batch_http_docs_s"] / res["jieba_beside_http_docs_s"]
    print(
        f"{len(texts)} reviews, {res['chars_per_doc']:.0f} chars on average, one core in-process, raw jieba and"
        f" the pipeline interleaved in 1,000-text slices, best of 3 per slice; {load_average()}"
    )
    print(f"  raw Python jieba.lcut    {rate(1, 1 / jieba_rate)}")
    print(
        f"  Pingjia pipeline         {rate(1, 1 / res['pipeline_docs_s'])}"
        f"   ({res['pipeline_vs_jieba']:.2f}x raw jieba)"
    )
    print(f"  SnowNLP sentiment only   {rate(1, 1 / res['snownlp_docs_s'])}")
    print(f"HTTP, pingjia serve (one worker) on loopback, its log in {SERVER_LOG.relative_to(ROOT)}")
    print(
        f"  /v1/analyze/batch (500)  {rate(1, 1 / res['batch_http_docs_s'])}"
        f"   ({res['batch_http_vs_jieba']:.2f}x raw jieba interleaved with it, 1,000-text slices, best of 3:"
        f" {res['jieba_beside_http_docs_s']:.0f} docs/s)"
    )
    print(
        f"  /v1/analyze sequential   p50 {res['seq_p50_ms']:.2f} ms, p99 {res['seq_p99_ms']:.2f} ms"
        f"  (GET /healthz p50 {res['healthz_p50_ms']:.2f} ms)"
    )
    print(
        f"  the same, raw client     p50 {res['lean_seq_p50_ms']:.2f} ms, p99 {res['lean_seq_p99_ms']:.2f} ms"
        f"  (one sendall a request: what curl or a Go client sees; GET /healthz p50 {res['lean_healthz_p50_ms']:.2f} ms;"
        f" httpx's own share: {res['seq_p50_ms'] - res['lean_seq_p50_ms']:.2f} ms)"
    )
    print(
        f"  the same bodies refused  p50 {res['refused_p50_ms']:.2f} ms httpx, {res['lean_refused_p50_ms']:.2f} ms raw"
        "  (422 before any analysis: the floor of the framework and the client)"
    )
    if "server_seq_p50_ms" in res:
        print(
            f"  timed inside the server  p50 {res['server_seq_p50_ms']:.2f} ms behind httpx,"
            f" {res['server_lean_seq_p50_ms']:.2f} ms behind the raw client  (its access log's duration_ms)"
        )
    if "baseline_seq_p50_ms" in res:
        p50, p99 = res["ab_seq_p50_ms"] / res["baseline_seq_p50_ms"], res["ab_seq_p99_ms"] / res["baseline_seq_p99_ms"]
        print(
            f"  vs {res['baseline_rev']} (before issue 13) p50 {res['ab_seq_p50_ms']:.2f} against"
            f" {res['baseline_seq_p50_ms']:.2f} ms ({p50:.2f}x), p99 {res['ab_seq_p99_ms']:.2f} against"
            f" {res['baseline_seq_p99_ms']:.2f} ms ({p99:.2f}x)  (httpx, the same bodies, the servers taking"
            f" turns every {BLOCK}; that code served as its bench served it: uvicorn app.main:app)"
        )
    print(f"  /v1/analyze concurrency 8  {res['c8_req_s']:.0f} req/s")
    print(f"  server peak RSS          {res['server_peak_rss_mb']:.0f} MB")
    print(f"  start-up to /readyz      {res['startup_to_readyz_s']:.2f} s")
    print(f"  {load_average()} after the run")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
