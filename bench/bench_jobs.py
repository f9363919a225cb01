"""Jobs at scale: rows/s, peak memory of service + workers, time from submit to summary.

Run (real models):
    .venv/bin/python bench/bench_jobs.py --rows 100000
    .venv/bin/python bench/bench_jobs.py --rows 1000000 --peer-rows 0     # the memory run
Before models/current.json exists, --fake serves the stand-in sentiment model
(tests.test_jobs_crash:fake_app) in the service and its workers.

It writes N synthetic reviews to a temporary CSV (texts sampled from reviews_train.csv in
--data, ../shared/data by default, when present — never copied into the repo — else from
templates; plus channel/agent/category/date columns with a planted channel effect and a
planted spike day), starts ``uvicorn app.main:app`` on a free loopback port with a
temporary PINGJIA_DATA_DIR, submits the file as a multipart upload, polls until done,
fetches the summary and streams the results back (checking every id once, in order).
A sampler thread reads VmRSS and Pss of the service and all its descendants every 0.2 s.
The peer is the same pipeline in this process on one core (``analyze_batch`` in chunks of
500) and plain ``jieba.lcut`` over the same rows. ``--baseline REV`` (``make bench``: 13a99ba,
the code before issue 13) then starts a second service from a worktree of ``REV``, with its
own models, and the two take turns on the same smaller job (:func:`baseline_jobs`): issue 13's
jobs row as a ratio, which the machine's drift moves far less than rows/s.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from worktree import checkout, remove  # noqa: E402

TEMPLATES = [
    ("发货太慢了，等了{n}天才到", 0),
    ("客服态度很差，问了{n}次都没人回复", 0),
    ("质量很好，用了{n}天没问题", 1),
    ("物流很快，包装完好，第{n}次回购了", 1),
    ("价格有点贵，但是质量不错", 1),
    ("东西与描述不符，颜色差太多", 0),
    ("退货退款处理了{n}天还没结果", 0),
    ("很满意，下次还来", 1),
    ("味道一般，分量太少", 0),
    ("屏幕很清晰，运行流畅", 1),
]


# --- data ---------------------------------------------------------------------------
def source_texts(corpus: Path, seed: int) -> list[tuple[str, int, str]]:
    """(text, label, category) pool: the corpus file if present, else templates."""
    if corpus.is_file():
        with open(corpus, encoding="utf-8") as f:
            return [
                (r["review"][:1000], int(r["label"]), r["category"]) for r in csv.DictReader(f) if r["review"].strip()
            ]
    rnd = random.Random(seed)
    return [(t.format(n=rnd.randint(2, 9)), label, "通用") for t, label in TEMPLATES for _ in range(50)]


def write_reviews(path: Path, n: int, corpus: Path = DATA / "reviews_train.csv", seed: int = 11) -> None:
    """N rows; channel 'mini' gets more negative reviews, 2026-10-20 is a spike day."""
    rnd = random.Random(seed)
    pool = source_texts(corpus, seed)
    neg = [p for p in pool if p[1] == 0]
    pos = [p for p in pool if p[1] == 1]
    days = [f"2026-10-{d:02d}" for d in range(1, 31)]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "channel", "agent", "category", "date"])
        for i in range(n):
            day = days[i % 30]
            p_neg = 0.6 if day == "2026-10-20" else 0.35
            is_neg = rnd.random() < p_neg
            text, _, cat = rnd.choice(neg if is_neg else pos)
            channel = "mini" if rnd.random() < (0.4 if is_neg else 0.15) else rnd.choice(["app", "web", "store"])
            w.writerow([f"r{i}", text, channel, f"a{rnd.randint(1, 12):02d}", cat, f"{day} {rnd.randint(8, 22)}:15:00"])


# --- the service and its memory ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def role(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    if b"resource_tracker" in cmd:
        return "tracker"
    if b"spawn_main" in cmd:
        return "worker"
    return "service" if pid == ROOT_PID[0] else "worker(forked)"


ROOT_PID = [0]


def mem_kb(pid: int, with_pss: bool = True) -> tuple[int, int]:
    """(VmRSS, Pss) in kB; Pss counts shared pages once across processes (0 unless ``with_pss``:
    reading it walks the process's page tables, ~3 ms of kernel time per process)."""
    try:
        rss = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0])
        if not with_pss:
            return rss, 0
        pss = int(Path(f"/proc/{pid}/smaps_rollup").read_text().split("\nPss:")[1].split()[0])
        return rss, pss
    except (OSError, IndexError):
        return 0, 0


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of one process (not its children); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the service and its live descendants."""
    return sum(cpu_of(p) for p in tree(pid))


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.peak_detail: list[tuple[str, int, int]] = []
        self.peak_procs = 0
        self.pss: dict[int, int] = {}
        self.total_pss = 0  # the latest sum over the tree

    def run(self):
        # RSS every 0.2 s, Pss every second: Pss of five processes every 0.2 s took ~7 % of a
        # core from the workers being measured.
        tick = 0
        while not self.stop.wait(0.2):
            tick += 1
            detail = []
            for p in tree(self.pid):
                rss, pss = mem_kb(p, with_pss=tick % 5 == 1 or p not in self.pss)
                self.pss[p] = pss or self.pss.get(p, 0)  # between readings, the last one
                detail.append((role(p), rss, self.pss[p]))
            rss, pss = sum(d[1] for d in detail), sum(d[2] for d in detail)
            self.peak_procs = max(self.peak_procs, len(detail))
            if rss > self.peak_rss:
                self.peak_rss, self.peak_detail = rss, detail
            self.peak_pss = max(self.peak_pss, pss)
            self.total_pss = pss


def pss_growth(progress: list[tuple[int, int]], total: int) -> dict:
    """Whether memory stays flat as rows are scored: the highest Pss of the tree while the
    job's second quarter of rows was scored against while its last quarter was (empty when a
    run is too short to sample both)."""
    early = [kb for done, kb in progress if total / 4 <= done < total / 2 and kb]
    late = [kb for done, kb in progress if done >= total * 3 / 4 and kb]
    if not early or not late:
        return {}
    return {"pss_second_quarter_mb": max(early) / 1024, "pss_last_quarter_mb": max(late) / 1024}


def start_service(data_dir: Path, args, code: Path = ROOT) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PINGJIA_DATA_DIR": str(data_dir),
        "PINGJIA_JOB_WORKERS": str(args.workers),
        "PINGJIA_JOB_CHUNK_ROWS": str(args.chunk_rows),
        "PINGJIA_JOB_WORKER_START": args.start,
        "PYTHONPATH": str(code),
    }
    target = ["tests.test_jobs_crash:fake_app", "--factory"] if args.fake else ["app.main:app"]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=code,
        env=env,
        start_new_session=True,
        stdout=open(data_dir / "service.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("service died:\n" + (data_dir / "service.log").read_text()[-3000:])
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    sys.exit("service not ready after 120 s")


def stop_service(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        print("service did not stop within 60 s of SIGTERM; killing it", file=sys.stderr)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- the measured run ---------------------------------------------------------------
def run_job(csv_path: Path, args, code: Path = ROOT) -> dict:
    """The job of ``csv_path`` on a service started from ``code`` (this project, or an earlier
    revision's worktree): rows/s, CPU, memory and what its summary says."""
    data_dir = Path(tempfile.mkdtemp(prefix="pingjia-bench-data-", dir=args.work_dir))
    proc, base = start_service(data_dir, args, code)
    ROOT_PID[0] = proc.pid
    sampler = Sampler(proc.pid)
    idle_rss = sum(mem_kb(p)[0] for p in tree(proc.pid))
    sampler.start()
    out: dict = {"idle_service_rss_mb": idle_rss / 1024}
    try:
        with httpx.Client(base_url=base, timeout=3600) as http:
            t0 = time.perf_counter()
            with open(csv_path, "rb") as f:
                r = http.post("/v1/jobs", files={"file": ("reviews.csv", f, "text/csv")})
            r.raise_for_status()
            t_accepted = time.perf_counter()
            job_id, total = r.json()["job_id"], r.json()["total"]
            cpu0, loads = cpu_seconds(proc.pid), [load_average()]
            last = 0.0
            progress: list[tuple[int, int]] = []  # (rows done, Pss of the tree in kB), every poll
            while (st := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
                progress.append((st["done"], sampler.total_pss))
                if time.perf_counter() - last > 10:
                    last = time.perf_counter()
                    loads.append(load_average())
                    print(
                        f"  {st['done']:>9}/{st['total']} rows  {st['rows_per_second']} rows/s  eta {st['eta_seconds']} s",
                        file=sys.stderr,
                    )
                time.sleep(0.25)
            t_done = time.perf_counter()
            cpu = cpu_seconds(proc.pid) - cpu0
            assert st["status"] == "done", st
            summary = http.get(f"/v1/jobs/{job_id}/summary").json()
            t_summary = time.perf_counter()
            n = 0
            with http.stream("GET", f"/v1/jobs/{job_id}/results") as resp:
                for line in resp.iter_lines():
                    if line:
                        assert json.loads(line)["id"] == f"r{n}", "results out of order"
                        n += 1
            t_results = time.perf_counter()
            assert n == total, (n, total)
    finally:
        sampler.stop.set()
        sampler.join()
        stop_service(proc)
    out.update(
        cpu_s=cpu,
        rows_per_cpu_s=total / cpu,
        load_avg=f"{min(map(float, loads))}-{max(map(float, loads))}",
        rows=total,
        errors=st["errors"],
        ingest_s=t_accepted - t0,
        scoring_s=t_done - t_accepted,
        rows_per_s=total / (t_done - t_accepted),
        service_rows_per_s=st["rows_per_second"],
        submit_to_summary_s=t_summary - t0,
        summary_s=t_summary - t_done,
        results_s=t_results - t_summary,
        peak_rss_mb=sampler.peak_rss / 1024,
        peak_pss_mb=sampler.peak_pss / 1024,
        **pss_growth(progress, total),
        procs=sampler.peak_procs,
        peak_detail=[(who, round(r / 1024), round(s / 1024)) for who, r, s in sampler.peak_detail],
        db_mb=sum(p.stat().st_size for p in data_dir.glob("jobs.db*")) / 2**20,
        flagged=[(c["column"], c["flagged"]) for c in summary["groups"]["columns"]],
        alerts=[a["message_zh"] for a in (summary["daily"] or {}).get("alerts", [])][:5],
        terms=[t["term"] for t in summary["complaint_terms"]["items"][:10]],
    )
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        out["data_dir"] = str(data_dir)
    return out


ROUNDS, ROUND_ROWS = 4, 25_000  # the baseline comparison: jobs per service, rows per job


def job_rate(http: httpx.Client, csv_path: Path) -> float:
    """Rows/s of one job, from its acceptance to done (polled every 50 ms)."""
    with open(csv_path, "rb") as f:
        r = http.post("/v1/jobs", files={"file": ("reviews.csv", f, "text/csv")})
    r.raise_for_status()
    t, (job_id, total) = time.perf_counter(), (r.json()["job_id"], r.json()["total"])
    while (st := http.get(f"/v1/jobs/{job_id}").json())["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.05)
    assert st["status"] == "done", st
    return total / (time.perf_counter() - t)


def first_rows(csv_path: Path, n: int, out: Path) -> Path:
    with open(csv_path, encoding="utf-8", newline="") as f, open(out, "w", encoding="utf-8", newline="") as g:
        reader, writer = csv.reader(f), csv.writer(g)
        writer.writerow(next(reader))
        for _, row in zip(range(n), reader):
            writer.writerow(row)
    return out


def baseline_jobs(csv_path: Path, args) -> dict:
    """Issue 13's jobs row as a ratio: this tree's service and one started from a worktree of
    ``args.baseline`` (its models too), both up, take turns on the same job (``ROUNDS`` each, of
    the first ``ROUND_ROWS`` rows or all of a smaller file, after a warm-up job), so the
    machine's drift hits both alike; the ratio is the median of the rounds'. ``{}`` when the
    revision cannot be checked out or started."""
    with tempfile.TemporaryDirectory(prefix="pingjia-baseline-", dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        try:
            code = checkout(args.baseline, tmp / "tree")
        except subprocess.CalledProcessError as exc:
            print(f"baseline {args.baseline}: not measured, no checkout ({exc.stderr.strip()})", file=sys.stderr)
            return {}
        rows = min(ROUND_ROWS, args.rows)
        part, warm = first_rows(csv_path, rows, tmp / "part.csv"), first_rows(csv_path, 1000, tmp / "warm.csv")
        procs: list[subprocess.Popen] = []
        clients: dict[str, httpx.Client] = {}
        rates: dict[str, list[float]] = {"now": [], "before": []}
        try:
            for name, where in (("now", ROOT), ("before", code)):
                (tmp / name).mkdir()
                try:
                    proc, base = start_service(tmp / name, args, where)
                except SystemExit as exc:  # this tree's figures stand without the baseline's
                    print(f"baseline {args.baseline}: not measured ({exc})", file=sys.stderr)
                    return {}
                procs.append(proc)
                clients[name] = httpx.Client(base_url=base, timeout=3600)
            for http in clients.values():
                job_rate(http, warm)
            for _ in range(ROUNDS):
                for name, http in clients.items():
                    rates[name].append(job_rate(http, part))
        finally:
            for http in clients.values():
                http.close()
            for proc in procs:
                stop_service(proc)
            remove(code)
    ratios = [a / b for a, b in zip(rates["now"], rates["before"])]
    return {
        "baseline_rev": args.baseline,
        "baseline_round_rows": rows,
        "baseline_rounds": [(round(a), round(b)) for a, b in zip(rates["now"], rates["before"])],
        "jobs_vs_baseline": statistics.median(ratios),
    }


def peer(csv_path: Path, n: int, fake: bool) -> dict:
    """The same pipeline in this process on one core, and plain jieba.lcut, on the first n rows."""
    import jieba

    from app.core.config import get_settings
    from app.pipeline.engine import TextItem, build_pipeline

    with open(csv_path, encoding="utf-8") as f:
        texts = [r["text"] for _, r in zip(range(n), csv.DictReader(f))]
    if fake:
        from tests.test_jobs_crash import _fake_pipeline

        pipeline = _fake_pipeline()
    else:
        s = get_settings()
        pipeline = build_pipeline(s.lexicon_dir, s.models_dir)
    pipeline.analyze_batch([TextItem("预热一下")], top_terms=50)
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), 500):
        pipeline.analyze_batch([TextItem(x) for x in texts[i : i + 500]])
    pipe = len(texts) / (time.perf_counter() - t)
    pipe_cpu = len(texts) / (time.process_time() - c)
    jieba.setLogLevel(60)
    jieba.lcut("预热")
    t = time.perf_counter()
    for x in texts:
        jieba.lcut(x)
    return {
        "peer_rows": len(texts),
        "pipeline_1core_rows_per_s": pipe,
        "pipeline_rows_per_cpu_s": pipe_cpu,
        "jieba_lcut_rows_per_s": len(texts) / (time.perf_counter() - t),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=DATA, help="where reviews_train.csv is (absent: templates)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chunk-rows", type=int, default=500)
    ap.add_argument(
        "--start",
        choices=["fork", "spawn"],
        default="fork",
        help="how the service starts its workers (PINGJIA_JOB_WORKER_START)",
    )
    ap.add_argument("--peer-rows", type=int, default=5000, help="rows for the in-process peer (0: skip)")
    ap.add_argument("--fake", action="store_true", help="stand-in sentiment model (before models exist)")
    ap.add_argument("--work-dir", help="where the CSV and the service's data dir go (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the same job on the code at this git revision (make bench: 13a99ba, before issue 13)",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pingjia-bench-", dir=args.work_dir))
    try:
        csv_path = work / "reviews.csv"
        t = time.perf_counter()
        corpus = args.data / "reviews_train.csv"
        write_reviews(csv_path, args.rows, corpus)
        print(
            f"wrote {args.rows} rows ({csv_path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.0f} s "
            f"from {corpus if corpus.is_file() else 'templates'}",
            file=sys.stderr,
        )
        res = run_job(csv_path, args)
        if args.baseline:
            res.update(baseline_jobs(csv_path, args))
        if args.peer_rows:
            res.update(peer(csv_path, min(args.peer_rows, args.rows), args.fake))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n== jobs bench: {res['rows']} rows, {args.workers} {args.start}ed worker process(es), "
        f"chunks of {args.chunk_rows}"
        f"{' (FAKE sentiment model)' if args.fake else ''} on {os.cpu_count()} cores =="
    )
    print(f"submit (upload + validation + work file): {res['ingest_s']:8.1f} s")
    print(f"scoring, accepted -> done:                {res['scoring_s']:8.1f} s = {res['rows_per_s']:,.0f} rows/s")
    print(
        f"  CPU used by service + workers meanwhile: {res['cpu_s']:8.1f} s = {res['rows_per_cpu_s']:,.0f} rows per "
        f"CPU-second (x{args.workers} cores = {res['rows_per_cpu_s'] * args.workers:,.0f} rows/s on otherwise idle cores);"
        f" machine load average {res['load_avg']} (other sessions share the 2 cores)"
    )
    print(f"summary after done:                       {res['summary_s']:8.2f} s")
    print(f"submit -> summary:                        {res['submit_to_summary_s']:8.1f} s")
    print(f"stream all results back (checked):        {res['results_s']:8.1f} s")
    print(
        f"peak RSS, service + workers (sum):        {res['peak_rss_mb']:8.0f} MB   (Pss {res['peak_pss_mb']:.0f} MB;"
        f" idle service {res['idle_service_rss_mb']:.0f} MB; {res['procs']} processes)"
    )
    print(f"  at the peak, per process (role, RSS MB, Pss MB): {res['peak_detail']}")
    if "pss_last_quarter_mb" in res:
        print(
            f"  Pss while the second quarter of rows was scored {res['pss_second_quarter_mb']:.0f} MB, "
            f"the last quarter {res['pss_last_quarter_mb']:.0f} MB"
        )
    print(f"job database on disk:                     {res['db_mb']:8.0f} MB")
    print(f"row errors: {res['errors']}; flagged groups: {res['flagged']}")
    print(f"spike alerts: {res['alerts']}")
    print(f"top complaint terms: {res['terms']}")
    if "peer_rows" in res:
        print(
            f"peer, same pipeline in-process on 1 core ({res['peer_rows']} rows): "
            f"{res['pipeline_1core_rows_per_s']:,.0f} rows/s; plain jieba.lcut: {res['jieba_lcut_rows_per_s']:,.0f} rows/s"
        )
        print(
            f"  per CPU-second: in-process pipeline {res['pipeline_rows_per_cpu_s']:,.0f} rows, jobs service "
            f"{res['rows_per_cpu_s']:,.0f} rows (the jobs machinery costs "
            f"{1 - res['rows_per_cpu_s'] / res['pipeline_rows_per_cpu_s']:.0%} on top of the pipeline)"
        )
        print(
            f"jobs service vs 1-core in-process pipeline (wall clock): "
            f"{res['rows_per_s'] / res['pipeline_1core_rows_per_s']:.2f}x"
        )
    if "jobs_vs_baseline" in res:
        print(
            f"this tree and {res['baseline_rev']} (before issue 13) taking turns, {ROUNDS} jobs of"
            f" {res['baseline_round_rows']:,} rows"
            f" each, rows/s (this, that): {res['baseline_rounds']}; this tree {res['jobs_vs_baseline']:.2f}x"
            " of it (the median of the rounds' ratios)"
        )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
