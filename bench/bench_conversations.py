"""Latency of transcript inspection, against the naive peer, and the fixtures' scores and grades.

Run: .venv/bin/python bench/bench_conversations.py [--runs 300] [--turns 50] [--fake]

In-process, one transcript at a time (what POST /v1/conversations/analyze does):
- engine: ``analyze_conversation`` -> all turns scored in ONE ``Pipeline.analyze_batch`` call;
- naive peer: the same engine, but the pipeline is called once per turn (``Pipeline.analyze``),
  as a first implementation would;
- pipeline only: one ``analyze_batch`` over the same turns, to show what the rules cost on top.
Every run uses a different 50-turn transcript (rotated through the fixtures), so nothing is
cached between measured calls. Uses the trained sentiment model when ``models/current.json``
exists, otherwise (or with --fake) a lexicon-sign stand-in, and says which.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.conversations import analyze_conversation, load_conversation_rules  # noqa: E402
from app.pipeline.engine import TextItem  # noqa: E402
from app.pipeline.findings import SentimentFinding  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "conversations"


class LexiconSign:
    """Stand-in sentiment: the sign of the summed keyword weights (used when no model is trained)."""

    version = "bench-lexicon-sign"

    def predict(self, docs):
        out = []
        for d in docs:
            total = sum(h.weight if h.polarity == "positive" else -h.weight for h in d.hits)
            label = "positive" if total > 0 else "negative" if total < 0 else "neutral"
            out.append(
                SentimentFinding(label, {k: 0.8 if k == label else 0.1 for k in ("positive", "neutral", "negative")})
            )
        return out


def build(fake: bool):
    from app.core.config import get_settings
    from app.pipeline.aspects import LexiconAspectScorer
    from app.pipeline.engine import Pipeline, build_pipeline, build_segmenter
    from app.pipeline.lexicon import load_lexicon

    s = get_settings()
    if not fake and (s.models_dir / "current.json").is_file():
        return build_pipeline(s.lexicon_dir, s.models_dir), "trained model"
    lexicon = load_lexicon(s.lexicon_dir)
    return Pipeline(
        lexicon=lexicon,
        segmenter=build_segmenter(lexicon),
        sentiment=LexiconSign(),
        aspects=LexiconAspectScorer(lexicon.version),
    ), "lexicon-sign stand-in (no trained model)"


class PerTurn:
    """The naive peer: the same pipeline, called once per turn."""

    def __init__(self, pipeline):
        self.pipeline, self.versions = pipeline, pipeline.versions

    def analyze_batch(self, items, **_):
        return [self.pipeline.analyze(i.text, i.id) for i in items]


def fixtures() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("*.json"))]


def transcripts(n_turns: int, runs: int) -> list[dict]:
    """``runs`` different timed transcripts of ``n_turns`` turns built from the fixtures' turns."""
    pool = [t for c in fixtures() if "error" not in c["expected"] for t in c["turns"]]
    out = []
    for r in range(runs):
        turns = []
        for i in range(n_turns):
            t = pool[(r * 7 + i) % len(pool)]
            turns.append({"role": t["role"], "text": t["text"], "time": 1795140000 + r * 10_000 + i * 20})
        out.append({"id": f"bench-{r}", "turns": turns})
    return out


def measure(fn, items) -> list[float]:
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t) * 1000)
    return times


def line(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{name:44s} p50 {statistics.median(ms):7.2f} ms   p99 {q[98]:7.2f} ms   mean {statistics.fmean(ms):7.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--turns", type=int, default=50)
    ap.add_argument("--fake", action="store_true", help="use the stand-in sentiment even if a model exists")
    args = ap.parse_args()
    pipeline, kind = build(args.fake)
    rules = load_conversation_rules(ROOT / "lexicons")
    convs = transcripts(args.turns, args.runs)
    naive = PerTurn(pipeline)
    for c in convs[:5]:  # warm-up: opencc, jieba caches, lazily built tables
        analyze_conversation(c, pipeline, rules)
        analyze_conversation(c, naive, rules)
    print(
        f"sentiment: {kind} ({pipeline.sentiment.version}); {args.runs} transcripts x {args.turns} turns, "
        f"{statistics.fmean(sum(len(t['text']) for t in c['turns']) for c in convs):.0f} chars each"
    )
    engine = measure(lambda c: analyze_conversation(c, pipeline, rules), convs)
    chat, pipeline.chat = pipeline.chat, None  # the same engine with the lexicon rules alone
    lexicon_only = measure(lambda c: analyze_conversation(c, pipeline, rules), convs)
    pipeline.chat = chat
    peer = measure(lambda c: analyze_conversation(c, naive, rules), convs)
    only = measure(lambda c: pipeline.analyze_batch([TextItem(t["text"]) for t in c["turns"]]), convs)
    print(f"chat model: {chat.version if chat else 'none'}")
    print(line("engine (one analyze_batch per transcript)", engine))
    print(line("engine without the chat model (lexicons only)", lexicon_only))
    print(line("naive peer (Pipeline.analyze per turn)", peer))
    print(line("pipeline only (analyze_batch, no rules)", only))
    p50 = statistics.median(engine)
    print(
        f"target p50 <= 20 ms: {'met' if p50 <= 20 else 'MISSED'} ({p50:.2f} ms); "
        f"naive peer is {statistics.median(peer) / p50:.2f}x the engine's p50"
    )
    print()
    print_table(pipeline, rules)


def print_table(pipeline, rules) -> None:
    print("| fixture | profile | score | grade | resolution | escalation | violations |")
    print("|---|---|---:|---|---|---|---|")
    for c in fixtures():
        name = c["id"].removeprefix("fx-")
        if "error" in c["expected"]:
            print(f"| {name} | | | 4xx `{c['expected']['error']['code']}` | | | |")
            continue
        r = analyze_conversation(c, pipeline, rules)
        rules_seen = ", ".join(sorted({v.rule for v in r.violations})) or "-"
        print(
            f"| {name} | {r.qa.profile} | {r.qa.score:.1f} | {r.qa.grade_zh} {r.qa.grade} | {r.resolution.status} "
            f"| {r.customer.escalation.risk} | {rules_seen} |"
        )


if __name__ == "__main__":
    main()
