"""Train and evaluate the chat model: grouped 5-fold CV and leave-one-file-out over the shared
labelled chats, beside today's lexicon-only inspection on the same folds, then the final fit
on everything (the project's own written chats, training/data/chat_extra, train every fold
and are never scored).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.conversations import custom_rules, load_conversation_rules, qa
from app.conversations.engine import inspect
from app.conversations.findings import ConversationReport
from app.conversations.model import Limits
from app.conversations.profiles import QAProfile
from app.core.taxonomy import GRADE_CODES, VIOLATION_CODES
from app.pipeline.artifacts import save_artifact
from app.pipeline.chat_model import KIND, ChatModel
from app.pipeline.engine import build_pipeline
from training import TrainingError
from training.cards import chat_card, package_versions
from training.chat_data import EXTRA_DIR, LabelledChat, attach_views, read_chats
from training.chat_fit import SATISFACTION, all_examples, fit_chat_model
from training.chat_qa import fit_constants

FOLDS = 5
SEED = 13
SERVICE = set(VIOLATION_CODES)


@dataclass
class Predictions:
    """What one system said about the scored chats (keyed by chat index)."""

    turn_codes: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    resolution: dict[int, str] = field(default_factory=dict)
    satisfaction: dict[tuple[int, int], str] = field(default_factory=dict)
    grade: dict[int, str] = field(default_factory=dict)
    score: dict[int, float] = field(default_factory=dict)
    qa_inputs: dict[int, qa.QAInput] = field(default_factory=dict)


def report_of(chat: LabelledChat, pipeline, rules, model: ChatModel | None) -> ConversationReport:
    versions = {**pipeline.versions, "conversation_rules": rules.version}
    analyses = [v.analysis for v in chat.views]
    words = custom_rules.word_source(pipeline)
    return inspect(chat.conv, analyses, rules, Limits(), versions, words=words, chat=model)


def collect(preds: Predictions, ci: int, chat: LabelledChat, r: ConversationReport) -> None:
    codes: dict[int, set[str]] = {}
    for v in r.violations:
        if v.code in SERVICE:
            codes.setdefault(v.turn, set()).add(v.code)
    for a in chat.labels.get("agent_turns", []):
        preds.turn_codes[(ci, a["turn"])] = codes.get(a["turn"], set())
    if chat.is_utterance:
        return
    preds.resolution[ci] = r.resolution.status
    for t in r.turns:
        if t.role == "customer":
            label = t.satisfaction[0] if t.satisfaction else _from_sentiment(t.analysis.sentiment.label)
            preds.satisfaction[(ci, t.index)] = label
    preds.grade[ci], preds.score[ci] = r.qa.grade, r.qa.score
    c = r.customer
    preds.qa_inputs[ci] = qa.QAInput(
        chat.conv.turns,
        [t.analysis for t in r.turns],
        r.timing,
        r.violations,
        r.polite_phrases,
        r.resolution,
        c.escalation,
        c.emotions,
    )


def _from_sentiment(label: str) -> str:
    """Without a chat model, a customer turn's satisfaction is read off its review sentiment."""
    return {"negative": "dissatisfied", "neutral": "neutral", "positive": "satisfied"}[label]


def folds_cv(chats: Sequence[LabelledChat]) -> list[tuple[set[int], list[int]]]:
    """5 folds over the shared chats (a conversation or an utterance is its own group); the
    written extra chats train every fold."""
    core = [i for i, c in enumerate(chats) if not c.is_extra]
    extra = {i for i, c in enumerate(chats) if c.is_extra}
    rng = random.Random(SEED)
    rng.shuffle(core)
    parts = [core[k::FOLDS] for k in range(FOLDS)]
    return [(set(core) - set(p) | extra, sorted(p)) for p in parts]


def folds_by_file(chats: Sequence[LabelledChat]) -> list[tuple[set[int], list[int]]]:
    """Leave one conversation file out: train on everything else (the other six files, the
    utterances, the extra chats), test on that file's conversations."""
    letters = sorted({c.file for c in chats if not c.is_utterance and not c.is_extra})
    out = []
    for f in letters:
        test = [i for i, c in enumerate(chats) if c.file == f]
        out.append((set(range(len(chats))) - set(test), test))
    return out


def cross_predict(
    chats, examples, folds, pipeline, rules, progress: Callable[[str], None] = lambda s: None
) -> Predictions:
    preds = Predictions()
    for k, (train, test) in enumerate(folds):
        progress(f"fold {k + 1}/{len(folds)}")
        model = fit_chat_model(chats, examples, train)
        for ci in test:
            collect(preds, ci, chats[ci], report_of(chats[ci], pipeline, rules, model))
    return preds


def lexicon_predict(chats, pipeline, rules) -> Predictions:
    """Today's system: the lexicon rules alone (no chat model)."""
    preds = Predictions()
    for ci, chat in enumerate(chats):
        if not chat.is_extra:
            collect(preds, ci, chat, report_of(chat, pipeline, rules, None))
    return preds


# --- metrics ---------------------------------------------------------------------------------
def _f1(tp: int, fp: int, fn: int) -> float:
    return round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0


def violation_metrics(chats, preds: Predictions, utterances: bool) -> dict:
    per = {c: Counter() for c in VIOLATION_CODES}
    lookalike = Counter()
    for (ci, turn), got in preds.turn_codes.items():
        chat = chats[ci]
        if chat.is_utterance != utterances:
            continue
        gold = set(next(a["violations"] for a in chat.labels["agent_turns"] if a["turn"] == turn))
        for c in VIOLATION_CODES:
            per[c]["tp"] += c in gold and c in got
            per[c]["fp"] += c not in gold and c in got
            per[c]["fn"] += c in gold and c not in got
        if not gold:
            lookalike["n"] += 1
            lookalike["fired"] += bool(got)
    tot = sum(per.values(), Counter())
    out = {
        "micro_f1": _f1(tot["tp"], tot["fp"], tot["fn"]),
        "macro_f1": round(float(np.mean([_f1(p["tp"], p["fp"], p["fn"]) for p in per.values()])), 4),
        "per_code": {
            c: {
                "precision": round(p["tp"] / max(p["tp"] + p["fp"], 1), 3),
                "recall": round(p["tp"] / max(p["tp"] + p["fn"], 1), 3),
                "f1": _f1(p["tp"], p["fp"], p["fn"]),
                "support": p["tp"] + p["fn"],
            }
            for c, p in per.items()
        },
        "clean_turns": lookalike["n"],
        "clean_turns_flagged_rate": round(lookalike["fired"] / max(lookalike["n"], 1), 4),
    }
    return out


def _class_metrics(gold: list[str], got: list[str], classes: Sequence[str]) -> dict:
    acc = sum(g == p for g, p in zip(gold, got)) / max(len(gold), 1)
    f1s = {}
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, got))
        fp = sum(g != c and p == c for g, p in zip(gold, got))
        fn = sum(g == c and p != c for g, p in zip(gold, got))
        f1s[c] = _f1(tp, fp, fn)
    return {
        "accuracy": round(acc, 4),
        "macro_f1": round(float(np.mean(list(f1s.values()))), 4),
        "f1": f1s,
        "n": len(gold),
    }


def chat_metrics(chats, preds: Predictions) -> dict:
    res = sorted(preds.resolution)
    sat = sorted(preds.satisfaction)
    gold_sat = {
        (ci, c["turn"]): c["satisfaction"] for ci in {k[0] for k in sat} for c in chats[ci].labels["customer_turns"]
    }
    grades = sorted(preds.grade)
    rank = {g: i for i, g in enumerate(GRADE_CODES)}
    dist = [abs(rank[preds.grade[ci]] - rank[chats[ci].labels["grade"]]) for ci in grades]
    return {
        "resolution": _class_metrics(
            [chats[ci].labels["resolution"] for ci in res],
            [preds.resolution[ci] for ci in res],
            ("resolved", "unresolved", "unknown"),
        ),
        "satisfaction": _class_metrics([gold_sat[k] for k in sat], [preds.satisfaction[k] for k in sat], SATISFACTION),
        "grade": {
            "exact": round(sum(d == 0 for d in dist) / max(len(dist), 1), 4),
            "within_one": round(sum(d <= 1 for d in dist) / max(len(dist), 1), 4),
            "score_mae": round(
                float(np.mean([abs(preds.score[ci] - chats[ci].labels["score"]) for ci in grades])) if grades else 0, 2
            ),
            "n": len(dist),
        },
    }


def all_metrics(chats, preds: Predictions) -> dict:
    return {
        "violations_conversations": violation_metrics(chats, preds, utterances=False),
        "violations_utterances": violation_metrics(chats, preds, utterances=True),
        **chat_metrics(chats, preds),
    }


def refit_scores(chats, preds: Predictions, folds, base: QAProfile) -> None:
    """Re-score each fold's conversations with QA constants fitted on the other folds' (the
    models' cross-validated findings against the inspectors' scores)."""
    for train, test in folds:
        fit_on = [ci for ci in sorted(train) if ci in preds.qa_inputs]
        profile = QAProfile.model_validate(
            fit_constants(base, [preds.qa_inputs[ci] for ci in fit_on], [chats[ci].labels["score"] for ci in fit_on])
        )
        for ci in test:
            if ci in preds.qa_inputs:
                result = qa.score(preds.qa_inputs[ci], profile)
                preds.grade[ci], preds.score[ci] = result.grade, result.score


def evaluate(chats, pipeline, rules, progress=lambda s: None) -> tuple[dict, Predictions]:
    """CV, leave-one-file-out and the lexicon-only baseline as one metrics dict, and the CV
    predictions (their QA inputs fit the final constants)."""
    examples = all_examples(chats, rules)
    base_profile = rules.profiles["default"]
    cv_folds, file_folds = folds_cv(chats), folds_by_file(chats)
    cv = cross_predict(chats, examples, cv_folds, pipeline, rules, progress)
    progress("QA constants (CV)")
    refit_scores(chats, cv, cv_folds, base_profile)
    lofo = cross_predict(chats, examples, file_folds, pipeline, rules, progress)
    progress("QA constants (leave one file out)")
    refit_scores(chats, lofo, file_folds, base_profile)
    base = lexicon_predict(chats, pipeline, rules)
    by_file = {}
    for f in sorted({c.file for c in chats if not c.is_utterance and not c.is_extra}):
        keep = {i for i, c in enumerate(chats) if c.file == f}
        sub = Predictions(
            {k: v for k, v in lofo.turn_codes.items() if k[0] in keep},
            {k: v for k, v in lofo.resolution.items() if k in keep},
            {k: v for k, v in lofo.satisfaction.items() if k[0] in keep},
            {k: v for k, v in lofo.grade.items() if k in keep},
            {k: v for k, v in lofo.score.items() if k in keep},
        )
        m = all_metrics(chats, sub)
        by_file[f] = {
            "violations_micro_f1": m["violations_conversations"]["micro_f1"],
            "resolution_accuracy": m["resolution"]["accuracy"],
            "satisfaction_macro_f1": m["satisfaction"]["macro_f1"],
            "grade_exact": m["grade"]["exact"],
            "score_mae": m["grade"]["score_mae"],
        }
    metrics = {
        "cv": all_metrics(chats, cv),
        "leave_one_file_out": all_metrics(chats, lofo) | {"by_file": by_file},
        "lexicon_only": all_metrics(chats, base),
    }
    return metrics, cv


def fit_profile(chats, cv: Predictions, base: QAProfile) -> dict:
    """The default profile's constants fitted on every conversation's cross-validated findings."""
    cis = sorted(cv.qa_inputs)
    return fit_constants(base, [cv.qa_inputs[ci] for ci in cis], [chats[ci].labels["score"] for ci in cis])


def fit_final(chats, rules, extra: dict) -> ChatModel:
    examples = all_examples(chats, rules)
    return fit_chat_model(chats, examples, set(range(len(chats))), extra)


# --- the run: what training/train_chat.py and `pingjia train --only chat` execute -----------
@dataclass
class ChatConfig:
    data: Path  # the shared data folder (holding chat/)
    out: Path  # models directory
    lexicons: Path
    extra: Path | None = EXTRA_DIR  # the project's written chats (training only); None: without
    evaluate: bool = True
    dry_run: bool = False


class ChatTraining:
    """Load -> evaluate (CV, leave-one-file-out, lexicon baseline) -> fit -> write."""

    def __init__(self, config: ChatConfig, say: Callable[[str], None] = print):
        self.config, self.say = config, say
        self.metrics: dict = {}
        self.cv: Predictions | None = None
        self.path: Path | None = None

    def load(self) -> None:
        cfg = self.config
        if not (Path(cfg.data) / "chat").is_dir():
            raise TrainingError(f"{cfg.data}/chat: no labelled chats (see CHAT_ANNOTATION.md)")
        self.pipeline = build_pipeline(cfg.lexicons, cfg.out)
        self.pipeline.chat = None  # findings of the previous chat model must not leak into training
        self.rules = load_conversation_rules(cfg.lexicons)
        self.chats = read_chats(cfg.data, cfg.extra)
        attach_views(self.chats, self.pipeline, self.rules)
        kinds = Counter(
            "extra" if c.is_extra else ("utterance" if c.is_utterance else "conversation") for c in self.chats
        )
        self.say(f"  {len(self.chats)} labelled chats: {dict(kinds)}")

    def evaluate(self) -> None:
        t = time.monotonic()
        self.metrics, self.cv = evaluate(self.chats, self.pipeline, self.rules, progress=lambda s: self.say("  " + s))
        self.metrics["evaluation_seconds"] = round(time.monotonic() - t, 1)
        self.say(summary_table(self.metrics))

    def fit(self) -> None:
        t = time.monotonic()
        base = self.rules.profiles["default"]
        self.profile = fit_profile(self.chats, self.cv, base) if self.cv else None
        extra = {"segmenter": self.pipeline.segmenter.name}
        self.model = fit_final(self.chats, self.rules, extra)
        self.state = ChatModel.state_of(self.model.vocab, self.model.head, extra)
        self.metrics["train_seconds"] = round(time.monotonic() - t, 1)

    def write(self) -> Path | None:
        cfg = self.config
        self.metrics |= {
            "kind": KIND,
            "segmenter": self.pipeline.segmenter.name,
            "data": {
                "shared": Counter(c.file for c in self.chats if not c.is_extra),
                "extra": Counter(c.file for c in self.chats if c.is_extra),
            },
            "package_versions": package_versions(["scikit-learn", "numpy", "scipy", "rjieba", "jieba"]),
        }
        if cfg.dry_run:
            self.say("  --dry-run: nothing written")
            return None
        self.path = save_artifact(cfg.out, KIND, self.state, self.metrics, chat_card(self.metrics))
        self.say(f'  wrote {self.path}; {Path(cfg.out) / "current.json"} points "chat" at it')
        if self.profile is not None:
            write_profile(cfg.lexicons / "qa_profiles" / "default.json", self.profile, self.metrics, self.path.name)
            self.say(f"  QA constants fitted into {cfg.lexicons / 'qa_profiles' / 'default.json'}")
        return self.path

    def run(self) -> ChatTraining:
        self.load()
        if self.config.evaluate:
            self.evaluate()
        self.fit()
        self.write()
        return self


def train_chat(config: ChatConfig) -> Path | None:
    return ChatTraining(config).run().path


def write_profile(path: Path, fitted: dict, metrics: dict, version: str) -> None:
    """The default profile with its fitted constants (weights and the analyst's text kept)."""
    current = json.loads(path.read_text(encoding="utf-8"))
    out = {k: current[k] for k in ("description", "weights") if k in current}
    out["version"] = time.strftime("%Y-%m-%d") + ".fit"
    for key in ("slow_reply_seconds", "very_slow_severity", "deductions", "responsiveness", "attitude", "resolution"):
        out[key] = fitted[key]
    out["competence"] = fitted["competence"]
    out["caps"] = fitted["caps"]
    cv = metrics.get("cv", {}).get("grade", {})
    out["fitted"] = {
        "by": "training/train_chat.py (training/chat_qa.py)",
        "chat_model": version,
        "on": "cross-validated findings of the chat model vs the inspectors' scores",
        "cv_score_mae": cv.get("score_mae"),
        "cv_grade_exact": cv.get("exact"),
    }
    path.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def summary_table(m: dict) -> str:
    rows = [
        ("agent-turn violations micro-F1", ("violations_conversations", "micro_f1")),
        ("  on the utterance files", ("violations_utterances", "micro_f1")),
        ("  clean utterances flagged", ("violations_utterances", "clean_turns_flagged_rate")),
        ("resolution accuracy", ("resolution", "accuracy")),
        ("resolution macro-F1", ("resolution", "macro_f1")),
        ("satisfaction macro-F1", ("satisfaction", "macro_f1")),
        ("grade exact", ("grade", "exact")),
        ("grade within one band", ("grade", "within_one")),
        ("score MAE", ("grade", "score_mae")),
    ]
    lines = [f"  {'':32}{'CV':>10}{'leave-1-file':>14}{'lexicon only':>14}"]
    for name, (a, b) in rows:
        cells = []
        for k in ("cv", "leave_one_file_out", "lexicon_only"):
            v = m[k][a][b] if not (k == "leave_one_file_out" and a == "violations_utterances") else None
            cells.append("—" if v is None else f"{v:.3f}")
        lines.append(f"  {name:32}{cells[0]:>10}{cells[1]:>14}{cells[2]:>14}")
    return "\n".join(lines)
