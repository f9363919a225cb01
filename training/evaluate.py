# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Evaluate the served models on any labelled file
#
#     .venv/bin/python training/evaluate.py --data my_labels.jsonl      # or: pingjia eval --data FILE
#
# Scores the file with the models the service serves (`models/current.json`, or
# `PINGJIA_MODELS_DIR` / `--models`), through the same `Pipeline.analyze_batch` the API uses,
# and prints per-class tables:
#
# * **annotation JSONL** (`{"text", "aspects": [{"aspect", "polarity"}], "sentiment"?}`, see
#   `docs/models.md`): the 18 aspect-polarity pairs, the 9 root causes (negative pairs), and the
#   three-class sentiment when rows carry `sentiment`;
# * **CSV** with a header holding `text` (or `review`) and `label` (`1`/`0`, `pos`/`neg`,
#   `positive`/`negative`): binary sentiment (positive when P(positive) ≥ P(negative)), overall
#   and per `domain` when that column exists.
#
# A malformed row stops the run with its line number. `--out DIR` also writes the figures as
# `DIR/eval-<file name>.json`.

# %%
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from app.core.config import get_settings  # noqa: E402
from app.pipeline import aspect_training as AT  # noqa: E402
from app.pipeline.artifacts import ArtifactError, read_metrics  # noqa: E402
from app.pipeline.engine import TextItem, build_pipeline  # noqa: E402
from app.pipeline.findings import ItemError  # noqa: E402
from app.pipeline.labelled import LabelledDataError, read_annotations, read_binary_csv  # noqa: E402
from app.pipeline.lexicon import LexiconError  # noqa: E402

parser = argparse.ArgumentParser(description="Per-class figures of the served models on a labelled file.")
parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="annotation .jsonl, or .csv with text,label (a folder: its aspects_train.jsonl)")
parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON into this folder")
parser.add_argument("--models", type=Path, default=None, help="models folder (default: the service's)")
parser.add_argument("--lexicons", type=Path, default=None, help="lexicon folder (default: the service's)")
parser.add_argument("--batch", type=int, default=256)
args, _unknown = parser.parse_known_args()  # tolerate a notebook kernel's own arguments

def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def prf_table(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    out = {}
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred))
        fp = sum(g != lab and p == lab for g, p in zip(gold, pred))
        fn = sum(g == lab and p != lab for g, p in zip(gold, pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        out[lab] = {"precision": round(prec, 4), "recall": round(rec, 4),
                    "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
                    "support": sum(g == lab for g in gold)}
    confusion = [[sum(g == a and p == b for g, p in zip(gold, pred)) for b in labels] for a in labels]
    return {"classes": out, "macro_f1": round(float(np.mean([v["f1"] for v in out.values()])), 4),
            "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4),
            "confusion": {"labels": labels, "rows_gold_cols_pred": confusion}, "n": len(gold)}


def print_classes(title: str, table: dict) -> None:
    print(f"\n{title} (n={table['n']})")
    print(f"  {'class':<12}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}")
    for lab, v in table["classes"].items():
        print(f"  {lab:<12}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>9}")
    print(f"  macro-F1 {table['macro_f1']:.3f}   accuracy {table['accuracy']:.3f}")


def print_pairs(metrics: dict) -> None:
    print(f"\n{'aspect:polarity':<26}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}")
    for key, v in metrics["pairs"].items():
        print(f"{key:<26}{v['precision']:>7.3f}{v['recall']:>7.3f}{v['f1']:>7.3f}{v['support']:>9}")
    for group, name in (("aspect_polarity", "aspect-polarity (18 pairs)"), ("root_causes", "root causes (9 negative pairs)")):
        print(f"{name:<34} micro-F1 {metrics[group]['micro_f1']:.3f}  macro-F1 {metrics[group]['macro_f1']:.3f}")


# %% [markdown]
# ## Load the served pipeline and the file

# %%
settings = get_settings()
models_dir = args.models or settings.models_dir
data = args.data / "aspects_train.jsonl" if args.data.is_dir() else args.data
if not data.is_file():
    fail(f"{data}: file not found")
kind = "csv" if data.suffix.lower() in (".csv", ".tsv") else "jsonl"
try:
    rows = read_annotations(data) if kind == "jsonl" else read_binary_csv(data)
except LabelledDataError as exc:
    fail(str(exc))
try:
    pipeline = build_pipeline(args.lexicons or settings.lexicon_dir, models_dir, max_text_chars=settings.max_text_chars)
except (ArtifactError, LexiconError) as exc:
    fail(f"cannot load the served models: {exc}")
print(f"{data}: {len(rows)} rows; models {pipeline.versions}", flush=True)
data_sha = hashlib.sha256(data.read_bytes()).hexdigest()
try:
    trained_on = read_metrics(models_dir, "aspects", pipeline.versions["aspects"]).get("data", {}).get("sha256")
except ArtifactError:
    trained_on = None
if trained_on == data_sha:
    print("note: this is the file the aspects model was trained on; its figures here are optimistic "
          "(see the model card for cross-validated ones)")

# %% [markdown]
# ## Score in batches (the API's code path)

# %%
results = []
texts = [r.text for r in rows]
for k in tqdm(range(0, len(texts), args.batch), unit="batch", file=sys.stderr, disable=len(texts) < 2000):
    results += pipeline.analyze_batch([TextItem(t, str(k + i)) for i, t in enumerate(texts[k:k + args.batch])])
bad = [(r, res) for r, res in zip(rows, results) if isinstance(res, ItemError)]
if bad:
    r, res = bad[0]
    fail(f"{data}:{r.line}: text cannot be analysed ({res.code}: {res.message})")

# %% [markdown]
# ## Per-class tables

# %%
report: dict = {"file": str(data), "sha256": data_sha, "rows": len(rows), "models": pipeline.versions}
if kind == "jsonl":
    y = AT.label_matrix(r.pairs for r in rows)
    pred = AT.label_matrix({(a.aspect, a.polarity) for a in res.aspects} for res in results)
    report["aspects"] = AT.pair_metrics(y, pred)
    print_pairs(report["aspects"])
    labelled = [(r.sentiment, res.sentiment.label) for r, res in zip(rows, results) if r.sentiment]
    if labelled:
        report["sentiment"] = prf_table([g for g, _ in labelled], [p for _, p in labelled],
                                        ["positive", "neutral", "negative"])
        print_classes("three-class sentiment", report["sentiment"])
else:
    def binary(res) -> str:
        p = res.sentiment.probabilities
        return "positive" if p["positive"] >= p["negative"] else "negative"

    gold = ["positive" if r.label else "negative" for r in rows]
    pred = [binary(res) for res in results]
    report["sentiment_binary"] = {"all": prf_table(gold, pred, ["positive", "negative"])}
    print_classes("binary sentiment", report["sentiment_binary"]["all"])
    for dom in sorted({r.domain for r in rows} - {""}):
        idx = [i for i, r in enumerate(rows) if r.domain == dom]
        report["sentiment_binary"][dom] = prf_table([gold[i] for i in idx], [pred[i] for i in idx],
                                                    ["positive", "negative"])
        print_classes(f"binary sentiment, domain {dom}", report["sentiment_binary"][dom])

if args.out:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"eval-{data.name}.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
