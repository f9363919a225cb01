"""What the Chinese names (issue 14) cost: response size and memory of a maximal batch with
and without the ``*_zh`` fields, and the readable CSV export against the codes CSV.

Run (real models; about 1 minute):
    .venv/bin/python bench/bench_zh_fields.py
    .venv/bin/python bench/bench_zh_fields.py --only export --rows 50000

Parts (``--only a,b``):
  batch   one maximal /v1/analyze/batch (max_batch_items texts filling PINGJIA_MAX_BATCH_CHARS),
          in-process as tests/test_hostile_api.py runs it, once with the presenters as shipped
          and once (peer) with every ``*_zh`` key dropped; each variant in its own process.
          Prints the response bytes and the RSS growth measured two ways: as the test does
          (after a 50-item warm-up, no trim), and with ``release_memory()`` before both readings.
  export  --rows stored review results exported as the codes CSV (peer) and as the readable
          CSV (the upload re-read and zipped with the results); rows/s of each, best of 3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEXTS = [
    "发货太慢了，客服也不耐烦",
    "质量很好，物流很快，非常满意",
    "东西不错，就是价格有点贵",
    "颜色和图片不一样，色差很大，退款也很麻烦",
    "还行吧，一般般",
]


def batch_variant(variant: str, mode: str) -> dict:
    """One maximal batch in this process; ``variant`` is ``zh`` or ``no_zh``, ``mode``
    ``as_test`` or ``trimmed``."""
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.core.memory import release_memory
    from app.main import create_app
    from app.pipeline import present
    from app.pipeline.engine import build_pipeline
    from tests.test_hostile_api import rss_mb as rss  # the test's own RSS reading

    if variant == "no_zh":
        for name in ("keyword", "aspect", "root_cause", "sentiment"):
            fn = getattr(present, name)
            setattr(
                present, name, lambda *a, _fn=fn, **k: {x: v for x, v in _fn(*a, **k).items() if not x.endswith("_zh")}
            )
    tmp = Path(tempfile.mkdtemp(prefix="bench-zh-"))
    settings = Settings(data_dir=tmp)
    pipeline = build_pipeline(settings.lexicon_dir, settings.models_dir)
    per_item = settings.max_batch_chars // settings.max_batch_items
    long = "".join(TEXTS) * (per_item // len("".join(TEXTS)) + 2)
    items = [{"id": str(i), "text": long[i % 7 : i % 7 + per_item]} for i in range(settings.max_batch_items)]

    with TestClient(create_app(settings, pipeline=pipeline)) as client:
        client.post("/v1/analyze/batch", json={"items": items[:50]})
        if mode == "trimmed":
            release_memory()
        before = rss()
        r = client.post("/v1/analyze/batch", json={"items": items})
        size = len(r.content)
        assert r.status_code == 200 and len(r.json()["results"]) == len(items)
        del r
        if mode == "trimmed":
            release_memory()
        growth = round(rss() - before, 1)
    return {mode: growth, "bytes": size}


def part_batch() -> None:
    print("batch: one maximal /v1/analyze/batch, RSS growth in MB (as tests/test_hostile_api.py / trimmed)")
    for variant in ("no_zh", "zh"):
        got = {}
        for mode in ("as_test", "trimmed"):  # each in a fresh process: no reading sees another's heap
            r = subprocess.run(
                [sys.executable, __file__, "--variant", f"{variant}:{mode}"],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=600,
            )
            if r.returncode != 0:
                print(r.stderr[-2000:])
                raise SystemExit(1)
            got |= json.loads(r.stdout.strip().splitlines()[-1])
        label = "without *_zh (peer)" if variant == "no_zh" else "with *_zh (shipped)"
        print(
            f"  {label:22} response {got['bytes'] / 1e6:6.2f} MB  growth {got['as_test']:6.1f} / {got['trimmed']:6.1f} MB"
        )


def part_export(rows: int) -> None:
    from app.core.config import Settings
    from app.jobs import export
    from app.pipeline import present
    from app.pipeline.engine import build_pipeline

    s = Settings()
    pipeline = build_pipeline(s.lexicon_dir, s.models_dir)
    bodies_one = [present.analysis(pipeline.analyze(t), pipeline.versions) for t in TEXTS]
    tmp = Path(tempfile.mkdtemp(prefix="bench-zh-export-"))
    upload = tmp / "upload.csv"
    with open(upload, "w", encoding="utf-8") as f:
        f.write("review_id,content,agent,channel,date,note\n")
        for i in range(rows):
            f.write(f"r{i},{TEXTS[i % len(TEXTS)]},a{i % 17},{'app' if i % 2 else 'web'},2026-11-{1 + i % 28:02d},x\n")
    bodies = [
        (i, json.dumps({"row": i + 1, **bodies_one[i % len(TEXTS)], "id": f"r{i}"}, ensure_ascii=False))
        for i in range(rows)
    ]
    params = {"format": "csv", "text_column": "content", "id_column": "review_id", "encoding": "utf-8"}

    def codes() -> int:
        return sum(len(c) for c in export.csv_stream(bodies, "reviews", bom=True))

    def readable() -> int:
        originals = export.OriginalRows.from_upload(upload, params)
        return sum(len(c) for c in export.readable_csv_stream(bodies, originals, "reviews"))

    print(f"export: {rows} review rows, best of 3")
    for label, fn in (("codes CSV (peer)", codes), ("readable CSV", readable)):
        best, size = float("inf"), 0
        for _ in range(3):
            t = time.perf_counter()
            size = fn()
            best = min(best, time.perf_counter() - t)
        print(f"  {label:18} {rows / best:10,.0f} rows/s  {size / 1e6:6.2f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="batch,export", help="parts to run: batch, export")
    ap.add_argument("--rows", type=int, default=20_000, help="export: rows")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(batch_variant(*args.variant.split(":"))))
        return
    os.environ.setdefault("PINGJIA_DATA_DIR", tempfile.mkdtemp(prefix="bench-zh-data-"))
    parts = set(args.only.split(","))
    if "batch" in parts:
        part_batch()
    if "export" in parts:
        part_export(args.rows)


if __name__ == "__main__":
    main()
