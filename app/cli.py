"""``pingjia``: analyse a text, score a file (here or on Spark), or serve the API."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

from app.core.config import get_settings
from app.core.errors import PingjiaError
from app.jobs.ingest import InputSpec
from app.pipeline import present

# The lazy imports below are not about cycles: the models' libraries (scikit-learn, skops,
# jieba) and uvicorn take seconds to import, and `pingjia --help` should not wait for them.


def _load():
    from app.pipeline.engine import build_pipeline  # lazy: see above

    s = get_settings()
    return build_pipeline(s.lexicon_dir, s.models_dir, max_text_chars=s.max_text_chars)


def cmd_analyze(args) -> int:
    text = args.text if args.text != "-" else sys.stdin.read()
    p = _load()
    try:
        result = present.analysis(
            p.analyze(text, top_terms=args.top_terms), p.versions, with_terms=bool(args.top_terms)
        )
    except PingjiaError as exc:
        print(json.dumps({"error": {"code": exc.code, "message": exc.message}}, ensure_ascii=False))
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def version_text() -> str:
    """``pingjia --version``: the package's version and the model and lexicon versions this
    install serves (read from models/current.json and the lexicon files, no model loaded)."""
    try:
        lines = [f"pingjia {package_version('pingjia')}"]
    except PackageNotFoundError:
        lines = ["pingjia (not installed as a package)"]
    s = get_settings()
    try:
        from app.pipeline.artifacts import pointer  # lazy: see above

        models = pointer(Path(s.models_dir))
        lines.append("models: " + ", ".join(f"{k} {v}" for k, v in sorted(models.items())))
    except (PingjiaError, OSError) as exc:
        lines.append(f"models: none served ({exc})")
    try:
        from app.pipeline.lexicon import load_lexicon  # lazy: see above

        lines.append(f"lexicon: {load_lexicon(Path(s.lexicon_dir)).version}")
    except (PingjiaError, OSError) as exc:
        lines.append(f"lexicon: unreadable ({exc})")
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version`` that reads the versions only when asked (argparse's own takes a fixed string)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def group_columns(value: str | None) -> tuple[str, ...] | None:
    """``--group-columns a,b`` as a tuple; None (not given) lets the report detect them."""
    return None if value is None else tuple(g.strip() for g in value.split(",") if g.strip())


def input_spec(args, fmt: str | None) -> InputSpec:
    """How ``score`` and ``spark-score`` read their input: the text column and the report options
    (``add_report_options``); a text column not given is the spec's default."""
    return InputSpec(
        kind=args.kind,
        fmt=fmt,
        text_column=InputSpec.text_column if args.text_column is None else args.text_column,
        id_column=args.id_column,
        encoding=args.encoding,
        date_column=args.date_column,
        group_columns=group_columns(args.group_columns),
    )


def cmd_score(args) -> int:
    """Score a file on the jobs engine (same ingest, chunks, worker loop and report as
    ``POST /v1/jobs``), with a progress bar; ``--summary`` writes the 差评报表 JSON."""
    from app.jobs.local import ScoreOptions, score_file  # lazy: see above

    opts = ScoreOptions(
        input=args.input,
        output=args.output,
        summary=args.summary,
        spec=input_spec(args, "jsonl" if args.input == "-" else None),
        workers=max(0, args.workers),
        quiet=args.quiet,
        work_dir=args.work_dir,
        bom=args.bom,
        columns=args.columns,
    )
    try:
        done = score_file(opts, get_settings())
    except PingjiaError as exc:
        print(f"pingjia score: {args.input}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"pingjia score: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"pingjia score: {exc}", file=sys.stderr)
        return 1
    status = done.status
    if status["status"] != "done":
        print(f"pingjia score: job {status['status']}: {status['error']}", file=sys.stderr)
        return 1
    if not args.quiet:  # the table goes where the results do not; the status line (bench/ reads it) to stderr
        from app.jobs.summary_table import summary_table  # lazy: see above

        print(
            f"pingjia score: {status['done']} rows ({status['errors']} errors), {status['rows_per_second']} rows/s",
            file=sys.stderr,
        )
        print(summary_table(done.report, status), file=sys.stderr if args.output == "-" else sys.stdout)
    return 0


def cmd_spark_score(args) -> int:
    """Score a CSV, JSONL or Parquet input on Apache Spark into Parquet (``app.integrations.spark``);
    ``--summary`` writes the same 差评报表 JSON as ``pingjia score --summary``."""
    try:
        from app.integrations.spark_io import SparkScoreOptions, spark_score  # lazy: pyspark is an extra
    except ModuleNotFoundError as exc:
        print(f"pingjia spark-score: {exc}; install the spark extra: pip install 'pingjia[spark]'", file=sys.stderr)
        return 2
    opts = SparkScoreOptions(
        input=args.input,
        output=args.output,
        summary=args.summary,
        master=args.master,
        spec=input_spec(args, args.format),
        text_column_given=args.text_column is not None,
        assets=args.assets,
        partitions=args.partitions,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    try:
        done = spark_score(opts)
    except (PingjiaError, ValueError) as exc:
        print(f"pingjia spark-score: {args.input}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(
            f"pingjia spark-score: {done['rows']} rows ({done['errors']} errors), {done['rows_per_second']} rows/s",
            file=sys.stderr,
        )
    return 0


def cmd_serve(args) -> int:
    from app.serve import serve  # lazy: see above

    s = get_settings()
    serve(args.host or s.host, args.port or s.port, workers=args.workers)
    return 0


def cmd_train(args) -> int:
    """Retrain the models in this process with the training library (``training.*_run``, what
    the notebooks run); a bad input file prints its line and exits 2 before anything is written."""
    try:
        from training import DEFAULT_DATA, TrainingError  # lazy: see above
        from training.aspects_run import AspectsConfig, train_aspects
        from training.chat_run import ChatConfig, train_chat
        from training.sentiment_run import SentimentConfig, train_sentiment
    except ModuleNotFoundError as exc:  # the figures need matplotlib, from the train extra
        print(f"pingjia train: {exc}; install the train extra: pip install 'pingjia[train]'", file=sys.stderr)
        return 2

    data = Path(args.data).resolve() if args.data else DEFAULT_DATA
    out = Path(args.out or get_settings().models_dir).resolve()
    for model in args.only or ["sentiment", "aspects", "chat"]:
        print(f"pingjia train: {model} from {data} into {out}", file=sys.stderr, flush=True)
        try:
            if model == "sentiment":
                train_sentiment(SentimentConfig(data=data, out=out, full=args.full))
            elif model == "chat":
                train_chat(ChatConfig(data=data, out=out, lexicons=get_settings().lexicon_dir))
            else:
                train_aspects(AspectsConfig(data=data, out=out, corpus=args.corpus, full=args.full))
        except TrainingError as exc:
            print(f"pingjia train: {model}: {exc}", file=sys.stderr)
            return 2
    if out == get_settings().models_dir.resolve():  # the served models changed: so do their answers
        from training.record_examples import answers, write

        write(answers(out, get_settings().lexicon_dir))
        print("pingjia train: re-recorded the API's example answers (app/api/examples/, README)", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    """Per-class figures of the served models on a labelled file (``training.evaluation``)."""
    from training import TrainingError  # lazy: see above
    from training.evaluation import EvalConfig, evaluate

    config = EvalConfig(
        data=Path(args.data),
        out=Path(args.out) if args.out else None,
        models=Path(args.models) if args.models else None,
        by_domain=args.by_domain,
    )
    try:
        evaluate(config)
    except TrainingError as exc:
        print(f"pingjia eval: {exc}", file=sys.stderr)
        return 2
    return 0


def add_report_options(p: argparse.ArgumentParser) -> None:
    """The options ``score`` and ``spark-score`` share: which rows, and how the report groups them."""
    p.add_argument(
        "--id-column", default=None, help="column of each row's id (default: 'id' when present, else the row number)"
    )
    p.add_argument(
        "--kind",
        choices=["reviews", "conversations"],
        default="reviews",
        help="reviews (default) or conversations (help-desk transcripts, JSONL: one {turns: [...]} per line)",
    )
    p.add_argument("--encoding", default="utf-8", help="input encoding (utf-8, gb18030 ...; Spark: CSV only)")
    p.add_argument("--date-column", help="column giving each row's date (default: detected)")
    p.add_argument("--group-columns", help="comma-separated columns to group by (default: detected)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pingjia", description=__doc__)
    parser.add_argument(
        "--version", action=VersionAction, help="print the package version and the model and lexicon versions served"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")

    p = sub.add_parser("analyze", help="analyse one text and print the JSON finding")
    p.add_argument("text", help="the text, or - to read stdin")
    p.add_argument("--top-terms", type=int, default=0, help="also list this many TF-IDF terms of the text")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("score", help="score a CSV or JSONL file on the jobs engine, with a progress bar")
    p.add_argument("input", help="input .csv or .jsonl (- for JSONL on stdin)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .jsonl or .csv (- for JSONL on stdout); a .csv keeps every input column, then the "
        "findings under Chinese headers (情感, 根因, 证据 ...)",
    )
    p.add_argument("--summary", metavar="FILE", help="also write the report (差评报表) as JSON to FILE")
    p.add_argument("--text-column", default="text", help="column holding the text to analyse (default: text)")
    add_report_options(p)
    p.add_argument(
        "--workers", type=int, default=0, help="processes (default: one for a small input, all cores for a large one)"
    )
    p.add_argument("--work-dir", help="where the temporary job store goes (default: the system temp dir)")
    p.add_argument(
        "--bom",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CSV output: start with a UTF-8 BOM so Excel reads the Chinese (default: on; --no-bom for none)",
    )
    p.add_argument(
        "--columns",
        choices=["readable", "codes"],
        default="readable",
        help="CSV output: readable (default: input columns + findings in Chinese) or codes (English headers "
        "and codes, as GET /v1/jobs/{id}/results?format=csv&columns=codes)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary table (results are still written, errors still shown)",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "spark-score", help="score CSV, JSONL or Parquet on Apache Spark into Parquet (spark extra, Java 17)"
    )
    p.add_argument("input", help="input file or folder: .csv, .jsonl or Parquet (local path or a Hadoop URI)")
    p.add_argument("output", help="output Parquet folder")
    p.add_argument("--summary", metavar="FILE", help="also write the report (差评报表) as JSON to FILE")
    p.add_argument("--master", help="Spark master, e.g. local[2] (default: spark-submit's, else local[*])")
    p.add_argument("--format", choices=["csv", "jsonl", "parquet"], help="default: from the input's name")
    p.add_argument("--text-column", help="default: text (conversations in Parquet: turns; in JSONL: each line)")
    add_report_options(p)
    p.add_argument(
        "--assets",
        help="models and lexicons for the executors: a folder with models/ and lexicons/ every executor can "
        "read, a .tar.gz to ship, or the name given with spark-submit --archives FILE#name "
        "(default: local mode reads this install's, other masters get them shipped)",
    )
    p.add_argument("--partitions", type=int, help="tasks to score in (default: twice the cores for a small input)")
    p.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_spark_score)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", help="address to listen on (default: PINGJIA_HOST)")
    p.add_argument("--port", type=int, help="port to listen on (default: PINGJIA_PORT)")
    p.add_argument("--workers", type=int, default=1, help="HTTP worker processes (default: 1)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "train", help="retrain the sentiment and aspect models (training library) and point models/current.json at them"
    )
    p.add_argument("--data", help="folder with reviews_train.csv and aspects_train*.jsonl (default: ../shared/data)")
    p.add_argument("--out", help="models folder (default: the service's, PINGJIA_MODELS_DIR)")
    p.add_argument("--only", action="append", choices=["sentiment", "aspects", "chat"], help="train just this model")
    p.add_argument(
        "--corpus",
        help="aspects: CSV of pos/neg-labelled reviews for the word vectors (default: "
        "reviews_train.csv beside the data; 'none' to train without)",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="also every comparison the cards report: sentiment design comparison and corpus experiments; "
        "aspects learning curve, previous data on the same folds and leave-one-domain-out",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="per-class figures of the served models on any labelled file")
    p.add_argument(
        "--data",
        required=True,
        help="annotation .jsonl, or .csv with text,label; a folder: every aspects_train*.jsonl in it",
    )
    p.add_argument("--out", help="also write the figures as JSON into this folder")
    p.add_argument("--models", help="models folder (default: the service's)")
    p.add_argument(
        "--by-domain",
        action="store_true",
        help="annotation rows: also each domain's root-cause table, micro/macro F1 and sentiment macro-F1",
    )
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
