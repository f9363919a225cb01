"""What runs in Spark's Python workers: score Arrow batches on the real pipeline, and sum a
partition's report counters.

Spark pickles the callables below (``ScoreFrames``, ``AccumulateFrames``, ``DateFlags``) by
reference to this module, so importing it must stay cheap: the pipeline, the conversation
engine and the jobs' scoring code are imported on the first batch, not here. Each worker
process builds the pipeline once and keeps it (``_ENGINE``, keyed by the models' and lexicons'
paths, the versions ``current.json`` names and the lexicon files' stat), so a worker Spark
reuses for the next task does not load again. Batches are taken as Spark hands them over
(``spark.sql.execution.arrow.maxRecordsPerBatch`` rows, never gathered into a bigger frame)
and analysed in slices of at most ``job_chunk_rows`` (500, what one job chunk analyses): one
``Pipeline.analyze_batch`` (or ``analyze_conversations``) call per slice, whose rows are yielded
at once, so a worker's memory is a job worker's whatever the Arrow batch size.

A bad row gets its ``error_code``/``error_message`` (the batch API's codes) and the others are
scored; an unexpected exception while scoring a batch is retried row by row, and only the row
that raises gets ``scoring_failed``: a task never fails because of one row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from app.integrations.spark_schema import DERIVED_CHAT_COLUMNS, columns


# --- models and lexicons on the executor ------------------------------------------------
@dataclass(frozen=True)
class Assets:
    """Where a worker finds ``models/`` and ``lexicons/``: two paths every executor can read
    (local mode, a shared mount, an image), or the name of an archive Spark unpacked on each
    executor (``SparkContext.addArchive`` or ``spark-submit --archives FILE#name``)."""

    models_dir: str | None = None
    lexicon_dir: str | None = None
    archive: str | None = None

    def paths(self) -> tuple[Path, Path]:
        """(models dir, lexicon dir) on this machine; raises FileNotFoundError saying what is missing."""
        if self.archive:
            root = archive_root(self.archive)
            return root / "models", root / "lexicons"
        if not (self.models_dir and self.lexicon_dir):
            raise ValueError("Assets needs models_dir and lexicon_dir, or archive")
        return Path(self.models_dir), Path(self.lexicon_dir)


def archive_root(name: str) -> Path:
    """The folder an archive shipped as ``name`` was unpacked into on this executor: Spark's
    files directory (``addArchive``, ``--archives`` on standalone/Kubernetes/local), else the
    working directory (``--archives`` on YARN)."""
    from pyspark import SparkFiles  # lazy: only on an executor, where pyspark is at hand

    tried = []
    for base in (Path(SparkFiles.getRootDirectory()), Path.cwd()):
        root = base / name
        tried.append(str(root))
        if (root / "models").is_dir() and (root / "lexicons").is_dir():
            return root
        nested = [p for p in root.glob("*") if (p / "models").is_dir() and (p / "lexicons").is_dir()]
        if len(nested) == 1:  # an archive that holds one top folder
            return nested[0]
    raise FileNotFoundError(
        f"the Pingjia assets archive {name!r} is not on this executor (looked in {', '.join(tried)}); "
        "ship it with spark-submit --archives pingjia-assets.tar.gz#" + name
    )


@dataclass
class Engine:
    """One worker's loaded pipeline, and the conversation rules once a chat batch needed them."""

    pipeline: Any
    lexicon_dir: Path
    rules: Any = None

    def chat_rules(self):
        if self.rules is None:
            from app.conversations import load_conversation_rules  # lazy: see the module docstring

            self.rules = load_conversation_rules(self.lexicon_dir)
        return self.rules


_ENGINE: dict[tuple, Engine] = {}
"""This worker process's engine, by key (one entry: a new key replaces the old one)."""


def engine_key(models: Path, lexicons: Path, max_text_chars: int) -> tuple:
    """What a loaded pipeline depends on: paths, the versions served, the lexicon files as they stand."""
    from app.pipeline.artifacts import pointer

    stats = tuple(
        (str(p.relative_to(lexicons)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(lexicons.rglob("*"))
        if p.is_file()
    )
    return (str(models), str(lexicons), tuple(sorted(pointer(models).items())), stats, max_text_chars)


def engine(assets: Assets, max_text_chars: int) -> Engine:
    """This process's engine for ``assets``, built on first use (about a second) and then kept."""
    models, lexicons = assets.paths()
    key = engine_key(models, lexicons, max_text_chars)
    found = _ENGINE.get(key)
    if found is None:
        from app.pipeline.engine import build_pipeline  # lazy: see the module docstring

        _ENGINE.clear()  # one pipeline per worker: a new version replaces the old one
        found = _ENGINE[key] = Engine(build_pipeline(lexicons, models, max_text_chars=max_text_chars), lexicons)
        BUILDS.append(key)
    return found


BUILDS: list[tuple] = []
"""Every engine this process built (its key): one per worker unless models or lexicons changed."""


def worker_state(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """A ``mapInPandas`` probe (schema ``pid BIGINT, builds BIGINT``): which Python worker ran
    the task, and how many pipelines it has built so far (tests; checking a cluster's reuse)."""
    for _ in frames:
        pass
    yield pd.DataFrame({"pid": [os.getpid()], "builds": [len(BUILDS)]})


# --- scoring -----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A pandas/numpy cell as the plain Python value a JSON decoder would give (nested too)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:  # NaN: pandas' null in a float column
        return None
    return value


def conversation_payload(value: Any) -> dict | tuple[str, str]:
    """A transcript cell -> the conversation object ``POST /v1/conversations/analyze`` takes, or
    the ``(code, message)`` of a bad row. A cell is a JSON string (an object with ``turns``, or
    the list of turns), an array of turn structs, or a struct with a ``turns`` field."""
    value = _plain(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            return ("invalid_conversation", f"the transcript is not valid JSON ({exc})")
    if isinstance(value, list):
        value = {"turns": value}
    if not isinstance(value, dict) or not isinstance(value.get("turns"), list):
        return ("invalid_conversation", "a conversation needs a 'turns' list")
    return value


@dataclass(frozen=True)
class ScoreFrames:
    """The ``mapInPandas`` function of :func:`app.integrations.spark.score`.

    In: ``row``, ``id`` (text, already defaulted to the row number), ``text_col`` and the
    ``keep`` columns. Out: ``row``, ``id``, ``keep``, then the kind's columns
    (:mod:`app.integrations.spark_schema`), plus ``derived`` chat columns."""

    kind: str
    text_col: str
    keep: tuple[str, ...]
    assets: Assets
    limits: dict[str, Any]  # every field of app.conversations.Limits (from Settings), as a dict
    derived: tuple[str, ...] = ()
    error_col: str | None = None  # struct<code, message>: a row known to be bad before scoring
    slice_rows: int = 500  # Settings.job_chunk_rows: what one job chunk analyses at once

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        eng = engine(self.assets, self.limits["max_text_chars"])
        for pdf in frames:  # each Arrow batch as Spark cuts it (maxRecordsPerBatch) ...
            for start in range(0, len(pdf), self.slice_rows):  # ... in slices: memory stays a job worker's
                yield self.score_frame(eng, pdf.iloc[start : start + self.slice_rows])

    def score_frame(self, eng: Engine, pdf: pd.DataFrame) -> pd.DataFrame:
        """One slice of an Arrow batch -> its output rows, in the same order."""
        from app.integrations import spark_rows  # lazy: see the module docstring

        ids = [str(x) for x in pdf["id"]]
        rows = [int(x) for x in pdf["row"]]
        values = [_plain(v) for v in pdf[self.text_col]]
        known = [_known_error(e) for e in pdf[self.error_col]] if self.error_col else [None] * len(values)
        if self.kind == "reviews":
            out = spark_rows.review_rows(eng.pipeline, values, ids, known)
        else:
            payloads = [k or conversation_payload(v) for v, k in zip(values, known)]
            out = spark_rows.conversation_rows(
                eng.pipeline, eng.chat_rules(), self.limits, payloads, ids, rows, self.derived
            )
        names = [name for name, _, _ in columns(self.kind)][2:] + list(self.derived)
        frame = {"row": rows, "id": ids}
        frame |= {k: pdf[k].to_numpy() for k in self.keep}
        frame |= {name: [r.get(name) for r in out] for name in names}
        return pd.DataFrame(frame)


def _known_error(value: Any) -> tuple[str, str] | None:
    value = _plain(value)
    return None if not value else (value["code"], value["message"])


def derived_names(existing: set[str]) -> tuple[str, ...]:
    """The derived chat columns the input does not already have (an input column wins, as a
    transcript's own field wins in ``pingjia score``)."""
    return tuple(name for name, _, _ in DERIVED_CHAT_COLUMNS if name not in existing)


# --- the report's counters ---------------------------------------------------------------
COUNTER_SCHEMA = (
    "`part` STRING, `dim` STRING, `key` STRING, `metric` STRING, `n` BIGINT, `neg` BIGINT, `pos` BIGINT, "
    "`row` BIGINT, `data` STRING"
)
"""One partition's counters as rows: ``part`` is ``count`` (dim, key, metric, n), ``term``
(metric = the term, n = texts, neg, pos, row = its first negative row) or ``example``
(dim, key, metric = the code, row, data); Spark sums them (:mod:`app.integrations.spark_report`)."""


@dataclass(frozen=True)
class AccumulateFrames:
    """The ``mapInPandas`` function of ``report()``: the jobs' own ``Accumulator``
    (:mod:`app.jobs.report`) over a partition's rows, in row order, exactly as a job worker fills
    one per chunk; the partitions' counters are then summed by Spark as the job store sums chunks'.

    In: ``row``, ``id``, ``error_code``, ``report_facts`` and ``v0``, ``v1`` … the text values of
    the group columns, then the date column, then the QA columns (agent_id, channel)."""

    group_cols: tuple[str, ...]
    date_col: str | None
    date_epoch: bool
    qa_cols: tuple[str, ...] | None  # None: reviews (no QA counters)

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from app.jobs.report import Accumulator  # lazy: see the module docstring

        total = Accumulator()
        for pdf in frames:
            acc = Accumulator()
            self.add_frame(acc, pdf.sort_values("row", kind="stable"))
            total.merge(acc)  # lowest row wins for examples, as between a job's chunks
        yield counter_frame(total)

    def add_frame(self, acc, pdf: pd.DataFrame) -> None:
        from app.jobs.report import parse_day

        n_groups, qa = len(self.group_cols), self.qa_cols
        values = [pdf[f"v{i}"].tolist() for i in range(n_groups + (self.date_col is not None) + len(qa or ()))]
        cols = list(zip(*values)) if values else [()] * len(pdf)
        for row, rid, code, facts, vals in zip(
            pdf["row"].tolist(), pdf["id"].tolist(), pdf["error_code"].tolist(), pdf["report_facts"].tolist(), cols
        ):
            vals = ["" if v is None else v for v in vals]
            day_value = vals[n_groups] if self.date_col is not None else None
            acc.add(
                int(row) - 1,
                None if code is not None else row_facts(facts),
                error=code,
                groups=dict(zip(self.group_cols, vals[:n_groups])),
                day=parse_day(day_value, allow_epoch=self.date_epoch) if self.date_col is not None else None,
                dated=self.date_col is not None,
                qa_groups=None if qa is None else dict(zip(qa, vals[len(vals) - len(qa) :])),
                row_id=rid,
            )


def row_facts(d: dict):
    """The ``report_facts`` struct of a row (as pandas hands it over) -> the jobs' ``RowFacts``."""
    from app.jobs.report import QAFacts, RowFacts

    qa = d.get("qa")
    return RowFacts(
        d["label"],
        tuple(_plain(d["causes"]) or ()),
        tuple((a["aspect"], a["polarity"]) for a in _plain(d["aspects"]) or ()),
        frozenset(_plain(d["terms"]) or ()),
        None
        if qa is None
        else QAFacts(
            qa["score"],
            qa["grade"],
            qa["resolution"],
            _plain(qa["first_response_seconds"]),
            tuple((v["code"], v["turn"], v["text"]) for v in _plain(qa["violations"]) or ()),
            bool(qa["applicable"]),
            tuple((x["code"], x["score"]) for x in _plain(qa["dimensions"]) or ()),
        ),
        mixed=bool(d.get("mixed")),
    )


def counter_frame(acc) -> pd.DataFrame:
    """An ``Accumulator`` as ``COUNTER_SCHEMA`` rows."""
    rows: list[tuple] = [("count", d, k, m, n, None, None, None, None) for (d, k, m), n in acc.counts.items()]
    rows += [("term", None, None, t, a, neg, pos, ex, None) for t, (neg, pos, a, ex) in acc.terms.items()]
    rows += [("example", d, k, m, None, None, None, row, data) for (d, k, m), (row, data) in acc.examples.items()]
    frame = pd.DataFrame.from_records(rows, columns=["part", "dim", "key", "metric", "n", "neg", "pos", "row", "data"])
    for col in ("n", "neg", "pos", "row"):
        frame[col] = frame[col].astype("Int64")
    return frame


@dataclass(frozen=True)
class DateFlags:
    """The ``mapInPandas`` function that profiles columns for the report plan: whether each
    distinct ``value`` of column ``name`` is a date (``parse_day``; epoch numbers only for a
    column whose name says it holds times, ``hints``), as the jobs' column profiler decides."""

    hints: dict[str, bool]

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from app.jobs.report import parse_day

        for pdf in frames:
            pdf = pdf.copy()
            pdf["date"] = [
                parse_day(v, allow_epoch=self.hints.get(n, False)) is not None
                for n, v in zip(pdf["name"].tolist(), pdf["value"].tolist())
            ]
            yield pdf
