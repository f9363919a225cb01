"""Per-class figures of the served models on any labelled file (``pingjia eval``).

The file is scored with the models the service serves, through the same
``Pipeline.analyze_batch`` the API uses:

* annotation JSONL: the 18 aspect-polarity pairs, the 9 root causes (negative pairs), and the
  three-class sentiment when rows carry ``sentiment``;
* CSV with ``text`` (or ``review``) and ``label``: binary sentiment (positive when
  P(positive) >= P(negative)), overall and per ``domain`` when that column exists.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from app.core.config import get_settings
from app.core.taxonomy import NEGATIVE_PAIRS, PAIRS
from app.pipeline.artifacts import ArtifactError, read_metrics
from app.pipeline.engine import Pipeline, TextItem, build_pipeline
from app.pipeline.findings import ItemError
from app.pipeline.lexicon import LexiconError
from training import DEFAULT_DATA, TrainingError
from training.data import LabelledDataError, read_annotations, read_binary_csv
from training.metrics import label_matrix, pair_metrics, prf_table


@dataclass(frozen=True)
class EvalConfig:
    data: Path = DEFAULT_DATA  # annotation .jsonl, or .csv with text,label (a folder: its aspects_train.jsonl)
    out: Path | None = None  # also write the figures as JSON into this folder
    models: Path | None = None  # models folder (default: the service's)
    lexicons: Path | None = None  # lexicon folder (default: the service's)
    batch: int = 256


def data_file(data: Path) -> Path:
    """The labelled file a ``--data`` argument names (a folder means its aspects_train.jsonl)."""
    data = Path(data)
    path = data / "aspects_train.jsonl" if data.is_dir() else data
    if not path.is_file():
        raise LabelledDataError(f"{path}: file not found")
    return path


def read_rows(path: Path) -> tuple[str, list]:
    """(kind, rows): ``csv`` rows of a text,label file, or ``jsonl`` annotated rows."""
    kind = "csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"
    return kind, read_annotations(path) if kind == "jsonl" else read_binary_csv(path)


def served_pipeline(config: EvalConfig) -> tuple[Pipeline, Path]:
    """The pipeline the service would build (its lexicons and models unless overridden)."""
    settings = get_settings()
    models_dir = Path(config.models or settings.models_dir)
    try:
        return build_pipeline(
            config.lexicons or settings.lexicon_dir, models_dir, max_text_chars=settings.max_text_chars
        ), models_dir
    except (ArtifactError, LexiconError) as exc:
        raise TrainingError(f"cannot load the served models: {exc}") from None


def trained_on(models_dir: Path, version: str) -> str | None:
    """The sha256 of the file the served aspects model was trained on, if recorded."""
    try:
        return read_metrics(models_dir, "aspects", version).get("data", {}).get("sha256")
    except ArtifactError:
        return None


def analyse(pipeline: Pipeline, path: Path, rows: Sequence, batch: int = 256) -> list:
    """Every row through ``analyze_batch``; a text the service refuses stops the run, naming its line."""
    results = []
    texts = [r.text for r in rows]
    for k in tqdm(range(0, len(texts), batch), unit="batch", file=sys.stderr, disable=len(texts) < 2000):
        results += pipeline.analyze_batch([TextItem(t, str(k + i)) for i, t in enumerate(texts[k : k + batch])])
    for r, res in zip(rows, results):
        if isinstance(res, ItemError):
            raise LabelledDataError(f"{path}:{r.line}: text cannot be analysed ({res.code}: {res.message})")
    return results


def figures(kind: str, rows: Sequence, results: Sequence) -> dict:
    """The report's figures: aspect pairs and 3-class sentiment (JSONL), or binary sentiment (CSV)."""
    report: dict = {}
    if kind == "jsonl":
        y = label_matrix(r.pairs for r in rows)
        pred = label_matrix({(a.aspect, a.polarity) for a in res.aspects} for res in results)
        report["aspects"] = pair_metrics(y, pred)
        labelled = [(r.sentiment, res.sentiment.label) for r, res in zip(rows, results) if r.sentiment]
        if labelled:
            report["sentiment"] = prf_table(
                [g for g, _ in labelled], [p for _, p in labelled], ["positive", "neutral", "negative"]
            )
        return report
    gold = ["positive" if r.label else "negative" for r in rows]
    pred = [_binary(res) for res in results]
    report["sentiment_binary"] = {"all": prf_table(gold, pred, ["positive", "negative"])}
    for dom in sorted({r.domain for r in rows} - {""}):
        idx = [i for i, r in enumerate(rows) if r.domain == dom]
        report["sentiment_binary"][dom] = prf_table(
            [gold[i] for i in idx], [pred[i] for i in idx], ["positive", "negative"]
        )
    return report


def _binary(res) -> str:
    p = res.sentiment.probabilities
    return "positive" if p["positive"] >= p["negative"] else "negative"


def print_classes(title: str, table: dict) -> None:
    print(f"\n{title} (n={table['n']})")
    print(f"  {'class':<12}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}")
    for lab, v in table["classes"].items():
        print(f"  {lab:<12}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>9}")
    print(f"  macro-F1 {table['macro_f1']:.3f}   accuracy {table['accuracy']:.3f}")


def print_pairs(metrics: dict) -> None:
    print(f"\n{'aspect:polarity':<26}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}")
    for key, v in metrics["pairs"].items():
        print(f"{key:<26}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>9}")
    for group, name in (
        ("aspect_polarity", f"aspect-polarity ({len(PAIRS)} pairs)"),
        ("root_causes", f"root causes ({len(NEGATIVE_PAIRS)} negative pairs)"),
    ):
        print(f"{name:<34} micro-F1 {metrics[group]['micro_f1']:.3f}  macro-F1 {metrics[group]['macro_f1']:.3f}")


def print_report(report: dict) -> None:
    """The report's tables, in the order :func:`figures` builds them."""
    if "aspects" in report:
        print_pairs(report["aspects"])
    if "sentiment" in report:
        print_classes("three-class sentiment", report["sentiment"])
    for dom, table in report.get("sentiment_binary", {}).items():
        print_classes("binary sentiment" if dom == "all" else f"binary sentiment, domain {dom}", table)


def evaluate(config: EvalConfig) -> dict:
    """Score the file with the served models, print the tables, and (with ``out``) write them
    as ``<out>/eval-<file name>.json``. Returns the report."""
    path = data_file(config.data)
    kind, rows = read_rows(path)
    pipeline, models_dir = served_pipeline(config)
    print(f"{path}: {len(rows)} rows; models {pipeline.versions}", flush=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    if trained_on(models_dir, pipeline.versions["aspects"]) == sha:
        print(
            "note: this is the file the aspects model was trained on; its figures here are optimistic "
            "(see the model card for cross-validated ones)"
        )
    results = analyse(pipeline, path, rows, config.batch)
    report = {
        "file": str(path),
        "sha256": sha,
        "rows": len(rows),
        "models": pipeline.versions,
        **figures(kind, rows, results),
    }
    print_report(report)
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        written = out / f"eval-{path.name}.json"
        written.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {written}")
    return report
