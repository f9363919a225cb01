"""Per-class figures of the served models on any labelled file (``pingjia eval``).

The file is scored with the models the service serves, through the same
``Pipeline.analyze_batch`` the API uses:

* annotation JSONL: the 18 aspect-polarity pairs, the 9 root causes (negative pairs), and the
  three-class sentiment when rows carry ``sentiment``;
* CSV with ``text`` (or ``review``) and ``label``: binary sentiment (positive when
  P(positive) >= P(negative)), overall and per ``domain`` when that column exists.

``--data`` names a file, or a folder: every ``aspects_train*.jsonl`` in it, sorted, rows
concatenated. ``--by-domain`` adds, for annotation rows, the root-cause table, the micro/macro
F1 figures and the three-class sentiment macro-F1 of each ``domain`` (``by_domain`` in the JSON).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from app.core.config import get_settings
from app.core.taxonomy import ASPECTS, NEGATIVE_PAIRS, PAIRS
from app.pipeline.artifacts import ArtifactError, read_metrics
from app.pipeline.engine import Pipeline, TextItem, build_pipeline
from app.pipeline.findings import ItemError
from app.pipeline.lexicon import LexiconError
from training import DEFAULT_DATA, TrainingError
from training.data import LabelledDataError, annotation_files, read_annotations, read_binary_csv
from training.metrics import label_matrix, pair_metrics, prf_table


@dataclass(frozen=True)
class EvalConfig:
    data: Path = DEFAULT_DATA  # annotation .jsonl, or .csv with text,label (a folder: its aspects_train*.jsonl)
    out: Path | None = None  # also write the figures as JSON into this folder
    models: Path | None = None  # models folder (default: the service's)
    lexicons: Path | None = None  # lexicon folder (default: the service's)
    batch: int = 256
    by_domain: bool = False  # annotation rows: also the figures of each domain


NO_DOMAIN = "(none)"  # the by-domain key of rows that name no domain


@dataclass(frozen=True)
class LabelledData:
    """The rows a ``--data`` argument names, with the file each row came from."""

    kind: str  # "jsonl" (annotation rows) or "csv" (text,label rows)
    files: tuple[Path, ...]
    rows: list
    row_files: list[Path]  # rows[i] is line rows[i].line of row_files[i]


def read_rows(path: Path) -> tuple[str, list]:
    """(kind, rows): ``csv`` rows of a text,label file, or ``jsonl`` annotated rows."""
    kind = "csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"
    return kind, read_annotations(path) if kind == "jsonl" else read_binary_csv(path)


def read_data(files: Sequence[Path]) -> LabelledData:
    """Every file's rows, concatenated in order (several files only come from a folder's
    ``aspects_train*.jsonl``, so they are all of one kind)."""
    kind, rows, row_files = "jsonl", [], []
    for path in files:
        kind, these = read_rows(path)
        rows += these
        row_files += [path] * len(these)
    return LabelledData(kind, tuple(files), rows, row_files)


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


def trained_on(models_dir: Path, version: str) -> set[str]:
    """The sha256 of every file the served aspects model was trained on, as its metrics.json
    records them: ``data.sha256`` (one file) and/or ``data.files: [{file, sha256}, ...]``."""
    try:
        data = read_metrics(models_dir, "aspects", version).get("data") or {}
    except ArtifactError:
        return set()
    shas = {data.get("sha256")} | {f.get("sha256") for f in data.get("files") or () if isinstance(f, dict)}
    return {s for s in shas if isinstance(s, str)}


def trained_on_note(files: dict[Path, str], trained: set[str]) -> str | None:
    """A warning when files read (path -> sha256) are the aspects model's training data.

    >>> trained_on_note({Path("a.jsonl"): "1", Path("b.jsonl"): "2"}, {"1", "3"})[:48]
    'note: the aspects model was trained on a.jsonl; '
    >>> trained_on_note({Path("b.jsonl"): "2"}, {"1"}) is None
    True
    """
    seen = [p.name for p, sha in files.items() if sha in trained]
    if not seen:
        return None
    if len(files) == 1:
        head = "note: this is the file the aspects model was trained on; its figures here are optimistic"
    else:
        head = f"note: the aspects model was trained on {', '.join(seen)}; figures over that data are optimistic"
    return head + " (see the model card for cross-validated ones)"


def analyse(pipeline: Pipeline, data: LabelledData, batch: int = 256) -> list:
    """Every row through ``analyze_batch``; a text the service refuses stops the run, naming its
    file and line."""
    results = []
    texts = [r.text for r in data.rows]
    for k in tqdm(range(0, len(texts), batch), unit="batch", file=sys.stderr, disable=len(texts) < 2000):
        results += pipeline.analyze_batch([TextItem(t, str(k + i)) for i, t in enumerate(texts[k : k + batch])])
    for r, path, res in zip(data.rows, data.row_files, results):
        if isinstance(res, ItemError):
            raise LabelledDataError(f"{path}:{r.line}: text cannot be analysed ({res.code}: {res.message})")
    return results


def annotation_figures(rows: Sequence, results: Sequence) -> dict:
    """Aspect pairs (with the root causes) and, when rows carry it, 3-class sentiment."""
    y = label_matrix(r.pairs for r in rows)
    pred = label_matrix({(a.aspect, a.polarity) for a in res.aspects} for res in results)
    report: dict = {"aspects": pair_metrics(y, pred)}
    labelled = [(r.sentiment, res.sentiment.label) for r, res in zip(rows, results) if r.sentiment]
    if labelled:
        report["sentiment"] = prf_table(
            [g for g, _ in labelled], [p for _, p in labelled], ["positive", "neutral", "negative"]
        )
    return report


def domain_figures(rows: Sequence, results: Sequence) -> dict:
    """:func:`annotation_figures` of each domain's rows (``(none)``: rows naming no domain)."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.domain or NO_DOMAIN, []).append(i)
    return {
        dom: {"rows": len(idx), **annotation_figures([rows[i] for i in idx], [results[i] for i in idx])}
        for dom, idx in sorted(groups.items())
    }


def figures(kind: str, rows: Sequence, results: Sequence, *, by_domain: bool = False) -> dict:
    """The report's figures: aspect pairs and 3-class sentiment (JSONL; ``by_domain`` also per
    domain), or binary sentiment (CSV, always per domain too)."""
    report: dict = {}
    if kind == "jsonl":
        report = annotation_figures(rows, results)
        if by_domain:
            report["by_domain"] = domain_figures(rows, results)
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


def _prf(v: dict) -> str:
    return f"{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>9}"


PRF_HEAD = f"{'P':>7}{'R':>7}{'F1':>7}{'support':>9}"


def print_summary_f1(metrics: dict, indent: str = "") -> None:
    """Micro/macro F1 over the 18 aspect-polarity pairs and over the 9 root causes."""
    for group, name in (
        ("aspect_polarity", f"aspect-polarity ({len(PAIRS)} pairs)"),
        ("root_causes", f"root causes ({len(NEGATIVE_PAIRS)} negative pairs)"),
    ):
        m = metrics[group]
        print(f"{indent}{name:<34} micro-F1 {m['micro_f1']:.3f}  macro-F1 {m['macro_f1']:.3f}")


def print_pairs(metrics: dict) -> None:
    """One row per aspect: its praise (positive pair) and its root cause (negative pair) side by
    side, then the micro/macro figures."""
    pairs = metrics["pairs"]
    print(f"\n{'':<16}{'praise (positive)':<30}  root cause (negative)")
    print(f"{'aspect':<16}{PRF_HEAD}  {PRF_HEAD}")
    for aspect in ASPECTS:
        print(f"{aspect:<16}{_prf(pairs[f'{aspect}:positive'])}  {_prf(pairs[f'{aspect}:negative'])}")
    print_summary_f1(metrics)


def print_causes(metrics: dict, indent: str = "  ") -> None:
    """The 9 root causes (negative pairs) with P/R/F1/support, then the micro/macro figures; names
    the causes without an example, which macro-F1 counts as 0."""
    pairs = metrics["pairs"]
    print(f"{indent}{'root cause':<16}{PRF_HEAD}")
    for aspect in ASPECTS:
        print(f"{indent}{aspect:<16}{_prf(pairs[f'{aspect}:negative'])}")
    print_summary_f1(metrics, indent)
    absent = [a for a in ASPECTS if not pairs[f"{a}:negative"]["support"]]
    if absent:
        print(f"{indent}(no example here, F1 0 in macro-F1: {', '.join(absent)})")


def print_domains(by_domain: dict) -> None:
    """Per domain: the root-cause table, micro/macro F1 and the 3-class sentiment macro-F1."""
    for dom, fig in by_domain.items():
        print(f"\ndomain {dom} ({fig['rows']} rows)")
        print_causes(fig["aspects"])
        if "sentiment" in fig:
            t = fig["sentiment"]
            print(f"  three-class sentiment macro-F1 {t['macro_f1']:.3f} (n={t['n']})")


def print_report(report: dict) -> None:
    """The report's tables, in the order :func:`figures` builds them."""
    if "aspects" in report:
        print_pairs(report["aspects"])
    if "sentiment" in report:
        print_classes("three-class sentiment", report["sentiment"])
    for dom, table in report.get("sentiment_binary", {}).items():
        print_classes("binary sentiment" if dom == "all" else f"binary sentiment, domain {dom}", table)
    if "by_domain" in report:
        print_domains(report["by_domain"])


def evaluate(config: EvalConfig) -> dict:
    """Score the labelled file(s) with the served models, print the tables, and (with ``out``)
    write them as ``<out>/eval-<file or folder name>.json``. Returns the report."""
    data = read_data(annotation_files(config.data))
    pipeline, models_dir = served_pipeline(config)
    shas = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.files}
    counts = Counter(data.row_files)
    if len(data.files) == 1:
        print(f"{data.files[0]}: {len(data.rows)} rows; models {pipeline.versions}", flush=True)
    else:
        read = ", ".join(f"{p.name} ({counts[p]} rows)" for p in data.files)
        print(f"{config.data}: read {read}: {len(data.rows)} rows; models {pipeline.versions}", flush=True)
    if note := trained_on_note(shas, trained_on(models_dir, pipeline.versions["aspects"])):
        print(note)
    if config.by_domain and data.kind == "csv":
        print("note: --by-domain: a text,label file is always reported per domain")
    results = analyse(pipeline, data, config.batch)
    report = {
        **({"file": str(data.files[0]), "sha256": shas[data.files[0]]} if len(data.files) == 1 else {}),
        "files": [{"file": str(p), "sha256": shas[p], "rows": counts[p]} for p in data.files],
        "rows": len(data.rows),
        "models": pipeline.versions,
        **figures(data.kind, data.rows, results, by_domain=config.by_domain),
    }
    print_report(report)
    if config.out:
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        written = out / f"eval-{Path(config.data).name}.json"
        written.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {written}")
    return report
