"""Pingjia on Spark against ``pingjia score`` on the same file, in the same run.

Run (real models, Java 17, the spark extra):
    .venv/bin/python bench/bench_spark.py --rows 20000
    .venv/bin/python bench/bench_spark.py               # 1,000,000 rows: the README's figures

It writes N synthetic reviews to a temporary CSV (``bench_jobs.write_reviews``: texts sampled
from ../shared/data/reviews_train.csv when present, else templates; channel/agent/category/date
columns), then runs, one after the other, each as its own process:

1. ``pingjia score FILE -o out.csv --workers 2`` (the jobs engine, two forked workers);
2. ``pingjia spark-score FILE out/ --master local[1]``;
3. ``pingjia spark-score FILE out/ --master local[2]``.

For each: wall time of the whole command (start-up, model loading, reading, scoring, writing:
what a user waits for) and rows/s over it, the rows/s the command itself reports (``score``:
the job's scoring rate; ``spark-score``: reading + scoring + writing, without JVM start-up),
and peak memory from /proc every 0.2 s: VmRSS of each Python worker (Spark: the processes
forked by ``pyspark.daemon``, one per running task, each holding its own pipeline; ``score``:
its forked workers, which share the parent's model pages) and of the JVM (in local mode the
driver is also the executor). Then the ratio Spark/score (target >= 0.8 at 1M rows) and the
scaling local[2]/local[1] (target >= 1.7).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_jobs import Sampler, cpu_of, load_average, mem_kb, tree, write_reviews  # noqa: E402

PINGJIA = [sys.executable, "-m", "app.cli"]


def role(pid: int, root: int) -> str:
    """What a process of the command's tree is: driver, jvm, pyspark daemon, python worker."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        parent_cmd = Path(f"/proc/{parent}/cmdline").read_bytes()
    except (OSError, IndexError, ValueError):
        return "?"
    if pid == root:
        return "driver"
    if b"java" in cmd.split(b"\0")[0]:
        return "jvm"
    if b"pyspark.daemon" in cmd:
        return "python worker" if b"pyspark.daemon" in parent_cmd else "pyspark daemon"
    return "worker"


class Peaks(Sampler):
    """Peak VmRSS per process role (max over the processes of that role and over time)."""

    def __init__(self, pid: int):
        super().__init__(pid)
        self.by_role: dict[str, int] = {}
        self.workers_seen: set[int] = set()
        self.cpu: dict[int, float] = {}  # CPU seconds so far, per process (the last sample of each)

    def run(self):
        while not self.stop.wait(0.2):
            for p in tree(self.pid):
                r = role(p, self.pid)
                rss, _ = mem_kb(p)
                self.by_role[r] = max(self.by_role.get(r, 0), rss)
                self.cpu[p] = max(self.cpu.get(p, 0.0), cpu_of(p))
                if r == "python worker" or (r == "worker" and rss > 50_000):
                    self.workers_seen.add(p)


def run(name: str, cmd: list[str], rows: int) -> dict:
    print(f"\n{name}: {' '.join(cmd[2:])}", flush=True)
    loads = [load_average()]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = Peaks(proc.pid)
    peaks.start()
    _, err = proc.communicate()
    wall = time.monotonic() - started
    peaks.stop.set()
    cpu = sum(peaks.cpu.values())
    loads.append(load_average())
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}):\n{err[-3000:]}")
    reported = re.findall(r"([\d.]+) rows/s", err)
    out = {
        "name": name,
        "wall": wall,
        "rate": rows / wall,
        "reported": float(reported[-1]) if reported else None,
        "peaks": peaks.by_role,
        "workers": len(peaks.workers_seen),
        "load": "-".join(loads),
        "cpu": cpu,
    }
    mem = ", ".join(f"{r} {kb / 1024:.0f} MB" for r, kb in sorted(out["peaks"].items()) if r != "?")
    print(
        f"  {wall:.1f} s, {out['rate']:,.0f} rows/s over the whole command"
        f" ({out['reported'] or 0:,.0f} rows/s reported); {cpu:.1f} CPU-s = {rows / cpu:,.0f} rows per CPU-second;"
        f" load {out['load']}",
        flush=True,
    )
    print(f"  peak RSS: {mem}; worker processes seen: {out['workers']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (input and outputs)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingjia-bench-spark-"))
    try:
        src = tmp / "reviews.csv"
        t = time.monotonic()
        write_reviews(src, args.rows)
        size = src.stat().st_size / 1e6
        print(
            f"{args.rows:,} reviews, {size:.1f} MB CSV, written in {time.monotonic() - t:.1f} s; {os.cpu_count()} cores"
        )
        score = run(
            "pingjia score --workers 2",
            [*PINGJIA, "score", str(src), "-o", str(tmp / "out.csv"), "--workers", "2"],
            args.rows,
        )
        spark = {}
        for master in ("local[1]", "local[2]"):
            spark[master] = run(
                f"pingjia spark-score --master {master}",
                [*PINGJIA, "spark-score", str(src), str(tmp / "out"), "--master", master, "--overwrite"],
                args.rows,
            )
        s1, s2 = spark["local[1]"], spark["local[2]"]
        print("\nsummary")
        print(f"  rows/s, whole command: score --workers 2 {score['rate']:,.0f}; spark local[2] {s2['rate']:,.0f}")
        print(f"  Spark local[2] / score --workers 2: {s2['rate'] / score['rate']:.2f} (target >= 0.80 at 1M rows)")
        if score["reported"] and s2["reported"]:
            print(f"  as reported (no start-up): {s2['reported'] / score['reported']:.2f}")
        print(
            "  rows per CPU-second (all processes: load-independent efficiency): "
            f"score {args.rows / score['cpu']:,.0f}, spark local[1] {args.rows / s1['cpu']:,.0f}, "
            f"local[2] {args.rows / s2['cpu']:,.0f}"
        )
        print(f"  scaling local[2] / local[1]: {s2['rate'] / s1['rate']:.2f} (target >= 1.7)")
        if s1["reported"] and s2["reported"]:
            print(f"  as reported (no start-up): {s2['reported'] / s1['reported']:.2f}")
        print(
            f"  peak RSS per Python worker (local[2]): {s2['peaks'].get('python worker', 0) / 1024:.0f} MB; "
            f"JVM (driver = executor): {s2['peaks'].get('jvm', 0) / 1024:.0f} MB; "
            f"score's forked worker: {score['peaks'].get('worker', 0) / 1024:.0f} MB"
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
