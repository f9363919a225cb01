"""Hostile-conditions bench: the real service as a user, a fuzzer and a noisy neighbour see it.

Run (real models; about 6 minutes; ``--quick`` about 2 minutes):
    .venv/bin/python bench/bench_hostile.py
    .venv/bin/python bench/bench_hostile.py --quick
    .venv/bin/python bench/bench_hostile.py --only load,healthz --seconds 120

Every part starts its own ``uvicorn app.main:app`` on a free loopback port with a fresh
temporary PINGJIA_DATA_DIR (so no part inherits another's jobs or memory), waits for
/readyz, measures, and stops it (SIGTERM, then SIGKILL of its process group). RSS is the
sum of VmRSS over the uvicorn process and all its descendants (job workers), read from
/proc; PSS (shared pages counted once) is shown beside it.

Parts (``--only a,b``):
  schemathesis  ``st run`` (schemathesis 4.x CLI) against /openapi.json: examples, coverage
                and fuzzing phases, >= --cases generated cases (default 2000), checks
                not_a_server_error, status_code_conformance, response_schema_conformance,
                content_type_conformance; every failing (operation, check, status) is listed.
  load          --concurrency (16) clients for --seconds (60) of mixed requests (/v1/analyze
                short and 5,000-char, /v1/analyze/batch of 10, /v1/conversations/analyze,
                /healthz) after a warm-up; requests, errors by status, p50/p99 per endpoint
                (peer: the same request alone on an idle service), RSS every 10 s.
  healthz       /healthz polled every 50 ms, idle (peer) and while 8 clients post 5,000-char
                texts to /v1/analyze for --probe-seconds (20).
  jobs          one client's /v1/analyze p99 (short texts) for --probe-seconds idle (peer) and
                while a --job-rows (50,000) row CSV job runs; the ratio and the job's rows/s.
  batchmem      RSS before and 2 s after one maximal /v1/analyze/batch: max_batch_items texts
                filling the per-batch character cap (PINGJIA_MAX_BATCH_CHARS, read from the
                settings or --batch-chars; a 413 batch_too_large/body_too_large shrinks it).

The final table lists each figure against its target; the exit status is 1 when any check
fails (2 when the service cannot be started). The machine's other load is not controlled:
run it on a quiet machine for figures to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from bench_jobs import free_port, tree  # the same loopback port and /proc process-tree helpers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARTS = ["schemathesis", "load", "healthz", "jobs", "batchmem"]
CHECKS = ["not_a_server_error", "status_code_conformance", "response_schema_conformance", "content_type_conformance"]
MB = 1024 * 1024

# --- data ---------------------------------------------------------------------------------
PRODUCTS = [
    "手机",
    "蓝牙耳机",
    "羽绒服",
    "面膜",
    "电饭煲",
    "奶粉",
    "运动鞋",
    "台灯",
    "洗发水",
    "充电宝",
    "行李箱",
    "咖啡豆",
]
PHRASES = {
    "logistics": (
        ["物流很快，第二天就到了", "快递小哥很负责，送货上门", "发货速度快，包装完好"],
        ["快递太慢了，等了{n}天才到", "物流信息{n}天没更新", "发货拖了一个星期，催了{n}次"],
    ),
    "quality": (
        ["质量很好，做工精细", "用了{n}天没有任何问题", "材质不错，手感很好"],
        ["质量太差了，用了{n}天就坏了", "做工粗糙，线头很多", "有异味，洗了{n}次还有"],
    ),
    "service": (
        ["客服态度很好，耐心解答", "售后处理很及时", "客服回复很快，问题都解决了"],
        ["客服态度很差，问了{n}次都没人回复", "售后推来推去，不给解决", "客服说话很不耐烦"],
    ),
    "price": (
        ["价格实惠，性价比高", "活动价很划算", "比实体店便宜不少"],
        ["价格偏贵，不值这个钱", "刚买就降价{n}十块，不给保价", "优惠券用不了"],
    ),
    "match": (
        ["和描述的一样，颜色很正", "尺码标准，穿着合身", "实物比图片还好看"],
        ["与描述不符，颜色差太多", "尺码偏小，要换大{n}码", "图片仅供参考，实物差很多"],
    ),
}
CLOSINGS = (
    ["下次还会回购", "推荐给朋友了", "五星好评", "很满意", ""],
    ["不会再买了", "要求退货退款", "差评", "很失望", ""],
)


def review(rnd: random.Random, negative: bool | None = None) -> str:
    neg = rnd.random() < 0.4 if negative is None else negative
    aspects = rnd.sample(list(PHRASES), rnd.randint(1, 3))
    parts = [
        rnd.choice(PHRASES[a][1 if neg and (i == 0 or rnd.random() < 0.7) else 0]).format(n=rnd.randint(2, 9))
        for i, a in enumerate(aspects)
    ]
    closing = rnd.choice(CLOSINGS[1 if neg else 0])
    return f"买的{rnd.choice(PRODUCTS)}，" + "，".join(parts) + (f"，{closing}" if closing else "") + "。"


def long_text(rnd: random.Random, chars: int) -> str:
    out: list[str] = []
    n = 0
    while n < chars:
        out.append(review(rnd))
        n += len(out[-1])
    return "".join(out)[:chars]


def conversation(rnd: random.Random, cid: int) -> dict:
    turns, t = [], 1_795_000_000 + rnd.randint(0, 86_400 * 20)
    lines = [
        ("customer", "在吗？我的订单{n}天了还没发货"),
        ("agent", "您好，请稍等，我帮您查一下"),
        ("customer", "快点，都等了好久了，客服态度也太差了"),
        ("agent", "非常抱歉给您带来不便，已经为您催促仓库"),
        ("customer", "那什么时候能到？"),
        ("agent", "预计明天发出，后天送达，请您留意物流信息"),
    ]
    for role, text in lines[: rnd.choice([2, 4, 6])]:
        t += rnd.randint(5, 120)
        turns.append(
            {
                "role": role,
                "text": text.format(n=rnd.randint(2, 9)),
                "time": t,
                **({"agent_id": f"a{rnd.randint(1, 9)}"} if role == "agent" else {}),
            }
        )
    return {"id": f"c{cid}", "turns": turns}


def reviews_csv(n: int, seed: int = 7) -> bytes:
    """N realistic reviews with channel and date columns (2026-10-01 .. 2026-10-30)."""
    rnd = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["review_id", "content", "channel", "date"])
    for i in range(n):
        w.writerow(
            [
                f"r{i}",
                review(rnd),
                rnd.choice(["app", "web", "mini", "store"]),
                f"2026-10-{1 + i % 30:02d} {rnd.randint(8, 22):02d}:{rnd.randint(0, 59):02d}:00",
            ]
        )
    return buf.getvalue().encode()


# --- the service and its memory ---------------------------------------------------------------
def memory_mb(pid: int) -> tuple[float, float, int]:
    """(sum of VmRSS, sum of Pss, processes) over the process and its descendants, in MB."""
    rss = pss = 0
    procs = 0
    for p in tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
            rss += int(status.split("VmRSS:")[1].split()[0])
            pss += int(Path(f"/proc/{p}/smaps_rollup").read_text().split("\nPss:")[1].split()[0])
            procs += 1
        except (OSError, IndexError, ValueError):
            pass
    return rss / 1024, pss / 1024, procs


class Service:
    """``uvicorn app.main:app`` in its own process group on a free loopback port."""

    def __init__(self, work: Path, name: str, env: dict[str, str]):
        self.data_dir = work / f"data-{name}"
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / f"service-{name}.log"
        full_env = {**os.environ, "PINGJIA_DATA_DIR": str(self.data_dir), "PYTHONPATH": str(ROOT), **env}
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 180.0) -> float:
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    if http.get("/readyz").status_code == 200:
                        return time.monotonic() - self.started
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"service not ready after {timeout:.0f} s:\n{self.tail()}")

    def memory(self) -> tuple[float, float, int]:
        return memory_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def tail(self, n: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]


# --- figures ------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; NaN when there are none.
    bench_security and bench_versions use it too."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f} ms"


@dataclass
class Figure:
    part: str
    name: str
    value: str
    target: str = ""
    peer: str = ""
    ok: bool | None = None  # None: reported, not checked


@dataclass
class Result:
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, *args, **kw) -> None:
        self.figures.append(Figure(*args, **kw))


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


@dataclass
class Call:
    label: str
    status: int | str  # HTTP status, or the transport error's class name
    seconds: float


class Calls:
    """Latencies and outcomes per endpoint label (thread-safe append)."""

    def __init__(self):
        self.items: list[Call] = []
        self.lock = threading.Lock()

    def add(self, label: str, status, seconds: float) -> None:
        with self.lock:
            self.items.append(Call(label, status, seconds))

    def labels(self) -> list[str]:
        return sorted({c.label for c in self.items})

    def of(self, label: str | None = None) -> list[Call]:
        return [c for c in self.items if label is None or c.label == label]

    @staticmethod
    def ok(c: Call) -> bool:
        return isinstance(c.status, int) and 200 <= c.status < 300

    def errors(self, label: str | None = None) -> Counter:
        return Counter(str(c.status) for c in self.of(label) if not self.ok(c))

    def latencies(self, label: str | None = None, only_ok: bool = True) -> list[float]:
        return [c.seconds for c in self.of(label) if self.ok(c) or not only_ok]


async def timed(
    client: httpx.AsyncClient, calls: Calls, label: str, method: str, path: str, **kw
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        r = await client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        calls.add(label, type(exc).__name__, time.perf_counter() - t0)
        return None
    calls.add(label, r.status_code, time.perf_counter() - t0)
    return r


def timed_sync(client: httpx.Client, calls: Calls, label: str, method: str, path: str, **kw) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        r = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        calls.add(label, type(exc).__name__, time.perf_counter() - t0)
        return None
    calls.add(label, r.status_code, time.perf_counter() - t0)
    return r


def latency_table(calls: Calls, peer: dict[str, list[float]] | None = None) -> list[str]:
    rows = [
        f"  {'endpoint':<22} {'requests':>8} {'errors':>7} {'p50':>10} {'p99':>10} {'max':>10}"
        + (f" {'idle p50':>10} {'x idle':>7}" if peer is not None else "")
    ]
    for label in calls.labels():
        lat = calls.latencies(label)
        errs = sum(calls.errors(label).values())
        line = (
            f"  {label:<22} {len(calls.of(label)):>8} {errs:>7} {ms(pct(lat, 50)):>10} {ms(pct(lat, 99)):>10} "
            f"{ms(max(lat) if lat else float('nan')):>10}"
        )
        if peer is not None:
            base = pct(peer.get(label, []), 50)
            line += f" {ms(base):>10} {pct(lat, 50) / base if base == base and base > 0 else float('nan'):>6.1f}x"
        rows.append(line)
    return rows


# --- request mix ----------------------------------------------------------------------------------
class Mix:
    """The load part's requests: (label, weight, method, path, body factory)."""

    def __init__(self, long_chars: int, seed: int):
        rnd = random.Random(seed)
        self.longs = [long_text(rnd, long_chars) for _ in range(8)]
        self.entries = [
            ("analyze short", 35, "POST", "/v1/analyze", lambda r: {"text": review(r), "id": f"s{r.randint(0, 9999)}"}),
            (
                "analyze 5000 chars",
                10,
                "POST",
                "/v1/analyze",
                lambda r: {"text": r.choice(self.longs)[:-1] + r.choice("。！？"), "id": "long"},
            ),
            (
                "analyze/batch x10",
                20,
                "POST",
                "/v1/analyze/batch",
                lambda r: {"items": [{"id": f"b{i}", "text": review(r)} for i in range(10)]},
            ),
            (
                "conversations/analyze",
                20,
                "POST",
                "/v1/conversations/analyze",
                lambda r: conversation(r, r.randint(0, 9999)),
            ),
            ("healthz", 15, "GET", "/healthz", None),
        ]
        self.weights = [e[1] for e in self.entries]

    def pick(self, rnd: random.Random):
        return rnd.choices(self.entries, self.weights)[0]

    async def send(self, client: httpx.AsyncClient, calls: Calls, entry, rnd: random.Random):
        label, _, method, path, body = entry
        kw = {"json": body(rnd)} if body else {}
        return await timed(client, calls, label, method, path, **kw)


# --- part 1: schemathesis --------------------------------------------------------------------------
def parse_ndjson(path: Path):
    """Per-check case counts, failures and tool errors from schemathesis' NDJSON events."""
    per_check: dict[str, Counter] = defaultdict(Counter)
    failures: dict[tuple, dict] = {}
    tool_errors: list[str] = []
    cases: set[str] = set()
    statuses: Counter = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind, body = next(iter(ev.items()))
        if kind == "NonFatalError":
            info = body.get("value") if isinstance(body.get("value"), dict) else {}
            label = body.get("label") or "?"
            title = info.get("type") or info.get("title") or "error"
            message = str(info.get("message") or body.get("message") or "")
            tool_errors.append(f"{label}: {title}: {message.strip().splitlines()[0][:200] if message.strip() else ''}")
            continue
        if kind != "ScenarioFinished":
            continue
        rec = body.get("recorder") or {}
        op = rec.get("label", "?")
        interactions = rec.get("interactions") or {}
        for cid, checks in (rec.get("checks") or {}).items():
            cases.add(cid)
            inter = interactions.get(cid) or {}
            resp = inter.get("response") or {}
            status = resp.get("status_code", "no response")
            statuses[(op, status)] += 1
            for c in checks:
                per_check[c["name"]][c["status"]] += 1
                if c["status"] == "success":
                    continue
                f = (c.get("failure_info") or {}).get("failure") or {}
                msg = " / ".join(x.strip() for x in str(f.get("message", "")).splitlines() if x.strip())
                msg = re.sub(r"[0-9a-f]{32}", "<id>", msg)[:300]
                key = (op, c["name"], status, f.get("title", ""), msg)
                entry = failures.setdefault(key, {"count": 0, "example": None})
                entry["count"] += 1
                req = inter.get("request") or {}
                if entry["example"] is None and req:
                    entry["example"] = f"{req.get('method', '')} {req.get('uri', '')}"
                    ctype = {k.lower(): v for k, v in (req.get("headers") or {}).items()}.get("content-type")
                    if ctype:
                        entry["example"] += f" content-type={ctype[0] if isinstance(ctype, list) else ctype}"
                    body_b64 = (req.get("body") or {}).get("$base64") if isinstance(req.get("body"), dict) else None
                    if body_b64:
                        import base64

                        raw = base64.b64decode(body_b64)
                        entry["example"] += (
                            " body=" + raw[:300].decode("utf-8", "replace") + ("..." if len(raw) > 300 else "")
                        )
    return per_check, failures, tool_errors, cases, statuses


def part_schemathesis(args, work: Path, env: dict[str, str]) -> Result:
    res = Result()
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        res.add("schemathesis", "installed", "no", "schemathesis 4.x in .venv", ok=False)
        res.details.append("install it: .venv/bin/pip install schemathesis")
        return res
    version = subprocess.run([str(st), "--version"], capture_output=True, text=True).stdout.strip()
    svc = Service(work, "schemathesis", env)
    try:
        say(f"  service ready in {svc.wait_ready():.1f} s on {svc.url}; {version}")
        spec = httpx.get(f"{svc.url}/openapi.json", timeout=30).json()
        ops = [
            (m.upper(), p)
            for p, item in spec.get("paths", {}).items()
            for m in item
            if m in ("get", "post", "put", "patch", "delete")
        ]
        total_cases, per_check, failures, tool_errors, statuses = 0, defaultdict(Counter), {}, [], Counter()
        runs, seed, t0 = 0, args.seed, time.monotonic()
        per_op = max(5, math.ceil(args.cases / max(1, len(ops))))
        while total_cases < args.cases and runs < 4:
            runs += 1
            report = work / f"schemathesis-{runs}"
            cmd = [
                str(st),
                "run",
                f"{svc.url}/openapi.json",
                "--checks",
                ",".join(CHECKS),
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                str(per_op),
                "--seed",
                str(seed),
                "--continue-on-failure",
                "--generation-database",
                "none",
                "--workers",
                str(args.st_workers),
                "--request-timeout",
                "60",
                "--no-color",
                "--report",
                "ndjson,json",
                "--report-dir",
                str(report),
                "--output-truncate",
                "true",
            ]
            say(f"  run {runs}: {' '.join(cmd[1:])}")
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=work, timeout=3600)
            (work / f"schemathesis-{runs}.txt").write_text(out.stdout + out.stderr, encoding="utf-8")
            nd = next(report.glob("ndjson-*.ndjson"), None)
            if nd is None:
                res.details.append(
                    f"schemathesis run {runs} wrote no report (exit {out.returncode}):\n"
                    + (out.stdout + out.stderr)[-3000:]
                )
                break
            pc, fl, te, cs, sts = parse_ndjson(nd)
            total_cases += len(cs)
            for k, v in pc.items():
                per_check[k].update(v)
            for k, v in fl.items():
                e = failures.setdefault(k, {"count": 0, "example": v["example"]})
                e["count"] += v["count"]
            tool_errors += te
            statuses.update(sts)
            summary = [line for line in out.stdout.splitlines() if "generated" in line and "Test cases" not in line]
            st_line = summary[-1].strip() if summary else "?"
            say(f"    {len(cs)} cases with checks (st: {st_line}); exit {out.returncode}")
            seed += 1
            per_op *= 2
        elapsed = time.monotonic() - t0
        alive = svc.proc.poll() is None
    finally:
        svc.stop()

    res.add(
        "schemathesis",
        "generated cases",
        f"{total_cases} in {runs} run(s), {elapsed:.0f} s",
        f">= {args.cases}",
        ok=total_cases >= args.cases,
    )
    res.add("schemathesis", "service still up after fuzzing", "yes" if alive else "NO", "yes", ok=alive)
    for check in CHECKS:
        c = per_check.get(check, Counter())
        failed = sum(v for k, v in c.items() if k != "success")
        ops_failing = sorted({k[0] for k in failures if k[1] == check})
        res.add(
            "schemathesis",
            check,
            f"{failed} failed / {sum(c.values())} cases" + (f" ({len(ops_failing)} operations)" if ops_failing else ""),
            "0 failed",
            ok=failed == 0,
        )
    res.details.append(f"schemathesis: {len(ops)} operations; responses seen per operation and status:")
    by_op: dict[str, list[str]] = defaultdict(list)
    for (op, status), n in sorted(statuses.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        by_op[op].append(f"{status}x{n}")
    for op in sorted(by_op):
        res.details.append(f"  {op:<40} {' '.join(by_op[op])}")
    if failures:
        res.details.append("schemathesis failures (operation | check | status | title | message | cases | example):")
        for (op, check, status, title, msg), v in sorted(failures.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            res.details.append(f"  {op} | {check} | {status} | {title} | {msg} | {v['count']}")
            if v["example"]:
                res.details.append(f"      e.g. {v['example']}")
        # the undocumented codes, per operation: what the OpenAPI must add
        missing: dict[str, set] = defaultdict(set)
        for op, check, status, _title, _msg in failures:
            if check == "status_code_conformance":
                missing[op].add(str(status))
        if missing:
            res.details.append("status codes the OpenAPI does not document (operation: codes):")
            for op in sorted(missing):
                res.details.append(f"  {op}: {', '.join(sorted(missing[op]))}")
    if tool_errors:
        res.details.append(f"schemathesis tool errors ({len(tool_errors)}; generation problems, not service failures):")
        for line in sorted(set(tool_errors))[:20]:
            res.details.append(f"  {line}")
    res.details.append(
        f"full schemathesis output: {work}/schemathesis-*.txt"
        if args.keep
        else "full schemathesis output (st's own report, curl reproductions): rerun with --keep"
    )
    return res


# --- part 2: load ---------------------------------------------------------------------------------
async def run_clients(url: str, n: int, seconds: float, step, timeout: float = 120.0) -> None:
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def worker(i: int):
            rnd = random.Random(1000 + i)
            while time.monotonic() < deadline:
                await step(client, rnd)

        await asyncio.gather(*(worker(i) for i in range(n)))


def part_load(args, work: Path, env: dict[str, str]) -> Result:
    res = Result()
    mix = Mix(args.long_chars, args.seed)
    svc = Service(work, "load", env)
    try:
        say(f"  service ready in {svc.wait_ready():.1f} s on {svc.url}")
        rss_series: list[tuple[str, float, float, int]] = [("start", *svc.memory())]
        # the peer: each request alone on the idle service
        idle = Calls()

        async def idle_pass():
            async with httpx.AsyncClient(base_url=svc.url, timeout=120) as client:
                rnd = random.Random(args.seed)
                for entry in mix.entries:
                    for _ in range(args.idle_samples):
                        await mix.send(client, idle, entry, rnd)

        asyncio.run(idle_pass())
        peer = {label: idle.latencies(label) for label in idle.labels()}
        warm = Calls()

        async def step_warm(client, rnd):
            await mix.send(client, warm, mix.pick(rnd), rnd)

        asyncio.run(run_clients(svc.url, args.concurrency, args.warmup, step_warm))
        rss_series.append(("after warm-up", *svc.memory()))
        calls = Calls()
        stop = threading.Event()
        t0 = time.monotonic()

        def sampler():
            k = 1
            while not stop.wait(max(0.0, t0 + 10 * k - time.monotonic())):
                rss_series.append((f"{10 * k} s", *svc.memory()))
                k += 1

        th = threading.Thread(target=sampler, daemon=True)
        th.start()

        async def step(client, rnd):
            await mix.send(client, calls, mix.pick(rnd), rnd)

        asyncio.run(run_clients(svc.url, args.concurrency, args.seconds, step))
        elapsed = time.monotonic() - t0
        stop.set()
        th.join()
        rss_series.append(("end", *svc.memory()))
        time.sleep(2)
        rss_series.append(("end + 2 s", *svc.memory()))
        alive = svc.proc.poll() is None
    finally:
        svc.stop()

    total = len(calls.items)
    errors = calls.errors()
    n_err = sum(errors.values())
    res.details.append(
        f"load: {args.concurrency} clients, {elapsed:.1f} s, {total} requests "
        f"({total / elapsed:.1f}/s), "
        f"{n_err} errors; warm-up {args.warmup:.0f} s ({len(warm.items)} requests, "
        f"{sum(warm.errors().values())} errors)"
    )
    res.details += latency_table(calls, peer)
    if errors:
        res.details.append("  errors by status: " + ", ".join(f"{k}: {v}" for k, v in errors.most_common()))
        for label in calls.labels():
            e = calls.errors(label)
            if e:
                res.details.append(f"    {label}: " + ", ".join(f"{k}: {v}" for k, v in e.most_common()))
    res.details.append("  memory (RSS sum / PSS sum / processes):")
    for name, rss, pss, procs in rss_series:
        res.details.append(f"    {name:<14} {rss:8.1f} MB {pss:8.1f} MB  {procs}")
    warm_rss, warm_pss = next((r, p) for n, r, p, _ in rss_series if n == "after warm-up")
    end_rss, end_pss = next((r, p) for n, r, p, _ in rss_series if n == "end")
    allowance = max(0.10 * warm_rss, 100.0)
    res.add("load", "requests", f"{total} in {elapsed:.0f} s ({total / elapsed:.1f}/s)")
    res.add(
        "load",
        "errors (non-2xx + transport)",
        f"{n_err} ({', '.join(f'{k}: {v}' for k, v in errors.most_common(4)) or 'none'})",
        "0",
        ok=n_err == 0,
    )
    for label in calls.labels():
        lat = calls.latencies(label)
        base = pct(peer.get(label, []), 50)
        res.add("load", f"{label} p50 / p99", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))}", "", f"idle p50 {ms(base)}")
    res.add(
        "load",
        "RSS after warm-up -> end",
        f"{warm_rss:.0f} -> {end_rss:.0f} MB ({end_rss - warm_rss:+.0f} MB)",
        f"<= +{allowance:.0f} MB (10% or 100 MB)",
        f"PSS {warm_pss:.0f} -> {end_pss:.0f} MB",
        ok=end_rss - warm_rss <= allowance,
    )
    res.add("load", "service still up", "yes" if alive else "NO", "yes", ok=alive)
    return res


# --- part 3: healthz under long texts ------------------------------------------------------------
class Poller(threading.Thread):
    """GET /healthz every ``interval`` seconds on its own connection until stopped."""

    def __init__(self, url: str, calls: Calls, interval: float = 0.05):
        super().__init__(daemon=True)
        self.url, self.calls, self.interval, self.halt = url, calls, interval, threading.Event()

    def run(self):
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.halt.is_set():
                t = time.monotonic()
                timed_sync(http, self.calls, "healthz", "GET", "/healthz")
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - t)))


def part_healthz(args, work: Path, env: dict[str, str]) -> Result:
    res = Result()
    rnd0 = random.Random(args.seed)
    longs = [long_text(rnd0, args.long_chars) for _ in range(16)]
    svc = Service(work, "healthz", env)
    try:
        say(f"  service ready in {svc.wait_ready():.1f} s on {svc.url}")
        with httpx.Client(base_url=svc.url, timeout=60) as http:  # warm the analysis path
            for t in longs[:4]:
                http.post("/v1/analyze", json={"text": t})
        idle = Calls()
        p = Poller(svc.url, idle)
        p.start()
        time.sleep(args.idle_seconds)
        p.halt.set()
        p.join()
        busy, load = Calls(), Calls()
        p = Poller(svc.url, busy)
        p.start()

        async def step(client, rnd):
            text = rnd.choice(longs)
            await timed(
                client,
                load,
                "analyze 5000 chars",
                "POST",
                "/v1/analyze",
                json={"text": text[:-1] + rnd.choice("。！？"), "id": "long"},
            )

        t0 = time.monotonic()
        asyncio.run(run_clients(svc.url, 8, args.probe_seconds, step))
        elapsed = time.monotonic() - t0
        p.halt.set()
        p.join()
        alive = svc.proc.poll() is None
    finally:
        svc.stop()
    il, bl = idle.latencies(), busy.latencies()
    res.details.append(
        f"healthz: idle {len(idle.items)} polls; under 8 clients x {args.long_chars}-char texts for "
        f"{elapsed:.1f} s: {len(busy.items)} polls, {len(load.items)} analyses "
        f"({len(load.items) / elapsed:.1f}/s)"
    )
    res.details += latency_table(busy, {"healthz": il})
    res.details += latency_table(load)[1:]
    be, le = busy.errors(), load.errors()
    if be or le:
        res.details.append(f"  errors: healthz {dict(be)}, analyze {dict(le)}")
    res.add(
        "healthz",
        "healthz p50 under long texts",
        ms(pct(bl, 50)),
        "< 100 ms",
        f"idle {ms(pct(il, 50))}",
        ok=pct(bl, 50) < 0.100,
    )
    res.add("healthz", "healthz p99 under long texts", ms(pct(bl, 99)), "", f"idle {ms(pct(il, 99))}")
    res.add("healthz", "healthz max under long texts", ms(max(bl) if bl else float("nan")))
    res.add(
        "healthz",
        "healthz errors under load",
        f"{sum(be.values())} of {len(busy.items)}",
        "0",
        ok=not be and bool(busy.items),
    )
    la = load.latencies()
    res.add(
        "healthz",
        "analyze 5000 chars x8: rate, p50 / p99",
        f"{len(la) / elapsed:.1f}/s, {ms(pct(la, 50))} / {ms(pct(la, 99))}, errors {sum(le.values())}",
    )
    res.add("healthz", "service still up", "yes" if alive else "NO", "yes", ok=alive)
    return res


# --- part 4: job interference -----------------------------------------------------------------------
def probe_analyze(url: str, seconds: float, seed: int, calls: Calls, label: str) -> None:
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, timeout=60) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            timed_sync(http, calls, label, "POST", "/v1/analyze", json={"text": review(rnd), "id": "p"})


def part_jobs(args, work: Path, env: dict[str, str]) -> Result:
    res = Result()
    data = reviews_csv(args.job_rows, args.seed)
    svc = Service(work, "jobs", env)
    try:
        say(
            f"  service ready in {svc.wait_ready():.1f} s on {svc.url}; job file {len(data) / MB:.1f} MB, "
            f"{args.job_rows} rows"
        )
        calls = Calls()
        probe_analyze(svc.url, 2, args.seed, Calls(), "warm")
        probe_analyze(svc.url, args.probe_seconds, args.seed, calls, "idle")
        with httpx.Client(base_url=svc.url, timeout=600) as http:
            t_submit = time.monotonic()
            r = http.post(
                "/v1/jobs",
                files={"file": ("reviews.csv", data, "text/csv")},
                data={"text_column": "content", "id_column": "review_id"},
            )
            submit_s = time.monotonic() - t_submit
            if r.status_code != 202:
                res.add("jobs", "job submitted", f"HTTP {r.status_code}: {r.text[:200]}", "202", ok=False)
                return res
            job_id = r.json()["job_id"]
            states: list[tuple[float, str, int]] = []
            halt = threading.Event()

            def watch():
                with httpx.Client(base_url=svc.url, timeout=60) as w:
                    while not halt.is_set():
                        try:
                            st = w.get(f"/v1/jobs/{job_id}").json()
                            states.append((time.monotonic(), st["status"], st["done"]))
                        except (httpx.HTTPError, ValueError, KeyError):
                            pass
                        halt.wait(0.5)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t_probe = time.monotonic()
            probe_analyze(svc.url, args.probe_seconds, args.seed + 1, calls, "during job")
            probe_end = time.monotonic()
            deadline = time.monotonic() + args.job_timeout
            st = http.get(f"/v1/jobs/{job_id}").json()
            while st["status"] not in ("done", "failed", "cancelled") and time.monotonic() < deadline:
                time.sleep(0.5)
                st = http.get(f"/v1/jobs/{job_id}").json()
            t_end = time.monotonic()
            halt.set()
            watcher.join()
            mem = svc.memory()
        alive = svc.proc.poll() is None
    finally:
        svc.stop()
    finished_during = next((t for t, s, _ in states if s in ("done", "failed", "cancelled") and t < probe_end), None)
    idle_l, busy_l = calls.latencies("idle"), calls.latencies("during job")
    i99, b99 = pct(idle_l, 99), pct(busy_l, 99)
    ratio = b99 / i99 if i99 > 0 else float("nan")
    wall_rate = st["done"] / (t_end - t_submit) if st["status"] == "done" else float("nan")
    res.details.append(
        f"jobs: submit (upload + validation) {submit_s:.2f} s; job {st['status']} {st['done']}/"
        f"{st['total']} rows, {st['errors']} errors, service rows/s {st.get('rows_per_second')}, "
        f"wall {t_end - t_submit:.1f} s from submit; RSS at end {mem[0]:.0f} MB (PSS {mem[1]:.0f} MB, "
        f"{mem[2]} processes)"
    )
    ran = [t for t, s_, _ in states if s_ == "running" and t_probe <= t <= probe_end]
    if not ran:
        res.details.append("  NOTE: the job was never seen running during the probe")
    if finished_during:
        res.details.append(
            f"  NOTE: the job finished {finished_during - t_probe:.1f} s into the "
            f"{args.probe_seconds:.0f} s probe; the 'during job' figures are partly idle"
        )
    res.details += latency_table(calls)
    errs = calls.errors()
    if errs:
        res.details.append(f"  errors: {dict(errs)}")
    res.add(
        "jobs",
        "analyze p99 idle -> during job",
        f"{ms(i99)} -> {ms(b99)} ({ratio:.1f}x)",
        "<= 2x",
        f"p50 {ms(pct(idle_l, 50))} -> {ms(pct(busy_l, 50))}",
        ok=ratio <= 2.0,
    )
    res.add(
        "jobs",
        "analyze requests idle / during job",
        f"{len(idle_l)} / {len(busy_l)}, errors {sum(errs.values())}",
        "0 errors",
        ok=not errs,
    )
    res.add("jobs", "job rows/s", f"{st.get('rows_per_second')} (service), {wall_rate:.0f} (submit to done)")
    res.add(
        "jobs",
        "job finished",
        f"{st['status']} {st['done']}/{st['total']}",
        "done",
        ok=st["status"] == "done" and st["done"] == st["total"],
    )
    res.add("jobs", "service still up", "yes" if alive else "NO", "yes", ok=alive)
    return res


# --- part 5: max batch memory -------------------------------------------------------------------------
def served_limits(args) -> tuple[int, int, int | None]:
    """(max_batch_items, max_text_chars, max_batch_chars) as the service will read them."""
    from app.core.config import Settings

    s = Settings()
    chars = args.batch_chars or getattr(s, "max_batch_chars", None)
    return args.batch_items or s.max_batch_items, args.long_chars or s.max_text_chars, chars


def batch_body(items: int, total_chars: int, text_cap: int, seed: int) -> tuple[bytes, int, int]:
    per = max(1, min(text_cap, total_chars // items))
    rnd = random.Random(seed)
    pool = long_text(rnd, text_cap + 4000)
    texts = []
    for _ in range(items):
        off = rnd.randint(0, len(pool) - per)
        texts.append(pool[off : off + per])
    body = json.dumps({"items": [{"id": f"m{i}", "text": t} for i, t in enumerate(texts)]}, ensure_ascii=False)
    return body.encode(), per, per * items


def part_batchmem(args, work: Path, env: dict[str, str]) -> Result:
    res = Result()
    items, text_cap, cap = served_limits(args)
    total = cap if cap else items * text_cap
    source = "--batch-chars" if args.batch_chars else ("settings max_batch_chars" if cap else "no cap known")
    attempts: list[str] = []
    r = None
    for attempt in range(6):
        body, per, sent_chars = batch_body(items, total, text_cap, args.seed)
        svc = Service(work, f"batchmem-{attempt}", env)
        try:
            say(
                f"  service ready in {svc.wait_ready():.1f} s on {svc.url}; batch {items} x {per} chars "
                f"= {sent_chars} chars, {len(body) / MB:.1f} MB ({source})"
            )
            with httpx.Client(base_url=svc.url, timeout=600) as http:
                rnd = random.Random(args.seed)
                http.post("/v1/analyze/batch", json={"items": [{"text": review(rnd)} for _ in range(50)]})
                http.post("/v1/analyze", json={"text": long_text(rnd, text_cap)})
                time.sleep(2)
                before = svc.memory()
                peak = [before[0]]
                halt = threading.Event()

                def sample():
                    while not halt.wait(0.05):  # noqa: B023 - joined before the next iteration
                        peak[0] = max(peak[0], svc.memory()[0])  # noqa: B023

                th = threading.Thread(target=sample, daemon=True)
                th.start()
                t0 = time.monotonic()
                r = http.post("/v1/analyze/batch", content=body, headers={"content-type": "application/json"})
                took = time.monotonic() - t0
                right_after = svc.memory()
                time.sleep(2)
                halt.set()
                th.join()
                after = svc.memory()
                # peer: the same request again (does memory keep growing, or is it reused?)
                t1 = time.monotonic()
                r2 = http.post("/v1/analyze/batch", content=body, headers={"content-type": "application/json"})
                took2 = time.monotonic() - t1
                time.sleep(2)
                after2 = svc.memory()
            alive = svc.proc.poll() is None
        finally:
            svc.stop()
        code = None
        if r.status_code == 413:
            try:
                err = r.json()["error"]
                code, msg = err["code"], err["message"]
            except (ValueError, KeyError, TypeError):
                code, msg = "?", r.text[:300]
            attempts.append(f"{sent_chars} chars / {len(body)} bytes -> 413 {code}: {msg}")
            m = re.search(r"limit per batch is (\d+)", msg) or re.search(r"limit\D{0,40}(\d{4,})", msg)
            b = re.search(r"exceeds (\d+) bytes", msg)
            if code == "batch_too_large" and m and int(m.group(1)) < sent_chars:
                total, source = int(m.group(1)), "413 batch_too_large message"
            elif b:
                total, source = int(int(b.group(1)) * 0.95 / (len(body) / max(1, sent_chars))), "413 body limit"
            else:
                total, source = total // 2, "halved after 413"
            continue
        break
    for a in attempts:
        res.details.append(f"batchmem: attempt {a}")
    ok200 = r is not None and r.status_code == 200
    delta = after[0] - before[0]
    res.details.append(
        f"batchmem: {items} items x {per} chars = {sent_chars} chars ({source}), request "
        f"{len(body) / MB:.2f} MB -> HTTP {r.status_code}, {len(r.content) / MB:.2f} MB in {took:.2f} s"
    )
    res.details.append(
        f"  RSS before {before[0]:.0f} MB, peak {peak[0]:.0f} MB, right after {right_after[0]:.0f} MB, "
        f"+2 s {after[0]:.0f} MB (PSS {before[1]:.0f} -> {after[1]:.0f} MB)"
    )
    res.details.append(
        f"  same batch again: HTTP {r2.status_code} in {took2:.2f} s, RSS +2 s {after2[0]:.0f} MB "
        f"({after2[0] - after[0]:+.0f} MB vs after the first)"
    )
    if not ok200:
        res.details.append(f"  response: {r.text[:500]}")
    res.add(
        "batchmem",
        "max batch answered",
        f"HTTP {r.status_code} ({items} x {per} chars = {sent_chars})",
        "200",
        ok=ok200,
    )
    res.add(
        "batchmem",
        "response time / size",
        f"{took:.2f} s / {len(r.content) / MB:.2f} MB",
        "",
        f"request {len(body) / MB:.2f} MB",
    )
    res.add(
        "batchmem",
        "RSS delta 2 s after",
        f"{delta:+.0f} MB ({before[0]:.0f} -> {after[0]:.0f}, peak {peak[0]:.0f})",
        "<= 100 MB",
        f"2nd batch {after2[0] - after[0]:+.0f} MB",
        ok=delta <= 100,
    )
    res.add("batchmem", "service still up", "yes" if alive else "NO", "yes", ok=alive)
    return res


# --- main -------------------------------------------------------------------------------------------------
def final_table(figures: list[Figure]) -> list[str]:
    head = ("part", "figure", "value", "target", "peer / baseline", "status")
    rows = [
        (f.part, f.name, f.value, f.target, f.peer, "" if f.ok is None else ("PASS" if f.ok else "FAIL"))
        for f in figures
    ]
    w = [max(len(x) for x in col) for col in zip(head, *rows)]
    out = ["  ".join(v.ljust(n) for v, n in zip(head, w)).rstrip()]
    out.append("-" * len(out[0]))
    out += ["  ".join(v.ljust(n) for v, n in zip(row, w)).rstrip() for row in rows]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--only", help=f"comma-separated parts ({','.join(PARTS)}); default: all")
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 cases, 10 s load, 8 s probes, 10,000-row job")
    ap.add_argument("--cases", type=int, help="schemathesis: generated cases at least (default 2000; quick 200)")
    ap.add_argument("--st-workers", type=int, default=1, help="schemathesis workers (default 1)")
    ap.add_argument("--seconds", type=float, help="load: measured seconds (default 60; quick 10)")
    ap.add_argument("--warmup", type=float, help="load: warm-up seconds before measuring (default 10; quick 3)")
    ap.add_argument("--concurrency", type=int, default=16, help="load: concurrent clients (default 16)")
    ap.add_argument("--probe-seconds", type=float, help="healthz and jobs probes (default 20; quick 8)")
    ap.add_argument("--job-rows", type=int, help="jobs: rows in the CSV job (default 50,000; quick 10,000)")
    ap.add_argument("--job-timeout", type=float, default=900, help="jobs: wait at most this for the job (s)")
    ap.add_argument("--batch-chars", type=int, help="batchmem: total characters (default: PINGJIA_MAX_BATCH_CHARS)")
    ap.add_argument("--batch-items", type=int, help="batchmem: items (default: PINGJIA_MAX_BATCH_ITEMS)")
    ap.add_argument("--long-chars", type=int, help="length of the long texts (default: PINGJIA_MAX_TEXT_CHARS)")
    ap.add_argument("--job-workers", type=int, help="PINGJIA_JOB_WORKERS for the service (default: its own)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra service environment")
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (service logs, schemathesis reports)")
    args = ap.parse_args(argv)
    q = args.quick
    args.cases = args.cases or (200 if q else 2000)
    args.seconds = args.seconds or (10.0 if q else 60.0)
    args.warmup = args.warmup if args.warmup is not None else (3.0 if q else 10.0)
    args.probe_seconds = args.probe_seconds or (8.0 if q else 20.0)
    args.job_rows = args.job_rows or (10_000 if q else 50_000)
    args.idle_samples = 5 if q else 20
    args.idle_seconds = 3.0 if q else 5.0
    if not args.long_chars:
        from app.core.config import Settings

        args.long_chars = Settings().max_text_chars
    parts = PARTS if not args.only else [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    env = dict(e.split("=", 1) for e in args.env)
    if args.job_workers:
        env["PINGJIA_JOB_WORKERS"] = str(args.job_workers)

    work = Path(tempfile.mkdtemp(prefix="pingjia-hostile-"))
    say(
        f"bench_hostile: parts {','.join(parts)}{' (quick)' if q else ''}; cpus {os.cpu_count()}, "
        f"load average {Path('/proc/loadavg').read_text().split()[0]}; work dir {work}"
    )
    runners = {
        "schemathesis": part_schemathesis,
        "load": part_load,
        "healthz": part_healthz,
        "jobs": part_jobs,
        "batchmem": part_batchmem,
    }
    figures: list[Figure] = []
    broken = False
    t_all = time.monotonic()
    try:
        for part in parts:
            say("", f"== {part} ==")
            t0 = time.monotonic()
            try:
                res = runners[part](args, work, env)
            except RuntimeError as exc:  # the service did not start
                say(f"  {part}: {exc}")
                figures.append(Figure(part, "service started", "NO", "yes", ok=False))
                broken = True
                continue
            except Exception as exc:  # noqa: BLE001 - report and go on with the other parts
                import traceback

                say(f"  {part}: bench error {type(exc).__name__}: {exc}", traceback.format_exc())
                figures.append(
                    Figure(part, "bench ran", f"error: {type(exc).__name__}: {exc}"[:120], "no error", ok=False)
                )
                continue
            say(*res.details)
            say(f"  ({part}: {time.monotonic() - t0:.0f} s)")
            figures += res.figures
    finally:
        if args.keep:
            say(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    say("", f"== figures vs targets ({time.monotonic() - t_all:.0f} s) ==", *final_table(figures))
    failed = [f for f in figures if f.ok is False]
    say(
        "",
        f"{len(failed)} check(s) failed" + (": " + "; ".join(f"{f.part}: {f.name}" for f in failed) if failed else ""),
    )
    if broken:
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
