"""Loading and validating the inspection lexicons and QA profiles (once, at start-up).

Each CSV has ``#`` header comments including a ``# version:`` line, then a header row.
A bad row stops start-up with ``file:line`` named (LexiconError), never a silent fallback.
``qa_rules.json`` (rules as data, :mod:`app.conversations.custom_rules`) is validated rule by
rule; an error names the file and the rule id.
``ConversationRules.version`` is a digest of every file, reported with each result.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.conversations.custom_rules import DEFAULT_THRESHOLD, SERVICE_CODES, CustomRule, CustomRules
from app.conversations.profiles import QAProfile
from app.conversations.text import Entry, PhraseIndex, compact
from app.core.taxonomy import (
    AGENT_CUE_KINDS,
    CUE_EMOTIONS,
    CUE_RESOLUTION_STATUSES,
    ESCALATION_KINDS,
    ESCALATION_LEVELS,
    FORBIDDEN_CATEGORIES,
    POLITE_KINDS,
    SEVERITIES,
)
from app.pipeline.lexicon import LexiconError, data_lines

_VERSION = re.compile(r"^#\s*version:\s*(\S+)")


class _Row(BaseModel):
    """A lexicon row: each subclass declares its columns in file order, ``phrase`` first and
    ``exceptions`` last (the field order is the required header)."""


class ForbiddenRow(_Row):
    phrase: str = Field(min_length=1)
    category: Literal[*FORBIDDEN_CATEGORIES]  # type: ignore[valid-type]
    severity: Literal[*SEVERITIES]  # type: ignore[valid-type]
    exceptions: str = ""


class PoliteRow(_Row):
    phrase: str = Field(min_length=1)
    kind: Literal[*POLITE_KINDS]  # type: ignore[valid-type]
    exceptions: str = ""


class EscalationRow(_Row):
    phrase: str = Field(min_length=1)
    kind: Literal[*ESCALATION_KINDS]  # type: ignore[valid-type]
    level: Literal[*ESCALATION_LEVELS]  # type: ignore[valid-type]
    exceptions: str = ""


class ResolutionRow(_Row):
    phrase: str = Field(min_length=1)
    status: Literal[*CUE_RESOLUTION_STATUSES]  # type: ignore[valid-type]
    speaker: Literal["customer", "agent"]
    exceptions: str = ""


class AgentCueRow(_Row):
    phrase: str = Field(min_length=1)
    cue: Literal[*AGENT_CUE_KINDS]  # type: ignore[valid-type]
    exceptions: str = ""


class EmotionRow(_Row):
    phrase: str = Field(min_length=1)
    emotion: Literal[*CUE_EMOTIONS]  # type: ignore[valid-type]
    weight: float = Field(gt=0, le=3)
    exceptions: str = ""


def file_version(path: Path) -> str:
    """The ``# version:`` header of a lexicon file (required)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if m := _VERSION.match(line):
            return m.group(1)
    raise LexiconError(f"{path}:1: missing '# version:' header comment")


def read_entries(path: Path, model: type[_Row]) -> list[Entry]:
    """Validated rows of one CSV as matchable entries; errors name file:line."""
    lines = data_lines(path)
    file_version(path)
    if not lines:
        raise LexiconError(f"{path}: no header row")
    expected = list(model.model_fields)
    reader = csv.DictReader(io.StringIO("\n".join(t for _, t in lines)))
    if reader.fieldnames != expected:
        raise LexiconError(f"{path}:{lines[0][0]}: header must be {','.join(expected)}")
    entries, seen = [], {}
    for (lineno, _), record in zip(lines[1:], reader):
        if None in record or any(v is None for v in record.values()):
            raise LexiconError(f"{path}:{lineno}: expected {len(expected)} columns: {','.join(expected)}")
        try:
            row = model.model_validate({k: v.strip() for k, v in record.items()})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise LexiconError(f"{path}:{lineno}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        key = compact(row.phrase)
        if not key:
            raise LexiconError(f"{path}:{lineno}: phrase {row.phrase!r} has no letters or digits")
        if key in seen:
            raise LexiconError(f"{path}:{lineno}: duplicate phrase {row.phrase!r} (line {seen[key]})")
        seen[key] = lineno
        contexts = []
        for ctx in filter(None, (c.strip() for c in row.exceptions.split("|"))):
            if key not in (c := compact(ctx)):
                raise LexiconError(f"{path}:{lineno}: exception {ctx!r} does not contain the phrase {row.phrase!r}")
            contexts.append(c)
        entries.append(Entry(key, tuple(contexts), row))
    if not entries:
        raise LexiconError(f"{path}: no entries")
    return entries


def load_profiles(directory: Path) -> dict[str, QAProfile]:
    """Every ``*.json`` profile in ``directory``, keyed by file stem; ``default`` is required.
    A profile with ``"extends": "NAME"`` starts from that profile's values (its fitted point
    values) and overrides what it lists (weights, threshold ...)."""
    raw: dict[str, tuple[Path, dict]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LexiconError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise LexiconError(f"{path}: a profile must be a JSON object")
        if data.get("name", path.stem) != path.stem:
            raise LexiconError(f"{path}: name {data['name']!r} differs from the file name")
        raw[path.stem] = (path, data)
    if "default" not in raw:
        raise LexiconError(f"{directory}: no default.json QA profile")
    profiles = {}
    for name, (path, data) in raw.items():
        base = data.pop("extends", None)
        if base is not None:
            if base not in raw or "extends" in raw[base][1] or base == name:
                raise LexiconError(f"{path}: extends {base!r}, which is not a profile without 'extends'")
            inherited = {k: v for k, v in raw[base][1].items() if k not in ("version", "description", "fitted")}
            data = _merge(inherited, data)
        try:
            profiles[name] = QAProfile.model_validate({**data, "name": name})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise LexiconError(f"{path}: {'.'.join(map(str, err['loc'])) or 'profile'}: {err['msg']}") from None
    return profiles


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PositionSpec(_Strict):
    """Only the first or the last N turns of the rule's role."""

    first: int | None = Field(None, ge=1)
    last: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one(self):
        if (self.first is None) == (self.last is None):
            raise ValueError('give exactly one of "first" or "last"')
        return self


class KeywordSpec(_Strict):
    any: list[str] = []
    all: list[str] = []
    none: list[str] = []


class QARuleRow(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    severity: Literal[*SEVERITIES] = "medium"  # type: ignore[valid-type]
    role: Literal["agent", "customer"]
    position: PositionSpec | None = None
    keywords: KeywordSpec = KeywordSpec()
    examples: list[str] = []
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1)

    @model_validator(mode="after")
    def _matchable(self):
        if not self.examples and not (self.keywords.any or self.keywords.all):
            raise ValueError('a rule needs "examples" or "any"/"all" keywords')
        return self


class QARulesFile(_Strict):
    version: str = Field(min_length=1)
    description: str = ""
    flags: dict[str, str] = Field({}, description="the analysts' own codes (not 服务禁语) and what each means")
    rules: list[dict]


def _compact_all(path: Path, rid: str, what: str, phrases: list[str]) -> tuple[str, ...]:
    keys = tuple(compact(p) for p in phrases)
    for p, k in zip(phrases, keys):
        if not k:
            raise LexiconError(f"{path}: rule {rid!r}: {what} {p!r} has no letters or digits")
    return keys


def load_qa_rules(path: Path) -> CustomRules:
    """``qa_rules.json``: validated rules as data; a bad rule stops start-up naming file and rule id."""
    try:
        data = QARulesFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise LexiconError(f'{path}: missing (an empty rule list is {{"version": "1", "rules": []}})') from None
    except json.JSONDecodeError as exc:
        raise LexiconError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise LexiconError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    for code in data.flags:
        if code in SERVICE_CODES or not re.fullmatch(r"[a-z][a-z0-9_]*", code):
            raise LexiconError(f"{path}: flags: {code!r} must be a new lower_case code, not a 服务禁语 code")
    rules, seen = [], set()
    for i, raw in enumerate(data.rules):
        rid = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"rules[{i}]"
        try:
            row = QARuleRow.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(map(str, err["loc"])) or "rule"
            raise LexiconError(f"{path}: rule {rid!r}: {where}: {err['msg']}") from None
        if row.id in seen:
            raise LexiconError(f"{path}: rule {rid!r}: duplicate id")
        seen.add(row.id)
        if row.code not in SERVICE_CODES and row.code not in data.flags:
            raise LexiconError(
                f"{path}: rule {rid!r}: unknown code {row.code!r}: use a 服务禁语 code "
                f'({", ".join(SERVICE_CODES)}) or declare it under "flags"'
            )
        if row.code in SERVICE_CODES and row.role != "agent":
            raise LexiconError(f"{path}: rule {rid!r}: {row.code} is an agent violation; role must be agent")
        kw = row.keywords
        rules.append(
            CustomRule(
                id=row.id,
                code=row.code,
                description=row.description,
                severity=row.severity,
                role=row.role,
                first=row.position.first if row.position else None,
                last=row.position.last if row.position else None,
                any=_compact_all(path, row.id, "keyword", kw.any),
                all=_compact_all(path, row.id, "keyword", kw.all),
                none=_compact_all(path, row.id, "keyword", kw.none),
                examples=tuple(row.examples),
                example_keys=_compact_all(path, row.id, "example", row.examples),
                threshold=row.threshold,
            )
        )
    return CustomRules(tuple(rules), data.version, dict(data.flags))


@dataclass(frozen=True, slots=True)
class ConversationRules:
    """Everything the inspection rules read, loaded once; immutable while serving."""

    forbidden: PhraseIndex
    polite: PhraseIndex
    escalation: PhraseIndex
    resolution_customer: PhraseIndex
    resolution_agent: PhraseIndex
    emotion: PhraseIndex
    agent_cues: PhraseIndex  # features of the trained violation model, never violations
    forbidden_exceptions: tuple[Entry, ...]  # forbidden phrases with exception contexts
    profiles: dict[str, QAProfile]
    version: str
    file_versions: dict[str, str]
    custom_rules: CustomRules = field(default_factory=lambda: CustomRules((), ""))


FILES = {
    "forbidden": ("forbidden_phrases.csv", ForbiddenRow),
    "polite": ("polite_phrases.csv", PoliteRow),
    "escalation": ("escalation_cues.csv", EscalationRow),
    "resolution": ("resolution_cues.csv", ResolutionRow),
    "emotion": ("emotion_cues.csv", EmotionRow),
    "agent_cues": ("agent_cues.csv", AgentCueRow),
}


QA_RULES = "qa_rules.json"


def load_conversation_rules(lexicon_dir: Path) -> ConversationRules:
    """Load and validate the inspection lexicons and ``qa_profiles/`` under ``lexicon_dir``."""
    lexicon_dir = Path(lexicon_dir)
    entries = {name: read_entries(lexicon_dir / fname, model) for name, (fname, model) in FILES.items()}
    profile_dir = lexicon_dir / "qa_profiles"
    profiles = load_profiles(profile_dir)
    custom = load_qa_rules(lexicon_dir / QA_RULES)
    digest = hashlib.sha256()
    paths = [lexicon_dir / f for f, _ in FILES.values()] + sorted(profile_dir.glob("*.json")) + [lexicon_dir / QA_RULES]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    resolution = entries["resolution"]
    return ConversationRules(
        forbidden=PhraseIndex(entries["forbidden"]),
        polite=PhraseIndex(entries["polite"]),
        escalation=PhraseIndex(entries["escalation"]),
        resolution_customer=PhraseIndex(e for e in resolution if e.row.speaker == "customer"),
        resolution_agent=PhraseIndex(e for e in resolution if e.row.speaker == "agent"),
        emotion=PhraseIndex(entries["emotion"]),
        agent_cues=PhraseIndex(entries["agent_cues"]),
        forbidden_exceptions=tuple(e for e in entries["forbidden"] if e.exceptions),
        profiles=profiles,
        version=digest.hexdigest()[:12],
        file_versions={f: file_version(lexicon_dir / f) for f, _ in FILES.values()}
        | {f"qa_profiles/{n}.json": p.version for n, p in profiles.items()}
        | {QA_RULES: custom.version},
        custom_rules=custom,
    )
