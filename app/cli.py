"""``pingjia``: analyse a text, score a file, or serve the API."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

from app.core.config import get_settings

CHUNK = 256
_worker_pipeline = None


def _load():
    from app.pipeline.engine import build_pipeline

    s = get_settings()
    return build_pipeline(s.lexicon_dir, s.models_dir, max_text_chars=s.max_text_chars)


def _init_worker():
    global _worker_pipeline
    _worker_pipeline = _load()


def _score_chunk(rows: list[dict]) -> list[dict]:
    """Score one chunk in a worker; returns JSON-ready rows in input order."""
    from app.api import present
    from app.pipeline.engine import TextItem
    from app.pipeline.findings import ItemError

    p = _worker_pipeline
    results = p.analyze_batch([TextItem(r["text"], r["id"]) for r in rows])
    return [present.item_error(r) if isinstance(r, ItemError) else present.analysis(r, p.versions)
            for r in results]


def _chunks(rows: Iterator, size: int) -> Iterator[list[dict]]:
    while chunk := [rec for _, rec in islice(rows, size)]:
        yield chunk


def flat_row(result: dict) -> dict:
    """One CSV row per result: the figures a spreadsheet user filters on."""
    if "error" in result:
        return {"id": result["id"], "error": result["error"]["code"]}
    probs = result["sentiment"]["probabilities"]
    return {
        "id": result["id"], "sentiment": result["sentiment"]["label"],
        "p_positive": probs["positive"], "p_neutral": probs["neutral"], "p_negative": probs["negative"],
        "root_causes": "|".join(c["cause"] for c in result["root_causes"]),
        "aspects": "|".join(f"{a['aspect']}:{a['polarity']}" for a in result["aspects"]),
        "keywords": "|".join(f"{k['term']}:{k['polarity']}" for k in result["keywords"]),
        "error": "",
    }


CSV_FIELDS = ["id", "sentiment", "p_positive", "p_neutral", "p_negative", "root_causes",
              "aspects", "keywords", "error"]


def cmd_analyze(args) -> int:
    from app.api import present
    from app.core.errors import PingjiaError

    text = args.text if args.text != "-" else sys.stdin.read()
    p = _load()
    try:
        result = present.analysis(p.analyze(text, top_terms=args.top_terms), p.versions,
                                  with_terms=bool(args.top_terms))
    except PingjiaError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}, ensure_ascii=False))
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def cmd_score(args) -> int:
    from tqdm import tqdm

    from app.io import InputFormatError, file_format, open_text, read_rows

    fmt_in = file_format(args.input) if args.input != "-" else "jsonl"
    fmt_out = file_format(args.output) if args.output != "-" else "jsonl"
    workers = max(1, args.workers or os.cpu_count() or 1)
    with open_text(args.input) as src, open_text(args.output, "w") as dst:
        rows = read_rows(src, fmt_in, text_column=args.text_column, id_column=args.id_column)
        writer = csv.DictWriter(dst, CSV_FIELDS) if fmt_out == "csv" else None
        if writer:
            writer.writeheader()
        bar = tqdm(unit=" rows", disable=args.quiet, file=sys.stderr)
        try:
            if workers == 1:
                _init_worker()
                results = map(_score_chunk, _chunks(rows, CHUNK))
                _write_all(results, writer, dst, bar)
            else:
                # imap keeps input order and only a few chunks in flight: memory stays flat.
                with get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                    _write_all(pool.imap(_score_chunk, _chunks(rows, CHUNK)), writer, dst, bar)
        except InputFormatError as exc:
            print(f"pingjia score: {args.input}: {exc}", file=sys.stderr)
            return 2
        finally:
            bar.close()
    return 0


def _write_all(chunks, writer, dst, bar) -> None:
    for results in chunks:
        for r in results:
            if writer:
                writer.writerow(flat_row(r))
            else:
                dst.write(json.dumps(r, ensure_ascii=False) + "\n")
        bar.update(len(results))


def cmd_serve(args) -> int:
    import uvicorn

    s = get_settings()
    uvicorn.run("app.main:app", host=args.host or s.host, port=args.port or s.port,
                workers=args.workers, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pingjia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="analyse one text and print the JSON finding")
    p.add_argument("text", help="the text, or - to read stdin")
    p.add_argument("--top-terms", type=int, default=0)
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("score", help="score a CSV or JSONL file, streaming")
    p.add_argument("input", help="input .csv or .jsonl (- for JSONL on stdin)")
    p.add_argument("-o", "--output", required=True, help="output .jsonl or .csv (- for stdout)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column", default="id")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
