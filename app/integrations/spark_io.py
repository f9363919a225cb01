"""``pingjia spark-score``: read CSV, JSONL or Parquet with Spark, score, write Parquet, and the report.

The readers give ``score()`` what ``pingjia score``'s ingest gives a job: rows numbered in file
order, the id and text columns checked, every other scalar field a column (a JSONL ``meta``
object's fields too), CSV rows with the wrong number of fields and JSONL lines that are not
objects marked as bad rows, and file-level problems refused with the jobs' own error codes
(``missing_column``, ``invalid_csv``, ``invalid_jsonl``, ``empty_file`` …) before anything is scored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from app.core.errors import InvalidUpload
from app.integrations.spark import ARCHIVE_NAME, Assets, local_session, number_rows, score
from app.integrations.spark_report import report
from app.jobs.ingest import InputSpec

FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
ROW, LINE, ERROR, CORRUPT = "__pingjia_row", "__pingjia_line", "__pingjia_error", "__pingjia_corrupt"
CONVERSATION = "conversation"  # a JSONL conversation's line, kept whole: the transcript column


@dataclass
class SparkScoreOptions:
    input: str
    output: str
    summary: str | None = None
    master: str | None = None
    spec: InputSpec = InputSpec()  # as ``pingjia score`` reads its input; fmt may also be "parquet"
    text_column_given: bool = False  # False: conversations in Parquet read "turns", not spec's default "text"
    assets: str | None = None
    partitions: int | None = None
    overwrite: bool = False
    quiet: bool = False


@dataclass
class Input:
    df: DataFrame
    text_col: str
    id_col: str | None
    rows: int | None = None  # known when the reader numbered the rows


def input_format(path: str, fmt: str | None) -> str:
    """csv, jsonl or parquet: as given, else from the extension (a folder is Parquet)."""
    if fmt:
        return fmt
    p = Path(path)
    found = FORMATS.get(p.suffix.lower()) or ("parquet" if p.is_dir() else None)
    if found is None:
        raise InvalidUpload(
            f"cannot tell the format of {path!r} from its name; name it .csv, .jsonl or .parquet, or pass --format",
            code="unsupported_format",
        )
    return found


def spark_path(path: str) -> str:
    """A path as Spark must get it: a URI as given, a local path absolute (Spark's JVM may have
    another working directory than this process)."""
    return path if "://" in path else str(Path(path).resolve())


def read_input(spark: SparkSession, opts: SparkScoreOptions) -> Input:
    """The input as ``score()`` takes it (raises InvalidUpload for a file that cannot be one)."""
    if not (Path(opts.input).exists() or "://" in opts.input):
        raise InvalidUpload(f"{opts.input}: no such file or directory", code="missing_file")
    fmt = input_format(opts.input, opts.spec.fmt)
    opts = replace(opts, input=spark_path(opts.input))
    if opts.spec.kind == "conversations" and fmt == "csv":
        raise InvalidUpload("conversations are accepted as JSONL or Parquet only", code="unsupported_format")
    if fmt == "csv":
        inp = _csv(spark, opts)
    elif fmt == "jsonl":
        inp = _jsonl(spark, opts)
    else:
        inp = _parquet(spark, opts)
    if inp.rows == 0 or (inp.rows is None and inp.df.limit(1).count() == 0):
        raise InvalidUpload("the input has no rows", code="empty_file")
    return inp


def _text_col(opts: SparkScoreOptions) -> str:
    """The spec's text column; conversations default to "turns" (in Parquet, the transcript)."""
    spec = opts.spec
    default = spec.text_column == InputSpec.text_column and not opts.text_column_given
    return "turns" if spec.kind == "conversations" and default else spec.text_column


def _csv(spark: SparkSession, opts: SparkScoreOptions) -> Input:
    """Strings only (a CSV has no null: an empty field is ""), quoted line breaks allowed, a row
    with the wrong number of fields marked ``invalid_row``."""
    reader = spark.read.options(multiLine=True, escape='"', encoding=opts.spec.encoding)
    first = reader.csv(opts.input, header=False).first()
    header = [str(h or "").strip() for h in first] if first else []
    if not header:
        raise InvalidUpload("the file is empty (no header row)", code="empty_file")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InvalidUpload(f"line 1: duplicate column names {dupes}", code="invalid_csv")
    text = _text_col(opts)
    for name, what in ((text, "column"), (opts.spec.id_column, "id column")):
        if name is not None and name not in header:
            raise InvalidUpload(f"{what} {name!r} not found; the header (line 1) has {header}", code="missing_column")
    schema = StructType([StructField(h, StringType()) for h in header] + [StructField(CORRUPT, StringType())])
    reader = reader.options(header=True, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
    df = reader.schema(schema).csv(opts.input)
    df, rows = number_rows(df, ROW)
    bad = _error(
        F.col(CORRUPT).isNotNull(),
        F.format_string(f"row %d: the number of fields differs from the header's {len(header)}", F.col(ROW)),
    )
    df = df.select(ROW, *[F.coalesce(F.col(f"`{h}`"), F.lit("")).alias(h) for h in header], bad.alias(ERROR))
    return Input(df, text, opts.spec.id_column or "id", rows)


def _error(when: Column, message: Column) -> Column:
    return F.when(when, F.struct(F.lit("invalid_row").alias("code"), message.alias("message")))


def _jsonl(spark: SparkSession, opts: SparkScoreOptions) -> Input:
    """One JSON object per line (UTF-8), blank lines skipped; a line that is not JSON refuses the
    file, a JSON value that is not an object is a bad row. Scalar fields become text columns in
    the order they first appear, then ``meta``'s; a conversation's line is its transcript."""
    if opts.spec.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise InvalidUpload("spark-score reads JSONL as UTF-8 only; convert the file", code="bad_encoding")
    lines = number_rows(spark.read.text(opts.input), LINE)[0].where(F.trim("value") != "")
    lines, rows = number_rows(lines, ROW)
    lines = lines.withColumn("__v", F.try_parse_json("value")).persist()
    broken = lines.where(F.col("__v").isNull()).select(LINE, "value").orderBy(LINE).first()
    if broken is not None:
        try:
            json.loads(broken["value"])
            why = "not valid JSON (Spark's parser refuses it)"
        except json.JSONDecodeError as exc:
            why = f"column {exc.colno}: not valid JSON ({exc.msg})"
        except (ValueError, RecursionError) as exc:
            why = f"not valid JSON ({exc})"
        raise InvalidUpload(f"line {broken[LINE]}, {why}", code="invalid_jsonl")
    top = _fields(spark, lines, "__v")
    meta = _fields(spark, lines.select(ROW, F.variant_get("__v", "$.meta", "variant").alias("__m")), "__m")
    shape = F.schema_of_variant("__v")
    message = F.format_string("line %d: expected a JSON object, got %s", F.col(LINE), _python_type(shape))
    not_object = _error(~shape.startswith("OBJECT"), message)
    skip = {"meta"} | ({"turns", "profile", _text_col(opts)} if opts.spec.kind == "conversations" else set())
    names = [k for k in top if k not in skip]
    cols = [_scalar("__v", k).alias(k) for k in names]
    cols += [_scalar("__v", f"meta.{k}").alias(k) for k in meta if k not in top]
    if opts.spec.kind == "conversations":
        text, first = CONVERSATION, [F.col("value").alias(CONVERSATION)]
    else:
        text, first = _text_col(opts), []
        if text not in top:
            raise InvalidUpload(f"no row has the field {text!r}; pass --text-column", code="missing_column")
    df = lines.select(ROW, *first, *cols, not_object.alias(ERROR))
    return Input(df, text, opts.spec.id_column or "id", rows)


def _python_type(shape: Column) -> Column:
    """The Python type name ``json.loads`` would give a JSON value of this variant schema."""
    names = [("ARRAY", "list"), ("STRING", "str"), ("BOOLEAN", "bool"), ("VOID", "NoneType")]
    names += [(t, "int") for t in ("BIGINT", "INT", "SMALLINT", "TINYINT")]
    out = F.lit("float")
    for prefix, name in reversed(names):
        out = F.when(shape.startswith(prefix), F.lit(name)).otherwise(out)
    return out


def _fields(spark: SparkSession, df: DataFrame, variant: str) -> list[str]:
    """The scalar fields of a variant column's objects, in the order they first appear (a field
    that is an object or a list in every row is not a column)."""
    df.select(ROW, variant).createOrReplaceTempView("__pingjia_lines")
    rows = spark.sql(
        f"SELECT key, min(struct({ROW}, pos)) AS first, "
        "max(CASE WHEN schema_of_variant(value) LIKE 'OBJECT%' OR schema_of_variant(value) LIKE 'ARRAY%' "
        "THEN 0 ELSE 1 END) AS scalar "
        f"FROM __pingjia_lines, LATERAL variant_explode_outer({variant}) GROUP BY key"
    ).collect()
    return [r["key"] for r in sorted(rows, key=lambda r: tuple(r["first"])) if r["key"] is not None and r["scalar"]]


def _scalar(variant: str, path: str) -> Column:
    """A field's value as the text a job holds (JSON null -> null, true -> "true", numbers as
    written); objects and lists -> null (not a column value)."""
    value = F.variant_get(variant, "$" + "".join(f"['{p}']" for p in path.split(".")), "variant")
    shape = F.schema_of_variant(value)
    return F.when(~(shape.startswith("OBJECT") | shape.startswith("ARRAY")), value.cast("string"))


def _parquet(spark: SparkSession, opts: SparkScoreOptions) -> Input:
    df = spark.read.parquet(opts.input)
    text = _text_col(opts)
    for name, what in ((text, "column"), (opts.spec.id_column, "id column")):
        if name is not None and name not in df.columns:
            raise InvalidUpload(f"{what} {name!r} not found; the columns are {df.columns}", code="missing_column")
    return Input(df, text, opts.spec.id_column or "id")


# --- the command ---------------------------------------------------------------------------
def session(master: str | None, quiet: bool) -> SparkSession:
    """``--master`` when given; inside ``spark-submit`` its own master; else all local cores."""
    from pyspark import SparkConf

    conf = {"spark.ui.showConsoleProgress": "false" if quiet else "true"}
    if master or not SparkConf().contains("spark.master"):
        return local_session(master or "local[*]", conf=conf)
    return SparkSession.builder.getOrCreate()


def assets_of(spark: SparkSession, given: str | None) -> Assets | None:
    """``--assets``: a folder holding models/ and lexicons/ that every executor can read; an
    archive file to ship (``addArchive``); or the name an archive was given with
    ``spark-submit --archives FILE#name``. None: local mode reads the service's folders, any
    other master gets them shipped."""
    if given is None:
        return None
    path = Path(given)
    if path.is_dir():
        return Assets(models_dir=str((path / "models").resolve()), lexicon_dir=str((path / "lexicons").resolve()))
    if path.is_file():
        spark.sparkContext.addArchive(str(path.resolve()))
        return Assets(archive=path.name)
    return Assets(archive=given or ARCHIVE_NAME)


def _reason(exc: Exception) -> str:
    """The first line of a Spark error (a JVM exception's message, not its stack)."""
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage()) if java is not None else str(exc)
    return (text.strip().splitlines() or ["unknown error"])[0]


def spark_score(opts: SparkScoreOptions) -> dict:
    """Score ``opts.input`` into the Parquet folder ``opts.output`` (+ the report as JSON);
    returns rows, errors and rows per second. Raises InvalidUpload / ValueError for bad input."""
    out = Path(opts.output)
    if "://" not in opts.output and out.exists() and not opts.overwrite:
        raise InvalidUpload(f"{opts.output} exists; remove it or pass --overwrite", code="conflict")
    spark = session(opts.master, opts.quiet)
    try:
        inp = read_input(spark, opts)
    except (PySparkException, Py4JJavaError) as exc:  # unreadable input: Spark's one-line reason
        raise InvalidUpload(f"Spark cannot read it: {_reason(exc)}", code="invalid_upload") from None
    extra = [c for c in inp.df.columns if not c.startswith("__pingjia_") and c not in (inp.text_col, inp.id_col)]
    spec = opts.spec
    for name in [spec.date_column, *(spec.group_columns or ())]:
        if name is not None and name not in extra:  # checked before scoring, as at a job's ingest
            raise InvalidUpload(f"column {name!r} not found; extra columns are {sorted(extra)}", code="missing_column")
    started = time.time()
    scored = score(
        inp.df,
        text_col=inp.text_col,
        id_col=inp.id_col,
        kind=spec.kind,
        assets=assets_of(spark, opts.assets),
        partitions=opts.partitions,
        row_col=ROW if ROW in inp.df.columns else None,
        error_col=ERROR if ERROR in inp.df.columns else None,
        rows=inp.rows,
    )
    scored.write.mode("overwrite" if opts.overwrite else "errorifexists").parquet(spark_path(opts.output))
    seconds = time.time() - started
    written = spark.read.parquet(spark_path(opts.output))
    counts = written.agg(F.count("*").alias("rows"), F.count("error_code").alias("errors")).first()
    if opts.summary:
        summary = report(written, spec.group_columns, spec.date_column, text_col=inp.text_col, kind=spec.kind)
        summary = {**summary, "input": opts.input}
        Path(opts.summary).write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"rows": counts["rows"], "errors": counts["errors"], "rows_per_second": round(counts["rows"] / seconds, 1)}
