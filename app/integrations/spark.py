"""Pingjia on Apache Spark: the real pipeline as a DataFrame transformation, and the 差评报表 of
its output computed in Spark.

::

    from app.integrations.spark import local_session, report, score

    spark = local_session("local[2]")                 # or your cluster's session
    scored = score(spark.read.parquet("reviews/"), text_col="content", id_col="review_id")
    scored.write.parquet("scored/")
    summary = report(spark.read.parquet("scored/"), group_cols=["channel"], date_col="created_at")

``score`` runs ``Pipeline.analyze_batch`` on every Arrow batch in Spark's Python workers
(``mapInPandas``; :mod:`app.integrations.spark_worker`), each worker loading the models once.
The output table is fixed and documented (:mod:`app.integrations.spark_schema`, docs/spark.md).
``report`` (:mod:`app.integrations.spark_report`) returns what ``GET /v1/jobs/{id}/summary``
returns for the same rows. Models and lexicons reach executors as an archive Spark ships
(``ship_assets``) unless every executor can read them at a path (local mode, a shared mount).
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, LongType, StringType, StructField, StructType

from app.conversations import Limits
from app.core.config import get_settings
from app.integrations.spark_report import report
from app.integrations.spark_schema import DERIVED_CHAT_COLUMNS, columns, ddl
from app.integrations.spark_worker import Assets, ScoreFrames, derived_names
from app.pipeline.artifacts import pointer

__all__ = ["Assets", "local_session", "number_rows", "pack_assets", "report", "score", "ship_assets", "task_count"]

KINDS = ("reviews", "conversations")
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
ARCHIVE_NAME = "pingjia_assets"
"""The folder name ``spark-submit --archives pingjia-assets.tar.gz#pingjia_assets`` unpacks to."""


def local_session(master: str = "local[2]", *, app_name: str = "pingjia", conf: dict | None = None) -> SparkSession:
    """A SparkSession for this machine: Python workers run this interpreter (with Pingjia
    installed), the UI is off, few shuffle partitions, Spark's own logging at ERROR."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    defaults = {
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
    }
    for key, value in {**defaults, **(conf or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# --- models and lexicons for executors ---------------------------------------------------------
def _served_files(models_dir: Path, lexicon_dir: Path) -> list[tuple[Path, str]]:
    """(file, name in the archive): ``models/current.json``, the served version of each model,
    every lexicon file."""
    files = [(models_dir / "current.json", "models/current.json")]
    for kind, version in sorted(pointer(models_dir).items()):
        folder = models_dir / kind / version
        files += [(p, f"models/{kind}/{version}/{p.relative_to(folder)}") for p in sorted(folder.rglob("*"))]
    files += [(p, f"lexicons/{p.relative_to(lexicon_dir)}") for p in sorted(lexicon_dir.rglob("*"))]
    return [(p, name) for p, name in files if p.is_file()]


def pack_assets(out: str | Path | None = None, models_dir: Path | None = None, lexicon_dir: Path | None = None) -> Path:
    """A ``.tar.gz`` of the served models and the lexicons (``models/`` + ``lexicons/``, about
    14 MB), named by its content's digest unless ``out`` is given, for ``--archives``."""
    s = get_settings()
    models_dir, lexicon_dir = Path(models_dir or s.models_dir), Path(lexicon_dir or s.lexicon_dir)
    files = _served_files(models_dir, lexicon_dir)
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode() + b"\0" + path.read_bytes())
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="pingjia-assets-")) / f"pingjia-assets-{digest.hexdigest()[:12]}.tar.gz"
        atexit.register(shutil.rmtree, out.parent, True)
    out = Path(out)
    with tarfile.open(out, "w:gz") as tar:
        for path, name in files:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return out


_SHIPPED: dict[tuple[int, str], Assets] = {}


def ship_assets(spark: SparkSession, models_dir: Path | None = None, lexicon_dir: Path | None = None) -> Assets:
    """Pack the served models and lexicons and add them to the Spark context
    (``SparkContext.addArchive``): every executor unpacks them, no shared filesystem needed.
    Once per context and content."""
    archive = pack_assets(None, models_dir, lexicon_dir)
    key = (id(spark.sparkContext), archive.name)
    if key not in _SHIPPED:
        spark.sparkContext.addArchive(str(archive))
        _SHIPPED[key] = Assets(archive=archive.name)
    return _SHIPPED[key]


def default_assets(spark: SparkSession) -> Assets:
    """Local mode reads the service's own folders; any other master gets them shipped."""
    if spark.sparkContext.master.startswith("local"):
        s = get_settings()
        return Assets(models_dir=str(Path(s.models_dir).resolve()), lexicon_dir=str(Path(s.lexicon_dir).resolve()))
    return ship_assets(spark)


# --- scoring ---------------------------------------------------------------------------------
def number_rows(df: DataFrame, name: str = "row") -> tuple[DataFrame, int]:
    """``df`` with ``name`` = 1, 2, … in Spark's read order (a file's own order), and the number
    of rows; computed in the JVM: one count per partition, then each row's offset (no Python, no
    shuffle)."""
    pid, mid = "__pingjia_pid", "__pingjia_mid"
    df = df.withColumn(pid, F.spark_partition_id()).withColumn(mid, F.monotonically_increasing_id())
    counts = dict(df.groupBy(pid).count().collect())
    offsets, seen = {}, 0
    for p in sorted(counts):
        offsets[p], seen = seen, seen + counts[p]
    offset = F.create_map(*[F.lit(x) for p, o in offsets.items() for x in (p, o)]) if offsets else F.lit(None)
    local = F.col(mid) - F.shiftleft(F.col(pid).cast("long"), 33)
    return df.withColumn(name, (offset[F.col(pid)] + local + 1).cast("long")).drop(pid, mid), seen


TASK_ROWS = 50_000
"""Rows per scoring task when an input must be spread (a task of a 2-core machine: ~20 s)."""


def task_count(rows: int, cores: int) -> int:
    """Tasks to score ``rows`` in: at least twice the cores, and one per ``TASK_ROWS`` rows, so a
    core slowed by other work does not finish the last long task alone.

    >>> task_count(20_000, 2), task_count(1_000_000, 2)
    (4, 20)
    """
    return max(2 * cores, -(-rows // TASK_ROWS))


def _limits() -> dict:
    """The conversation limits from Settings, as the (picklable) dict the workers take."""
    return dataclasses.asdict(Limits.from_settings(get_settings()))


def score(
    df: DataFrame,
    text_col: str = "text",
    id_col: str | None = "id",
    kind: str = "reviews",
    *,
    keep: Sequence[str] | None = None,
    assets: Assets | None = None,
    partitions: int | None = None,
    row_col: str | None = None,
    error_col: str | None = None,
    rows: int | None = None,
) -> DataFrame:
    """Score every row of ``df`` with the served pipeline (lazily: nothing runs until the result
    is written or collected).

    ``text_col`` holds the review text, or for ``kind="conversations"`` the transcript (a JSON
    string: the conversation object or its list of turns; an array of turn structs; a struct with
    ``turns``). ``id_col``: its value (as text) is the row's ``id``, the row number when empty;
    ``"id"`` may be absent (row numbers), another name must exist. ``keep``: input columns carried
    into the output (default: all but the id, row and error columns); keep the text column for
    ``report()`` to show examples. ``assets``: where executors find models and lexicons (default:
    the service's folders in local mode, else shipped with ``ship_assets``). ``partitions``: how
    many tasks (default: twice the cores when the input has fewer partitions than cores).
    ``row_col``: a column already numbering the rows from 1 (default: Spark's read order);
    ``rows``: how many rows it numbers, when known (sizes the tasks of a small input).
    ``error_col``: a struct<code, message> column marking rows already known to be bad (they
    get that error instead of being scored).

    Output: ``row``, ``id``, the kept columns, then the kind's columns (docs/spark.md).
    Raises ValueError for a missing column, or a kept column named like an output column."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, not {kind!r}")
    for what, name in (("column", text_col), ("row column", row_col), ("error column", error_col)):
        if name is not None and name not in df.columns:
            raise ValueError(f"{what} {name!r} not found; the columns are {df.columns}")
    if id_col is not None and id_col != "id" and id_col not in df.columns:
        raise ValueError(f"id column {id_col!r} not found; the columns are {df.columns}")
    special = {id_col, row_col, error_col}
    keep = [c for c in df.columns if c not in special] if keep is None else list(keep)
    missing = [c for c in keep if c not in df.columns]
    if missing:
        raise ValueError(f"keep: {missing} not in the input; the columns are {df.columns}")
    clash = sorted(set(keep) & {name for name, _, _ in columns(kind)})
    if clash:
        raise ValueError(f"input columns {clash} are named like output columns: rename them or leave them out of keep")
    derived = derived_names(set(df.columns)) if kind == "conversations" else ()
    if row_col is None:
        (df, rows), row_col = number_rows(df, "__pingjia_row"), "__pingjia_row"
    row = F.col(f"`{row_col}`").cast("long")
    rid = row.cast("string")
    if id_col is not None and id_col in df.columns:
        rid = F.coalesce(F.nullif(F.col(f"`{id_col}`").cast("string"), F.lit("")), rid)
    inputs = keep + [c for c in (text_col, error_col) if c is not None and c not in keep]
    frame = df.select(row.alias("row"), rid.alias("id"), *[F.col(f"`{c}`") for c in inputs])
    schema = StructType(
        [
            StructField("row", LongType(), False),
            StructField("id", StringType(), False),
            *[df.schema[c] for c in keep],
            *DataType.fromDDL(ddl(columns(kind)[2:])).fields,
            *[StructField(name, StringType()) for name, _, _ in DERIVED_CHAT_COLUMNS if name in derived],
        ]
    )
    assets = assets or default_assets(df.sparkSession)
    fn = ScoreFrames(kind, text_col, tuple(keep), assets, _limits(), derived, error_col, get_settings().job_chunk_rows)
    return _spread(frame, partitions, rows).mapInPandas(fn, schema)


def _spread(frame: DataFrame, partitions: int | None, rows: int | None) -> DataFrame:
    """Enough tasks for every core: an input with fewer partitions than cores (one CSV file, a
    small Parquet file) is spread by a hash of the row number (``task_count`` tasks)."""
    cores = frame.sparkSession.sparkContext.defaultParallelism
    if partitions:
        return frame.repartition(partitions, "row")
    if frame.rdd.getNumPartitions() < cores:
        return frame.repartition(task_count(rows or 0, cores), "row")
    return frame
