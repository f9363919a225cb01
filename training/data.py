"""Readers for labelled data: analysts' files and the shared corpora, validated row by row,
and the documents training builds from them with the service's own pipeline code.

Both file formats are documented in docs/models.md. The first bad row raises
:class:`LabelledDataError` naming the file and line, so a training run stops before it writes
anything.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import PingjiaError
from app.core.taxonomy import ASPECTS
from app.pipeline.aspects import LexiconAspectScorer
from app.pipeline.engine import Pipeline, build_segmenter
from app.pipeline.findings import Doc
from app.pipeline.lexicon import Lexicon, LexiconError, load_lexicon
from training import TrainingError


class LabelledDataError(TrainingError):
    """A labelled file cannot be used; the message names the file and line."""


_POLARITY = {"pos": "positive", "neg": "negative", "positive": "positive", "negative": "negative"}
SENTIMENTS = {
    "pos": "positive",
    "neu": "neutral",
    "neg": "negative",
    "positive": "positive",
    "neutral": "neutral",
    "negative": "negative",
}


@dataclass(frozen=True, slots=True)
class Annotated:
    """One labelled text in the annotation format (see ANNOTATION.md / docs/models.md)."""

    line: int
    id: str
    domain: str
    text: str
    sentiment: str | None  # positive / neutral / negative, or None when not labelled
    pairs: frozenset[tuple[str, str]]  # (aspect, positive|negative)


ANNOTATION_GLOB = "aspects_train*.jsonl"


def annotation_files(data: Path) -> list[Path]:
    """The labelled files a ``--data`` argument names: the file itself, or every
    ``aspects_train*.jsonl`` of a folder, sorted (the shared data has more than one round)."""
    data = Path(data)
    if data.is_dir():
        files = sorted(p for p in data.glob(ANNOTATION_GLOB) if p.is_file())
        if not files:
            raise LabelledDataError(f"{data}: no {ANNOTATION_GLOB} in this folder")
        return files
    if not data.is_file():
        raise LabelledDataError(f"{data}: file not found")
    return [data]


def read_annotations(path: Path) -> list[Annotated]:
    """Read and validate a JSONL file in the annotation format; the first bad row raises
    LabelledDataError naming its line, so a run stops before it writes anything.

    Each line: ``{"text": str, "aspects": [{"aspect": code, "polarity": "pos"|"neg"}, ...],
    "sentiment": "pos"|"neu"|"neg" (optional), "id": str (optional), "domain": str (optional)}``.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelledDataError(f"{path}: file not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(_annotation(json.loads(line), n))
            except json.JSONDecodeError as exc:
                raise LabelledDataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            except LabelledDataError as exc:
                raise LabelledDataError(f"{path}:{n}: {exc}") from None
            except UnicodeDecodeError as exc:
                raise LabelledDataError(f"{path}:{n}: not UTF-8 ({exc})") from None
    if not out:
        raise LabelledDataError(f"{path}: no rows")
    return out


def _annotation(rec, n: int) -> Annotated:
    if not isinstance(rec, dict):
        raise LabelledDataError("expected a JSON object")
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        raise LabelledDataError("'text' must be a non-empty string")
    aspects = rec.get("aspects")
    if not isinstance(aspects, list):
        raise LabelledDataError("'aspects' must be a list (use [] for a text that evaluates no aspect)")
    pairs = set()
    for k, a in enumerate(aspects):
        if not isinstance(a, dict) or a.get("aspect") not in ASPECTS or a.get("polarity") not in _POLARITY:
            raise LabelledDataError(
                f'aspects[{k}] must be {{"aspect": one of {", ".join(ASPECTS)}, '
                f'"polarity": "pos" or "neg"}}, got {json.dumps(a, ensure_ascii=False)}'
            )
        pairs.add((a["aspect"], _POLARITY[a["polarity"]]))
    sentiment = rec.get("sentiment")
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise LabelledDataError(f"'sentiment' must be pos, neu or neg, got {sentiment!r}")
    return Annotated(
        n, str(rec.get("id") or n), str(rec.get("domain") or ""), text, SENTIMENTS.get(sentiment), frozenset(pairs)
    )


_BINARY = {"1": 1, "0": 0, "pos": 1, "neg": 0, "positive": 1, "negative": 0}


@dataclass(frozen=True, slots=True)
class BinaryLabelled:
    """One row of a ``text,label`` CSV (``review`` may name the text column; ``domain`` and
    ``category`` optional)."""

    line: int
    text: str
    label: int  # 1 positive, 0 negative
    domain: str
    category: str = ""


def read_binary_csv(path: Path) -> list[BinaryLabelled]:
    """Rows of a CSV with a ``text`` (or ``review``) column and a ``label`` column (1/0,
    pos/neg or positive/negative); other columns are ignored, ``domain`` and ``category`` are kept."""
    path = Path(path)
    if not path.is_file():
        raise LabelledDataError(f"{path}: file not found")
    rows: list[BinaryLabelled] = []
    line = 1
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            text_col = "text" if "text" in cols else "review" if "review" in cols else None
            if text_col is None or "label" not in cols:
                raise LabelledDataError(
                    f"{path}:1: header must name a text (or review) column and a label column; got {cols}"
                )
            for rec in reader:
                line = reader.line_num
                label = _BINARY.get(str(rec.get("label") or "").strip().lower())
                if label is None:
                    raise LabelledDataError(
                        f"{path}:{line}: label must be 1/0, pos/neg or positive/negative, not {rec.get('label')!r}"
                    )
                if not (rec.get(text_col) or "").strip():
                    raise LabelledDataError(f"{path}:{line}: empty {text_col}")
                rows.append(
                    BinaryLabelled(line, rec[text_col], label, rec.get("domain") or "", rec.get("category") or "")
                )
    except UnicodeDecodeError as exc:
        raise LabelledDataError(f"{path}: not valid UTF-8 near byte {exc.start}") from None
    except csv.Error as exc:
        raise LabelledDataError(f"{path}:{line}: {exc}") from None
    if not rows:
        raise LabelledDataError(f"{path}: no rows")
    return rows


def require_domains(rows: Sequence[BinaryLabelled], path: Path, domains: Sequence[str]) -> None:
    """Every row names one of ``domains`` (the sentiment split stratifies on it)."""
    for r in rows:
        if r.domain not in domains:
            raise LabelledDataError(f"{path}:{r.line}: domain must be one of {tuple(domains)}, not {r.domain!r}")


def require_sentiment(rows: Sequence[Annotated], path: Path) -> None:
    """Every row carries its overall sentiment (the neutral calibrator learns from it)."""
    for r in rows:
        if r.sentiment is None:
            raise LabelledDataError(
                f"{path}:{r.line}: 'sentiment' (pos, neu or neg) is required for the neutral calibrator"
            )


class _NoSentiment:
    """Training needs documents, not sentiment: a stand-in so no sentiment model is loaded."""

    version = "none"

    def predict(self, docs):
        return [None] * len(docs)


def document_pipeline(lexicons: Path | Lexicon, *, max_text_chars: int = 5000) -> Pipeline:
    """The service's own normalise/segment/keyword code with the lexicon aspect scorer and no
    sentiment model, so training sees exactly the tokens and hits the service computes."""
    try:
        lexicon = lexicons if isinstance(lexicons, Lexicon) else load_lexicon(lexicons)
    except LexiconError as exc:
        raise TrainingError(str(exc)) from None
    return Pipeline(
        lexicon=lexicon,
        segmenter=build_segmenter(lexicon),
        sentiment=_NoSentiment(),
        aspects=LexiconAspectScorer(lexicon.version),
        max_text_chars=max_text_chars,
    )


def annotated_docs(pipeline: Pipeline, rows: Sequence[Annotated], path: Path) -> list[Doc]:
    """One document per annotated row; a text the service would refuse stops the run, naming its line."""
    docs = []
    for r in rows:
        try:
            docs.append(pipeline.make_doc(r.text, r.id))
        except PingjiaError as exc:
            raise LabelledDataError(f"{path}:{r.line}: text cannot be analysed ({exc.code}: {exc.message})") from None
    return docs
