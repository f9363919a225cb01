"""``pingjia score``: a job run locally on the jobs engine, with a progress bar.

The input is ingested exactly as an upload would be (same validation, same work file
and chunks) into a throw-away job store; the models are loaded once, in this process (the
progress bar names what is loading); chunks are scored by the same worker loop, in this
process for one worker, otherwise in worker processes forked after loading, which share the
models copy-on-write instead of each loading its own. The output and the report are then read
back from the store in input order. Memory stays flat whatever the input size; the temporary
store needs about 1 KB of disk per row.

Without ``--workers`` the worker count follows the input size: below ``ONE_WORKER_BELOW``
rows one worker finishes first (starting and feeding a second process costs more than it
saves), above it every core works.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from app.conversations import Limits, load_conversation_rules
from app.jobs import export, service
from app.jobs.ingest import InputSpec
from app.jobs.scoring import ConversationScorer, Scorers
from app.jobs.store import open_store
from app.jobs.upload import open_private
from app.jobs.worker import LOG_FORMAT, JobRunner
from app.jobs.workfile import read_chunk
from app.pipeline.engine import build_pipeline


@dataclass
class ScoreOptions:
    input: str
    output: str
    summary: str | None = None
    spec: InputSpec = InputSpec()
    workers: int = 0  # 0: chosen from the input size (choose_workers)
    quiet: bool = False
    work_dir: str | None = None
    keep_work_dir: bool = False
    bom: bool = True  # CSV output: a UTF-8 BOM, so Excel reads the Chinese
    columns: str = "readable"  # CSV output: readable (the input's columns + findings in Chinese) or codes


@dataclass
class ScoreResult:
    """What a local run returns: the job's status and its report (the 差评报表; None when
    neither written, ``summary``, nor shown, ``quiet``)."""

    status: dict
    report: dict | None


def score_file(opts: ScoreOptions, settings) -> ScoreResult:
    """Score ``opts.input`` into ``opts.output`` (+ the report file); returns the job status and
    the report. Standard input is copied into the job folder first when the output is the
    readable CSV, which re-reads the input's rows; otherwise it is read as it comes."""
    tmp = Path(tempfile.mkdtemp(prefix="pingjia-score-", dir=opts.work_dir))
    # Workers at normal priority: here no API needs the CPU first (the service runs them nicer).
    local = settings.model_copy(
        update={"data_dir": tmp, "jobs_db_url": None, "job_workers": opts.workers, "job_worker_nice": 0}
    )
    store = open_store(service.db_url(local))
    try:
        job_id, folder = service.new_job_dir(local)
        if opts.input != "-":
            source: Path | None = Path(opts.input)
            with open(source, "rb") as src:
                rec = service.submit_stream(store, local, job_id, folder, opts.spec, src, source.name)
        elif _readable_csv(opts):  # kept where the export looks for a job's upload
            with open_private(folder / service.UPLOAD_FILE) as copy:
                shutil.copyfileobj(sys.stdin.buffer, copy)
            source = None
            with open(folder / service.UPLOAD_FILE, "rb") as src:
                rec = service.submit_stream(store, local, job_id, folder, opts.spec, src, "stdin.jsonl")
        else:
            source = None
            rec = service.submit_stream(store, local, job_id, folder, opts.spec, sys.stdin.buffer, "stdin.jsonl")
        _run(store, local, rec, opts)
        rec = store.get_job(job_id)
        _write_output(store, rec, opts, source)
        report = None
        if opts.summary or not opts.quiet:
            report = {**service.summary(store, rec), "job_id": None, "input": opts.input}
        if opts.summary:
            Path(opts.summary).write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        return ScoreResult(service.status_view(store, rec), report)
    finally:
        store.close()
        if not opts.keep_work_dir:
            shutil.rmtree(tmp, ignore_errors=True)


ONE_WORKER_BELOW = 2_000
"""Rows under which one worker is as fast as two or faster (measured on 2 cores: 1,000 rows 2.6-3.0 s
either way, start-up dominates; 5,000 rows 5.3 s with one, 4.0 s with two)."""


def choose_workers(rows: int, requested: int = 0, cores: int | None = None) -> int:
    """The worker count: ``requested`` if given, else one for a small input and every core
    for a large one.

    >>> choose_workers(1_000, cores=2), choose_workers(100_000, cores=2), choose_workers(1_000, 2, cores=2)
    (1, 2, 2)
    """
    if requested > 0:
        return requested
    cores = cores or os.cpu_count() or 1
    return 1 if rows < ONE_WORKER_BELOW else cores


def _run(store, settings, rec, opts: ScoreOptions) -> None:
    import tqdm as tqdm_module
    from tqdm import tqdm

    # No tqdm monitor thread: the workers are forked from this process, which must then have
    # one thread only.
    tqdm_module.tqdm.monitor_interval = 0
    workers = choose_workers(rec.total, opts.workers)
    bar = tqdm(total=rec.total, unit=" rows", disable=opts.quiet, file=sys.stderr, desc="loading models")
    worker_log = Path(settings.data_dir) / "workers.log"
    try:
        with logs_around_the_bar(worker_log):
            scorers = _load(settings, bar)
            bar.set_description_str(f"scoring, {workers} worker{'s' if workers > 1 else ''}")
            if workers <= 1:
                _run_here(store, scorers, bar)
            else:
                _run_processes(store, settings, rec, workers, bar, scorers)
    finally:
        bar.close()
        _replay(worker_log)


@contextmanager
def logs_around_the_bar(worker_log: Path) -> Iterator[None]:
    """Log lines never tear the progress bar: this process's are written above it
    (``tqdm.write``); the forked workers' (which share stderr but not the bar) go to
    ``worker_log``, replayed once the bar is closed (``_replay``)."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    root, here = logging.getLogger(), os.getpid()
    to_file = logging.FileHandler(worker_log, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    to_file.setLevel(logging.WARNING)
    to_file.addFilter(lambda r: r.process != here)
    before = set(root.handlers)
    with logging_redirect_tqdm():
        for h in root.handlers:
            if h not in before:  # the tqdm handler: this process's lines only
                h.addFilter(lambda r: r.process == here)
        root.addHandler(to_file)
        try:
            yield
        finally:
            root.removeHandler(to_file)
            to_file.close()


def _replay(worker_log: Path) -> None:
    """The workers' warnings and errors (all ``worker_log`` holds), on stderr after the bar."""
    if worker_log.is_file():
        sys.stderr.write(worker_log.read_text(encoding="utf-8", errors="replace"))


_on_stage: ContextVar[Callable[[str], None] | None] = ContextVar("pingjia_score_on_stage", default=None)
"""What the running ``score`` shows while the models load (its progress bar), if anything."""


def load_scorers(settings) -> Scorers:
    """The models, loaded once in this process; each loading stage is shown on the progress bar
    of the running ``score`` (see ``_on_stage``)."""
    pipeline = build_pipeline(
        settings.lexicon_dir, settings.models_dir, max_text_chars=settings.max_text_chars, on_stage=_on_stage.get()
    )

    def conversations():
        return ConversationScorer(
            pipeline, load_conversation_rules(settings.lexicon_dir), Limits.from_settings(settings)
        )

    return Scorers(pipeline, conversations)


def _load(settings, bar) -> Scorers:
    token = _on_stage.set(lambda name: bar.set_description_str(f"loading {name}"))
    try:
        return load_scorers(settings)
    finally:
        _on_stage.reset(token)


def _run_here(store, scorers, bar) -> None:
    """One worker: the same claim/score/commit loop, in this process."""
    while claim := store.claim_chunk("local"):
        rows = read_chunk(claim.work_path, claim.byte_offset, claim.n_rows)
        out = scorers.for_kind(claim.kind).score(claim.start_row, rows, claim.params.get("plan", {}))
        store.commit_chunk(claim, out)
        bar.update(claim.n_rows)


def _run_processes(store, settings, rec, workers: int, bar, scorers) -> None:
    """Several workers: the service's JobRunner on the throw-away store, its workers forked
    after the models were loaded here (copy-on-write, like the service's)."""
    runner = JobRunner(service.db_url(settings), settings, workers=workers, inherit=scorers)
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
            time.sleep(0.1)
    finally:
        runner.stop()


def _is_csv(output: str) -> bool:
    return output.lower().endswith((".csv", ".tsv"))


def _readable_csv(opts: ScoreOptions) -> bool:
    """The output is the readable CSV, which reads the input's rows again."""
    return _is_csv(opts.output) and opts.columns != "codes"


def _write_output(store, rec, opts: ScoreOptions, source: Path | None) -> None:
    """Results in input order: JSONL, or CSV (readable: each input row with its findings, read
    again from ``source``, else from the job folder)."""
    output = opts.output
    rows = store.iter_results(rec.jid)
    if _is_csv(output):
        chunks = export.job_csv(rec, rows, columns=opts.columns, bom=opts.bom, upload=source)
    else:
        chunks = export.jsonl_stream(rows)
    dst = sys.stdout.buffer if output == "-" else open(output, "wb")
    try:
        for chunk in chunks:
            dst.write(chunk)
    finally:
        if output != "-":
            dst.close()
        else:
            dst.flush()
