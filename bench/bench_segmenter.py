"""Compiled jieba (rjieba, the service's segmenter) against Python jieba: agreement and speed.

Run: .venv/bin/python bench/bench_segmenter.py --data ../shared/data [--n 20000]

Both segmenters are built as the service builds its own (user dictionary plus every lexicon
term; ``engine.build_segmenter`` and ``segment.PyJiebaSegmenter``) and also bare (their shipped
dictionaries only). On the same normalised reviews it reports the share of texts whose token
lists are identical, what the differing tokens are (grouped), and throughput of each. Nothing
is cached between runs.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import get_settings  # noqa: E402
from app.pipeline.engine import build_segmenter  # noqa: E402
from app.pipeline.lexicon import load_lexicon  # noqa: E402
from app.pipeline.normalize import normalize  # noqa: E402
from app.pipeline.segment import PyJiebaSegmenter, Segmenter  # noqa: E402

_ASCII_RUN = re.compile(r"^[0-9A-Za-z.\-_%+#&/:]+$")


def load_texts(data: Path, n: int, seed: int) -> list[str]:
    with open(data / "reviews_train.csv", encoding="utf-8") as f:
        texts = [row["review"] for row in csv.DictReader(f) if row["review"].strip()]
    random.Random(seed).shuffle(texts)
    out = []
    for t in texts:
        norm = normalize(t[:5000]).text
        if norm:
            out.append(norm)
        if len(out) == n:
            break
    return out


def diff_pieces(a: list, b: list) -> tuple[str, str]:
    """The differing stretch of two token lists (common prefix and suffix dropped)."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    j = 0
    while j < min(len(a), len(b)) - i and a[-1 - j] == b[-1 - j]:
        j += 1
    return " ".join(w for w, _, _ in a[i : len(a) - j]), " ".join(w for w, _, _ in b[i : len(b) - j])


def kind(py: str, rs: str, skipped_terms: set[str]) -> str:
    """Why two segmentations differ, roughly."""
    if rs in skipped_terms or any(w in skipped_terms for w in rs.split()):
        return "lexicon term Python jieba never added (a prefix of a dictionary word)"
    if all(_ASCII_RUN.match(w) for w in (py + " " + rs).split()):
        return "numbers / latin runs with . - _ (8.0, 3.3kg, t.cn)"
    return "other (HMM on unknown words, ties such as 呵呵呵)"


def compare(name: str, py, rs, texts: list[str], skipped: set[str]) -> dict:
    t = time.perf_counter()
    a = [py.tokenize(x) for x in texts]
    py_s = time.perf_counter() - t
    t = time.perf_counter()
    b = [rs.tokenize(x) for x in texts]
    rs_s = time.perf_counter() - t
    assert all(x[s:e] == w for x, toks in zip(texts, b) for w, s, e in toks), "an rjieba offset is off"
    same = sum(x == y for x, y in zip(a, b))
    kinds: Counter[str] = Counter()
    pieces: Counter[tuple[str, str]] = Counter()
    for x, y in zip(a, b):
        if x != y:
            p = diff_pieces(x, y)
            pieces[p] += 1
            kinds[kind(*p, skipped)] += 1
    n = len(texts)
    print(f"\n{name}: {n} reviews")
    print(f"  identical token lists   {same / n:.2%} ({same} of {n}); differing {n - same}")
    for k, c in kinds.most_common():
        print(f"    {c:5d}  {k}")
    print("  most frequent differences (Python jieba | rjieba):")
    for (p, r), c in pieces.most_common(12):
        print(f"    {c:5d}  {p} | {r}")
    print(f"  Python jieba {n / py_s:8.0f} docs/s   rjieba {n / rs_s:8.0f} docs/s   ({py_s / rs_s:.1f}x)")
    return {"identical": same / n, "py_docs_s": n / py_s, "rs_docs_s": n / rs_s}


def compare_findings(data: Path, old_sentiment: str, old_aspects: str, n: int = 5000) -> None:
    """How many of the ``make bench`` reviews get other findings from the served pipeline than
    from the previous one (Python jieba + the models ``old_*`` name)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_pipeline import load_reviews

    from app.pipeline import sentiment as S
    from app.pipeline.artifacts import load_artifact
    from app.pipeline.aspect_model import load_aspect_model
    from app.pipeline.engine import Pipeline, TextItem, build_pipeline

    settings = get_settings()
    new = build_pipeline(settings.lexicon_dir, settings.models_dir)
    lexicon = new.lexicon
    state, _, version = load_artifact(settings.models_dir, S.KIND, old_sentiment)
    old = Pipeline(
        lexicon=lexicon,
        segmenter=PyJiebaSegmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets]),
        sentiment=S.LinearSentimentModel(state, version),
        aspects=load_aspect_model(settings.models_dir, lexicon, version=old_aspects),
    )
    texts = load_reviews(data, n)
    a = [r for i in range(0, n, 500) for r in old.analyze_batch([TextItem(x) for x in texts[i : i + 500]])]
    b = [r for i in range(0, n, 500) for r in new.analyze_batch([TextItem(x) for x in texts[i : i + 500]])]
    parts = {
        "sentiment label": lambda r: r.sentiment.label,
        "aspects (aspect, polarity)": lambda r: sorted((f.aspect, f.polarity) for f in r.aspects),
        "root causes": lambda r: sorted(f.aspect for f in r.root_causes),
        "keywords (term, polarity, span)": lambda r: [(k.term, k.polarity, k.start, k.end) for k in r.keywords],
        "evidence spans": lambda r: sorted((f.aspect, f.polarity, f.evidence) for f in r.aspects),
    }
    print(
        f"\nfindings on the {n} bench reviews: {old.versions} + {old.segmenter.name} -> {new.versions} + {new.segmenter.name}"
    )
    any_change = [False] * n
    for name, key in parts.items():
        changed = [key(x) != key(y) for x, y in zip(a, b)]
        any_change = [p or q for p, q in zip(any_change, changed)]
        print(f"  {name:34s} changed for {sum(changed) / n:6.2%}")
    print(f"  {'any of the above':34s} changed for {sum(any_change) / n:6.2%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--findings",
        nargs=2,
        metavar=("SENTIMENT", "ASPECTS"),
        help="only compare the served findings with those of Python jieba + these older model versions",
    )
    args = ap.parse_args()
    if not (args.data / "reviews_train.csv").is_file():
        raise SystemExit(f"{args.data}/reviews_train.csv not found: pass --data")
    if args.findings:
        compare_findings(args.data, *args.findings)
        return
    texts = load_texts(args.data, args.n, args.seed)
    lexicon = load_lexicon(get_settings().lexicon_dir)

    t = time.perf_counter()
    rs = build_segmenter(lexicon)
    rs_build = time.perf_counter() - t
    t = time.perf_counter()
    py = PyJiebaSegmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets])
    py_build = time.perf_counter() - t
    print(f"build with the lexicon: rjieba {rs_build:.2f} s, Python jieba {py_build:.2f} s ({rs.name} vs {py.name})")
    terms = {w for w in [*lexicon.keywords, *lexicon.targets] if len(w) > 1}
    skipped = {w for w in terms if py._tok.FREQ.get(w) == 0}
    print(f"lexicon terms Python jieba skips as prefixes of dictionary words: {sorted(skipped)}")
    compare("service segmenters (user dictionary + lexicon terms)", py, rs, texts, skipped)
    compare("bare dictionaries", PyJiebaSegmenter(), Segmenter(), texts, set())
    nohmm = Segmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets], hmm=False)
    py_nohmm = PyJiebaSegmenter(lexicon.userdict, [*lexicon.keywords, *lexicon.targets], hmm=False)
    compare("service segmenters, HMM off", py_nohmm, nohmm, texts, skipped)


if __name__ == "__main__":
    main()
