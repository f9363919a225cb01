"""Loading and validating the analyst-editable word lists in ``lexicons/``.

Files are CSV/TXT with ``#`` header comments. A bad row stops start-up with the file
and line named, instead of the service silently running on half a lexicon.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from app.core.taxonomy import ASPECTS, KEYWORD_DIMENSIONS, POLARITIES


class LexiconError(RuntimeError):
    """A lexicon file is missing or malformed; the message names file and line."""


class KeywordRow(BaseModel):
    term: str = Field(min_length=1, pattern=r"^\S+$")
    dimension: Literal[*KEYWORD_DIMENSIONS]  # type: ignore[valid-type]
    polarity: Literal[*POLARITIES]  # type: ignore[valid-type]
    weight: float = Field(gt=0, le=5)


class TargetRow(BaseModel):
    term: str = Field(min_length=1, pattern=r"^\S+$")
    dimension: Literal[*ASPECTS]  # type: ignore[valid-type]


class IntensifierRow(BaseModel):
    term: str = Field(min_length=1, pattern=r"^\S+$")
    factor: float = Field(gt=0, le=5)


def data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-comment, non-blank lines of a lexicon file."""
    if not path.is_file():
        raise LexiconError(f"lexicon file not found: {path}")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LexiconError(f"{path}: not valid UTF-8 ({exc})") from None
    return [
        (n, line.strip())
        for n, line in enumerate(raw.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_rows(path: Path, model: type[BaseModel]) -> list[BaseModel]:
    """Parse a CSV lexicon (header row after the comments) into validated rows."""
    lines = data_lines(path)
    if not lines:
        raise LexiconError(f"{path}: no header row")
    reader = csv.DictReader(io.StringIO("\n".join(text for _, text in lines)))
    expected = list(model.model_fields)
    if reader.fieldnames != expected:
        raise LexiconError(f"{path}:{lines[0][0]}: header must be {','.join(expected)}")
    rows, seen = [], set()
    for (lineno, _), record in zip(lines[1:], reader):
        try:
            row = model.model_validate(record)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise LexiconError(f"{path}:{lineno}: {err['loc'][0] if err['loc'] else ''}: {err['msg']}") from None
        key = getattr(row, "term", None) or next(iter(record.values()))
        if key in seen:
            raise LexiconError(f"{path}:{lineno}: duplicate entry {key!r}")
        seen.add(key)
        rows.append(row)
    return rows


def read_words(path: Path) -> list[str]:
    """A one-word-per-line list."""
    return [text.split()[0] for _, text in data_lines(path)]


@dataclass(frozen=True, slots=True)
class Lexicon:
    keywords: dict[str, KeywordRow]
    targets: dict[str, str]
    negators: frozenset[str]
    intensifiers: dict[str, float]
    contrast: frozenset[str]
    userdict: tuple[tuple[str, int | None, str | None], ...]
    stopwords: frozenset[str]
    couriers: frozenset[str]
    version: str


def _userdict(path: Path) -> tuple[tuple[str, int | None, str | None], ...]:
    entries = []
    for lineno, text in data_lines(path):
        parts = text.split()
        if len(parts) > 3 or (len(parts) > 1 and not parts[1].isdigit()):
            raise LexiconError(f"{path}:{lineno}: expected 'word [freq] [tag]'")
        entries.append((parts[0], int(parts[1]) if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None))
    return tuple(entries)


def load_lexicon(directory: Path) -> Lexicon:
    """Load and validate every review-analysis lexicon under ``directory``."""
    names = [
        "service_keywords.csv",
        "aspect_targets.csv",
        "negators.txt",
        "intensifiers.csv",
        "contrast_words.txt",
        "userdict.txt",
        "stopwords.txt",
        "couriers.txt",
    ]
    digest = hashlib.sha256()
    for name in names:
        path = directory / name
        if not path.is_file():
            raise LexiconError(f"lexicon file not found: {path}")
        digest.update(path.read_bytes())
    couriers = frozenset(read_words(directory / "couriers.txt"))
    targets = {r.term: r.dimension for r in read_rows(directory / "aspect_targets.csv", TargetRow)}
    if unknown := sorted(couriers - targets.keys()):
        raise LexiconError(f"{directory / 'couriers.txt'}: not in aspect_targets.csv: {', '.join(unknown)}")
    return Lexicon(
        keywords={r.term: r for r in read_rows(directory / "service_keywords.csv", KeywordRow)},
        targets=targets,
        negators=frozenset(read_words(directory / "negators.txt")),
        intensifiers={r.term: r.factor for r in read_rows(directory / "intensifiers.csv", IntensifierRow)},
        contrast=frozenset(read_words(directory / "contrast_words.txt")),
        userdict=_userdict(directory / "userdict.txt"),
        stopwords=frozenset(read_words(directory / "stopwords.txt")),
        couriers=couriers,
        version=digest.hexdigest()[:12],
    )
