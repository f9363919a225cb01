# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Aspect-polarity model (aspects and root causes): training and evaluation
#
# Run headless (from any directory), or open as a notebook with the kernel in the repository
# root or in `training/`:
#
#     .venv/bin/python training/train_aspects.py --data ../shared/data --out models
#     .venv/bin/pingjia train --only aspects            # the same run, from the installed package
#
# `--data` is a folder (every `aspects_train*.jsonl` in it is read: the shared data has two
# labelling rounds, 3,499 texts) or one `.jsonl` file in the annotation format (one JSON object
# per line, see `docs/models.md`):
#
#     {"id": "r1", "domain": "shopping", "text": "发货太慢了，客服也不耐烦", "sentiment": "neg",
#      "aspects": [{"aspect": "logistics", "polarity": "neg"}, {"aspect": "attitude", "polarity": "neg"}]}
#
# `--corpus` is a CSV of reviews with only a positive/negative label (`text` or `review`, and
# `label` columns; default `<data>/reviews_train.csv`, `--corpus none` to train without it).
#
# This notebook is a thin driver over `training.aspects_run.AspectsTraining` (the library
# `pingjia train` calls; the fitting itself is `training.aspects`). What it does, in order:
# 1. validates every row (a malformed row stops the run with its line number, before anything
#    is written) and builds documents with the service's own `Pipeline.make_doc`, so training
#    sees exactly the tokens and lexicon hits the service computes;
# 1b. learns the corpus block from the review corpus (texts also in the labelled file are left
#    out): word vectors (PPMI + SVD) and a word-polarity model, used as features beside the
#    n-grams (`training/word_vectors.py` fits, `app/pipeline/word_vectors.py` serves);
# 2. 5-fold cross-validation of the whole training procedure, grouped so that a text and its
#    near-duplicates share a fold (each fold runs its own inner CV
#    for Platt calibration and the per-pair thresholds), beside the lexicon scorer on the same
#    texts: per-pair precision/recall/F1, micro/macro F1 over the 18 aspect-polarity pairs and
#    over the 9 negative pairs (root causes);
# 3. trains the served model on all rows, writes `models/aspects/<version>/` (model.skops,
#    metrics.json, MODEL_CARD.md, pairs.png) with `artifacts.save_artifact`, and points
#    `models/current.json`'s "aspects" entry at it (other entries are kept).

# %%
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(globals().get("__file__") or Path.cwd() / "notebook").resolve().parent
REPO = HERE.parent if (HERE / "__init__.py").is_file() else HERE  # the kernel may start in training/
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training import DEFAULT_DATA, DEFAULT_LEXICONS, DEFAULT_MODELS  # noqa: E402
from training.console import stop_on_error  # noqa: E402

parser = argparse.ArgumentParser(description="Train the aspect-polarity model.")
parser.add_argument(
    "--data",
    type=Path,
    default=DEFAULT_DATA,
    help="folder with aspects_train*.jsonl (every one is read), or one .jsonl file in the annotation format",
)
parser.add_argument(
    "--corpus",
    default=None,
    help="CSV of pos/neg-labelled reviews for the corpus block (default: <data>/reviews_train.csv; "
    "'none' to train without)",
)
parser.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="models directory to write into")
parser.add_argument("--lexicons", type=Path, default=DEFAULT_LEXICONS)
parser.add_argument("--folds", type=int, default=5, help="outer cross-validation folds (0: skip CV)")
parser.add_argument("--inner-folds", type=int, default=5, help="folds for calibration and thresholds")
parser.add_argument("--dry-run", action="store_true", help="train and report, but write no artifact")
parser.add_argument(
    "--full",
    action="store_true",
    help="also the learning curve, the previous model's data on the same folds and leave-one-domain-out (~8 min)",
)
args, _unknown = parser.parse_known_args()  # tolerate a notebook kernel's own arguments

from training.aspects_run import AspectsConfig, AspectsTraining  # noqa: E402 - after --help, which needs none of it

run = AspectsTraining(
    AspectsConfig(
        data=args.data,
        corpus=args.corpus,
        out=args.out,
        lexicons=args.lexicons,
        folds=args.folds,
        inner_folds=args.inner_folds,
        dry_run=args.dry_run,
        full=args.full,
    )
)

# %% [markdown]
# ## 1. Load, validate, build documents

# %%
with stop_on_error():
    run.load()

# %% [markdown]
# ## 1b. The corpus block: word vectors and word polarity from reviews labelled only pos/neg
#
# Texts that are also in the labelled file are left out, so cross-validation does not see a
# polarity model that has learnt the very texts it is tested on.

# %%
run.corpus_block()

# %% [markdown]
# ## 2. Cross-validation: the model against the lexicon scorer on the same texts
#
# The lexicon scorer has nothing to train, so its out-of-fold predictions are its predictions.

# %%
run.cross_validate()

# %% [markdown]
# ## 2b. With `--full`: learning curve, the previous model's data on the same folds, unseen domains
#
# Learning curve: 25 % and 50 % of each training fold, same test folds. Previous data: the same
# design trained only on the first file's rows of each training fold (what the previous model
# had). Unseen domains: each domain, and each shopping category with at least 150 labelled rows
# (categories looked up in the review corpus), left out of training and of the corpus block,
# tested on, beside the in-domain CV figures of the same rows.

# %%
run.full_report()

# %% [markdown]
# ## 3. Train on all rows and write the artifact

# %%
run.fit()

# %%
run.write()
