"""The labelled chats of ../shared/data/chat/ (guide CHAT_ANNOTATION.md), read once and run
through the serving pipeline, so training sees exactly what the service will see.

Two sources:
- ``train_*.jsonl``: whole conversations (seven files by different writers); every agent
  turn has its violations, every customer turn its satisfaction and emotion, the
  conversation its resolution, grade and score. ``file`` is the letter (for
  leave-one-file-out).
- ``utterances_*.jsonl``: single agent replies with the customer turn before them, labelled
  with violations; more than half are look-alikes that are not violations. Each becomes a
  two-turn conversation with ``file`` = ``u`` + letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from app.conversations.learned import TurnView
from app.conversations.lexicons import ConversationRules
from app.conversations.model import Limits, parse_conversation
from app.conversations.text import turn_text
from app.pipeline.engine import Pipeline, TextItem
from app.pipeline.findings import ItemError


@dataclass
class LabelledChat:
    id: str
    file: str
    raw: dict
    labels: dict
    views: list[TurnView] = field(default_factory=list)
    texts: list = field(default_factory=list)  # TurnText per turn
    conv: object = None  # the parsed Conversation

    @property
    def is_utterance(self) -> bool:
        return self.file.startswith("u")

    @property
    def is_extra(self) -> bool:
        """Written for this project: trains, never tested."""
        return "x" in self.file


def chat_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "chat"


EXTRA_DIR = Path(__file__).resolve().parent / "data" / "chat_extra"
"""Labelled chats written for this project (see its README.md): training only, never scored."""


def read_chats(data_dir: Path, extra_dir: Path | None = None) -> list[LabelledChat]:
    """Every labelled conversation and utterance, utterances as two-turn conversations.
    With ``extra_dir``, its ``conversations_*.jsonl`` and ``utterances_*.jsonl`` too (``file``
    starts with ``x`` / ``ux``: :func:`is_extra`)."""
    paths = [(p, p.stem.split("_", 1)[1]) for p in sorted(chat_dir(data_dir).glob("train_*.jsonl"))]
    if extra_dir is not None:
        paths += [(p, "x" + p.stem.split("_", 1)[1]) for p in sorted(Path(extra_dir).glob("conversations_*.jsonl"))]
    out = []
    for path, letter in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out.append(LabelledChat(rec["id"], letter, rec, rec["labels"]))
    upaths = [(p, "u" + p.stem.split("_", 1)[1]) for p in sorted(chat_dir(data_dir).glob("utterances_*.jsonl"))]
    if extra_dir is not None:
        upaths += [(p, "ux" + p.stem.split("_", 1)[1]) for p in sorted(Path(extra_dir).glob("utterances_*.jsonl"))]
    for path, letter in upaths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            turns = [{"role": "customer", "text": rec["context"]}, {"role": "agent", "text": rec["text"]}]
            raw = {"id": rec["id"], "channel": rec.get("channel", "other"), "turns": turns}
            labels = {"agent_turns": [{"turn": 1, "violations": rec["violations"], "spans": rec["spans"]}]}
            out.append(LabelledChat(rec["id"], letter, raw, labels))
    return out


def attach_views(chats: list[LabelledChat], pipeline: Pipeline, rules: ConversationRules) -> None:
    """Run every turn through the pipeline once (with its Doc) and keep the views."""
    limits = Limits()
    convs = [parse_conversation(c.raw, limits, rules.profiles) for c in chats]
    items = [TextItem(t.text) for conv in convs for t in conv.turns]
    analyses = iter(pipeline.analyze_batch(items, with_docs=True))
    for chat, conv in zip(chats, convs):
        chat.views = []
        for t in conv.turns:
            a = next(analyses)
            if isinstance(a, ItemError):
                raise ValueError(f"{chat.id} turn {t.index}: {a.message}")
            chat.views.append(TurnView(t.index, t.role, a.doc, a))
        chat.texts = [turn_text(t.text) for t in conv.turns]
        chat.conv = conv
