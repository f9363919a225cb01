"""This tree against an earlier revision of it, on the same reviews: speed and findings.

The peer is the code as it was (``--before``, any git revision), checked out into a temporary
worktree (its C extension, if it has one, built there), with the models and lexicons of each
tree. Each round runs one process per tree, alternating, so machine drift hits both; a process
times ``analyze_batch`` over the reviews (500 per call, after a warm-up) and raw ``jieba.lcut``
over the same reviews, and the first round also writes every finding. Reported:

* docs/s per tree (median of the rounds) and each tree's ratio to raw jieba in the same process;
* the fraction of reviews whose findings changed (any field), and per field;
* with ``--eval``, ``pingjia eval``'s figures on the labelled files under both trees, and
  whether they are equal.

    .venv/bin/python bench/bench_revisions.py --before 13a99ba [--eval]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import load_average, load_reviews  # noqa: E402
from worktree import checkout, git, remove  # noqa: E402

CHILD = r"""
import dataclasses, json, sys, time
from pathlib import Path
import jieba
from app.pipeline.engine import TextItem, build_pipeline

texts = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
out = sys.argv[2]
pipeline = build_pipeline(Path("lexicons"), Path("models"))
jieba.setLogLevel(60)
jieba.lcut("预热")
pipeline.analyze_batch([TextItem(t) for t in texts[:200]])
t = time.process_time()
for x in texts:
    jieba.lcut(x)
jieba_s = time.process_time() - t
t = time.process_time()
results = []
for i in range(0, len(texts), 500):
    results += pipeline.analyze_batch([TextItem(x) for x in texts[i : i + 500]])
pipe_s = time.process_time() - t
if out:
    with open(out, "w", encoding="utf-8") as f:
        for a in results:
            d = dataclasses.asdict(a)
            d.pop("doc", None)
            f.write(json.dumps(d, ensure_ascii=False, sort_keys=True, default=str) + "\n")
print(json.dumps({"docs_s": len(texts) / pipe_s, "vs_jieba": jieba_s / pipe_s}))
"""


def run_child(tree: Path, texts_file: Path, findings: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(texts_file), str(findings or "")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def changed(before: Path, after: Path) -> dict:
    """Fraction of reviews whose findings differ, overall and per field."""
    rows = 0
    any_changed = 0
    per_field: dict[str, int] = {}
    with open(before, encoding="utf-8") as fb, open(after, encoding="utf-8") as fa:
        for lb, la in zip(fb, fa, strict=True):
            rows += 1
            b, a = json.loads(lb), json.loads(la)
            diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            any_changed += bool(diff)
            for k in diff:
                per_field[k] = per_field.get(k, 0) + 1
    return {"rows": rows, "changed": any_changed / rows, "per_field": {k: v / rows for k, v in per_field.items()}}


def run_eval(tree: Path, data: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]
    subprocess.run(
        [*cmd, "eval", "--data", str(data), "--out", str(out)], cwd=tree, env=env, check=True, capture_output=True
    )
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*.json"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision to compare against (e.g. a commit hash)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--n", type=int, default=5000, help="reviews (default 5000, the make bench set)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--eval", action="store_true", help="also compare pingjia eval's figures on the labelled files")
    args = ap.parse_args()

    texts = load_reviews(args.data, args.n)
    print(
        f"{len(texts)} reviews; before = {args.before} ({git('rev-parse', '--short', args.before)}), "
        f"after = this tree ({git('rev-parse', '--short', 'HEAD')}{'+changes' if git('status', '--porcelain', '--untracked-files=no') else ''})"
    )
    print(load_average())
    with tempfile.TemporaryDirectory(prefix="pingjia-rev-") as tmp:
        tmp = Path(tmp)
        texts_file = tmp / "texts.json"
        texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        old = checkout(args.before, tmp / "before")
        try:
            trees = {"before": old, "after": ROOT}
            runs: dict[str, list[dict]] = {k: [] for k in trees}
            for r in range(args.rounds):
                for name, tree in trees.items():
                    runs[name].append(run_child(tree, texts_file, tmp / f"{name}.jsonl" if r == 0 else None))
            for name in trees:
                rate = statistics.median(x["docs_s"] for x in runs[name])
                ratio = statistics.median(x["vs_jieba"] for x in runs[name])
                print(
                    f"  {name:6s} {rate:7.0f} docs/s in-process, one core   ({ratio:.2f}x raw jieba in the same process)"
                )
            b = statistics.median(x["docs_s"] for x in runs["before"])
            a = statistics.median(x["docs_s"] for x in runs["after"])
            print(f"  after / before: {a / b:.2f}x")
            diff = changed(tmp / "before.jsonl", tmp / "after.jsonl")
            print(f"  findings changed: {diff['changed']:.2%} of {diff['rows']} reviews {diff['per_field'] or ''}")
            if args.eval:
                figures = {name: run_eval(tree, args.data, tmp / f"eval-{name}") for name, tree in trees.items()}
                same = figures["before"] == figures["after"]
                print(f"  pingjia eval --data {args.data}: figures {'identical' if same else 'DIFFER'} in both trees")
                for name, tree in figures.items():
                    for report in tree.values():
                        sent, asp = report["sentiment"], report["aspects"]
                        print(
                            f"    {name}: sentiment macro-F1 {sent['macro_f1']}, accuracy {sent['accuracy']}; "
                            f"aspect/polarity micro-F1 {asp['aspect_polarity']['micro_f1']}, "
                            f"root causes micro-F1 {asp['root_causes']['micro_f1']} ({report['rows']} rows)"
                        )
        finally:
            remove(old)
    print(f"{load_average()} after the run")


if __name__ == "__main__":
    main()
