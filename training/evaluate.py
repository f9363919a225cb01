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
# and prints per-class tables (`training.evaluation`):
#
# * **annotation JSONL** (`{"text", "aspects": [{"aspect", "polarity"}], "sentiment"?}`, see
#   `docs/models.md`): the 18 aspect-polarity pairs, the 9 root causes (negative pairs), and the
#   three-class sentiment when rows carry `sentiment`;
# * **CSV** with a header holding `text` (or `review`) and `label` (`1`/`0`, `pos`/`neg`,
#   `positive`/`negative`): binary sentiment (positive when P(positive) ≥ P(negative)), overall
#   and per `domain` when that column exists.
#
# `--data` defaults to the shared data beside the repository (`../shared/data`: every
# `aspects_train*.jsonl` in it, sorted, rows concatenated), whatever the working directory. A
# malformed row stops the run with its file and line number. `--by-domain` adds, for annotation
# rows, each domain's root-cause table, micro/macro F1 and three-class sentiment macro-F1. `--out
# DIR` also writes the figures as `DIR/eval-<file or folder name>.json` (`by_domain` in it).

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(globals().get("__file__") or Path.cwd() / "notebook").resolve().parent
REPO = HERE.parent if (HERE / "__init__.py").is_file() else HERE  # the kernel may start in training/
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training import DEFAULT_DATA  # noqa: E402
from training.console import stop_on_error  # noqa: E402

parser = argparse.ArgumentParser(description="Per-class figures of the served models on a labelled file.")
parser.add_argument(
    "--data",
    type=Path,
    default=DEFAULT_DATA,
    help="annotation .jsonl, or .csv with text,label (a folder: every aspects_train*.jsonl in it)",
)
parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON into this folder")
parser.add_argument("--models", type=Path, default=None, help="models folder (default: the service's)")
parser.add_argument("--lexicons", type=Path, default=None, help="lexicon folder (default: the service's)")
parser.add_argument("--batch", type=int, default=256)
parser.add_argument(
    "--by-domain", action="store_true", help="annotation rows: also the figures of each domain (JSON: by_domain)"
)
args, _unknown = parser.parse_known_args()  # tolerate a notebook kernel's own arguments

from training import evaluation as E  # noqa: E402 - after --help, which needs none of it

config = E.EvalConfig(
    data=args.data,
    out=args.out,
    models=args.models,
    lexicons=args.lexicons,
    batch=args.batch,
    by_domain=args.by_domain,
)

# %% [markdown]
# ## Score the file with the served pipeline, in batches (the API's code path), and print the tables

# %%
with stop_on_error():
    report = E.evaluate(config)
