"""``pingjia score``: a job run locally on the jobs engine, with a progress bar.

The input is ingested exactly as an upload would be (same validation, same work file
and chunks) into a throw-away job store; chunks are scored by the same worker loop
(in this process for one worker, in worker processes otherwise); the output and the
report are then read back from the store in input order. Memory stays flat whatever
the input size; the temporary store needs about 1 KB of disk per row.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from app.jobs import export, service
from app.jobs.ingest import InputSpec
from app.jobs.scoring import load_scorers
from app.jobs.store import open_store
from app.jobs.worker import JobRunner
from app.jobs.workfile import read_chunk


@dataclass
class ScoreOptions:
    input: str
    output: str
    summary: str | None = None
    spec: InputSpec = InputSpec()
    workers: int = 1
    quiet: bool = False
    work_dir: str | None = None
    keep_work_dir: bool = False


def score_file(opts: ScoreOptions, settings) -> dict:
    """Score ``opts.input`` into ``opts.output`` (+ the report); returns the job status."""
    tmp = Path(tempfile.mkdtemp(prefix="pingjia-score-", dir=opts.work_dir))
    local = settings.model_copy(update={"data_dir": tmp, "jobs_db_url": None, "job_workers": opts.workers})
    store = open_store(service.db_url(local))
    try:
        job_id, folder = service.new_job_dir(local)
        src = sys.stdin.buffer if opts.input == "-" else open(opts.input, "rb")
        with src if opts.input != "-" else nullcontext(src):
            name = "stdin.jsonl" if opts.input == "-" else Path(opts.input).name
            rec = service.submit_stream(store, local, job_id, folder, opts.spec, src, name)
        _run(store, local, rec, opts)
        rec = store.get_job(job_id)
        _write_output(store, rec, opts.output)
        if opts.summary:
            report = {**service.summary(store, rec), "job_id": None, "input": opts.input}
            Path(opts.summary).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        return service.status_view(store, rec)
    finally:
        store.close()
        if not opts.keep_work_dir:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(store, settings, rec, opts: ScoreOptions) -> None:
    from tqdm import tqdm

    bar = tqdm(total=rec.total, unit=" rows", disable=opts.quiet, file=sys.stderr)
    try:
        if opts.workers <= 1:
            _run_here(store, settings, bar)
        else:
            _run_processes(store, settings, rec, opts.workers, bar)
    finally:
        bar.close()


def _run_here(store, settings, bar) -> None:
    """One worker: the same claim/score/commit loop, in this process."""
    scorers = load_scorers(settings)
    while claim := store.claim_chunk("local"):
        rows = read_chunk(claim.work_path, claim.byte_offset, claim.n_rows)
        out = scorers.for_kind(claim.kind).score(claim.start_row, rows, claim.params.get("plan", {}))
        store.commit_chunk(claim, out)
        bar.update(claim.n_rows)


def _run_processes(store, settings, rec, workers: int, bar) -> None:
    """Several workers: the service's JobRunner on the throw-away store."""
    runner = JobRunner(service.db_url(settings), settings, workers=workers)
    runner.start()
    try:
        seen = 0
        while True:
            now = store.get_job(rec.job_id)
            bar.update(now.done - seen)
            seen = now.done
            if now.finished:
                return
            if runner.deaths >= 2 * workers and now.done == 0:
                raise RuntimeError("the worker processes keep exiting (see their errors above)")
            time.sleep(0.2)
    finally:
        runner.stop()


def _write_output(store, rec, output: str) -> None:
    rows = store.iter_results(rec.jid)
    fmt = "csv" if output.lower().endswith((".csv", ".tsv")) else "jsonl"
    chunks = export.csv_stream(rows, rec.kind) if fmt == "csv" else export.jsonl_stream(rows)
    dst = sys.stdout.buffer if output == "-" else open(output, "wb")
    try:
        for chunk in chunks:
            dst.write(chunk)
    finally:
        if output != "-":
            dst.close()
        else:
            dst.flush()
