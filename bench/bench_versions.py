"""Two aspect-model versions on the same reviews, in one process, interleaved: did a retrain make
serving slower? (issue 12: "serving latency and throughput must not get worse").

Run: .venv/bin/python bench/bench_versions.py --data ../shared/data --before 2026-12-05-1 [--after <served>]

Both pipelines share the lexicon, segmenter and sentiment model and differ only in the aspect
model. Each round times every pipeline on the same texts (fresh documents every time: nothing is
cached between measured calls), alternating which goes first; the best round of each is reported,
since on a shared machine the minimum is the figure load disturbs least. Also: single-text
latency (p50 / p99 of ``analyze`` over 1,000 texts) and the fraction of texts whose aspects changed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_hostile import pct  # noqa: E402
from bench_pipeline import load_average, load_reviews  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--before", required=True, help="aspects version to compare against")
    ap.add_argument("--after", help="aspects version (default: the served one)")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from app.core.config import get_settings
    from app.pipeline.aspect_model import load_aspect_model
    from app.pipeline.engine import Pipeline, TextItem, build_pipeline

    s = get_settings()
    served = build_pipeline(s.lexicon_dir, s.models_dir)
    pipes = {}
    for name, version in (("before", args.before), ("after", args.after)):
        aspects = load_aspect_model(s.models_dir, served.lexicon, version=version) if version else served.aspects
        pipes[f"{name} {aspects.version}"] = Pipeline(
            lexicon=served.lexicon,
            segmenter=served.segmenter,
            sentiment=served.sentiment,
            aspects=aspects,
            chat=served.chat,
        )
    texts = load_reviews(args.data, args.n)
    print(f"{len(texts)} reviews, one core in-process, {args.rounds} rounds; {load_average()}")
    for p in pipes.values():
        p.analyze("预热一下")

    best = {k: float("inf") for k in pipes}
    order = list(pipes)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            for i in range(0, len(texts), 500):
                pipes[name].analyze_batch([TextItem(x) for x in texts[i : i + 500]])
            best[name] = min(best[name], time.perf_counter() - t)
    for name, sec in best.items():
        print(f"  {name:<24} batch {len(texts) / sec:8.0f} docs/s (best of {args.rounds})")

    sample = texts[:1000]
    for name, p in pipes.items():
        lat = []
        for x in sample:
            t = time.perf_counter()
            p.analyze(x)
            lat.append((time.perf_counter() - t) * 1000)
        print(f"  {name:<24} analyze p50 {statistics.median(lat):.3f} ms, p99 {pct(lat, 99):.3f} ms")

    a, b = pipes.values()
    found = [
        [{(f.aspect, f.polarity) for f in res.aspects} for res in p.analyze_batch([TextItem(x) for x in texts])]
        for p in (a, b)
    ]
    changed = sum(x != y for x, y in zip(*found))
    print(f"  aspects changed on {changed} of {len(texts)} texts ({changed / len(texts):.1%}); {load_average()}")


if __name__ == "__main__":
    main()
