"""How precise the similar-sentence rules of ``lexicons/qa_rules.json`` are, per 服务禁语 code.

Run: .venv/bin/python bench/bench_rules.py [--data ../shared/data/chat] [--chars-only] [--target 0.85]

On the labelled chats of CHAT_ANNOTATION.md (skipped with a message when they are absent):
``utterances_a.jsonl`` / ``utterances_b.jsonl`` (450 agent replies each, with the customer turn
before; more than half are deliberate look-alikes that are NOT violations) and the agent turns
of the conversations ``train_*.jsonl``. Per code: precision, recall and the look-alike
false-positive rate (hits on replies labelled with no violation at all / such replies).

The shared threshold is CHOSEN on one utterance file (the lowest threshold on a 0.05 grid with
pooled precision >= --target) and CHECKED on the other and on the conversations,
both ways round, so no figure is tuned on the split it reports. The rule file's own thresholds
are printed too. Similarity uses the served aspect model's word vectors (``--chars-only``: the
character cosine alone, what a pipeline without word vectors gets).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.conversations.custom_rules import SERVICE_CODES, CustomRules, word_source  # noqa: E402
from app.conversations.lexicons import load_conversation_rules, load_qa_rules  # noqa: E402
from app.conversations.text import turn_text  # noqa: E402

GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]


def load(data: Path) -> dict[str, list[tuple[list[str], list[str], set[str]]]]:
    """Named sets of (roles, texts, codes of the LAST agent turn to judge) items.

    Utterances: [customer context, agent reply]. Conversations: every labelled agent turn, as
    the conversation up to and including it (so position scopes see what they would live)."""
    sets = {}
    for name in ("utterances_a", "utterances_b"):
        rows = [json.loads(line) for line in (data / f"{name}.jsonl").open(encoding="utf-8")]
        sets[name] = [(["customer", "agent"], [r["context"], r["text"]], set(r["violations"])) for r in rows]
    conv = []
    for path in sorted(data.glob("train_*.jsonl")):
        for line in path.open(encoding="utf-8"):
            r = json.loads(line)
            roles, texts = [t["role"] for t in r["turns"]], [t["text"] for t in r["turns"]]
            for at in r["labels"]["agent_turns"]:
                k = at["turn"]
                conv.append((roles[: k + 1], texts[: k + 1], set(at["violations"])))
    sets["conversations"] = conv
    return sets


def similarities(rules: CustomRules, items, words) -> list[dict[str, float]]:
    """Per item: the best similarity of its last turn to each code's rules (0 when none fired)."""
    out = []
    for roles, texts, _ in items:
        hits = rules.apply(roles, [turn_text(t) for t in texts], list(range(len(texts))), words)
        best: dict[str, float] = {}
        for h in hits:
            if h.turn == len(texts) - 1 and h.similarity is not None:
                best[h.code] = max(best.get(h.code, 0.0), h.similarity)
        out.append(best)
    return out


def figures(scores, items, threshold: float, codes) -> dict[str, tuple[int, int, int, int, int]]:
    """code -> (true positives, fired, labelled, fired on look-alikes, look-alikes)."""
    clean = sum(1 for *_, labels in items if not labels)
    out = {}
    for c in codes:
        fired = [i for i, s in enumerate(scores) if s.get(c, 0.0) >= threshold]
        tp = sum(c in items[i][2] for i in fired)
        out[c] = (tp, len(fired), sum(c in labels for *_, labels in items), sum(not items[i][2] for i in fired), clean)
    return out


def pooled(fig) -> tuple[float, float, int, int]:
    tp, fired, pos, la, _ = (sum(v[k] for v in fig.values()) for k in range(5))
    return (tp / fired if fired else 1.0), (tp / pos if pos else 0.0), la, fired


def choose(scores, items, codes, target: float) -> float:
    """The lowest grid threshold whose pooled precision reaches ``target`` (with a hit at all)."""
    for t in GRID:
        p, _, _, fired = pooled(figures(scores, items, t, codes))
        if fired and p >= target:
            return t
    return GRID[-1]


def table(title: str, fig) -> None:
    print(f"  {title}")
    print(f"    {'code':<15}{'P':>7}{'R':>7}{'TP/fired/labelled':>20}{'look-alike FP':>16}")
    for c, (tp, fired, pos, la, clean) in fig.items():
        p = f"{tp / fired:.2f}" if fired else "  -"
        r = f"{tp / pos:.2f}" if pos else "  -"
        print(f"    {c:<15}{p:>7}{r:>7}{f'{tp}/{fired}/{pos}':>20}{f'{la}/{clean} {la / clean:.1%}':>16}")
    p, r, la, fired = pooled(fig)
    print(f"    {'pooled':<15}{p:>7.2f}{r:>7.2f}{'':>20}{la:>5} look-alike hits")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "chat")
    ap.add_argument("--rules", type=Path, default=ROOT / "lexicons" / "qa_rules.json")
    ap.add_argument("--chars-only", action="store_true", help="no word vectors: the character cosine alone")
    ap.add_argument("--target", type=float, default=0.85, help="pooled precision the chosen threshold must keep")
    args = ap.parse_args()
    if not (args.data / "utterances_a.jsonl").is_file():
        print(f"SKIPPED: labelled chats not found in {args.data} (CHAT_ANNOTATION.md data; pass --data)")
        return 0
    loaded = load_qa_rules(args.rules)
    similar = [r for r in loaded.rules if r.examples and r.code in SERVICE_CODES]
    codes = [c for c in SERVICE_CODES if any(r.code == c for r in similar)]
    # every similarity reported (threshold 0): the sweep filters afterwards
    probe = CustomRules(tuple(dataclasses.replace(r, threshold=1e-9) for r in similar), loaded.version)
    words = None
    if not args.chars_only:
        from app.core.config import get_settings
        from app.pipeline.engine import build_pipeline

        s = get_settings()
        words = word_source(build_pipeline(s.lexicon_dir, s.models_dir))
    print(
        f"rules {args.rules.name} {loaded.version}: {len(similar)} similar-sentence rules, similarity: "
        f"{'characters + word vectors' if words else 'characters alone'}"
    )
    sets = load(args.data)
    t0 = time.perf_counter()
    scores = {name: similarities(probe, items, words) for name, items in sets.items()}
    n = sum(len(v) for v in sets.values())
    print(f"{n} judged agent turns in {time.perf_counter() - t0:.1f} s")
    for chosen_on, check in (("utterances_a", "utterances_b"), ("utterances_b", "utterances_a")):
        t = choose(scores[chosen_on], sets[chosen_on], codes, args.target)
        print(f"\nthreshold {t:.2f}: chosen on {chosen_on} (the lowest with pooled precision >= {args.target})")
        for name in (chosen_on, check, "conversations"):
            role = "chosen on" if name == chosen_on else "check"
            table(f"{name} ({role})", figures(scores[name], sets[name], t, codes))
    print("\nthe rule file's own thresholds:", sorted({r.threshold for r in similar}))
    lexicon = load_conversation_rules(args.rules.parent).forbidden
    for name, items in sets.items():
        fig = {}
        for r in similar:
            fig[r.code] = figures(scores[name], items, r.threshold, [r.code])[r.code]
        p, rec, la, fired = pooled(fig)
        # what the rules add: true hits on turns where no forbidden_phrases.csv phrase matched
        true = [
            i
            for i, s in enumerate(scores[name])
            if any(s.get(r.code, 0.0) >= r.threshold and r.code in items[i][2] for r in similar)
        ]
        new = sum(not lexicon.find(turn_text(items[i][1][-1])) for i in true)
        print(
            f"  {name:<15} P {p:.2f}  R {rec:.2f}  look-alike hits {la}  fired {fired}; "
            f"{new} of {len(true)} correct turns have no forbidden_phrases.csv hit"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
