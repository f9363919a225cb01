# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chat model (violations, satisfaction, emotion, resolution) and the QA constants
#
# Run headless (from any directory), or open as a notebook with the kernel in the repository
# root or in `training/`:
#
#     .venv/bin/python training/train_chat.py --data ../shared/data --out models
#     .venv/bin/pingjia train --only chat            # the same run, from the installed package
#
# `--data` is the folder holding `chat/` (train_*.jsonl conversations and utterances_*.jsonl
# single replies, labelled to CHAT_ANNOTATION.md). The chats written for this project
# (`training/data/chat_extra/`, `--extra none` to leave them out) train every fold and are never
# scored. A thin driver over `training.chat_run.ChatTraining`:
# 1. runs every turn through the serving pipeline once (its tokens, n-grams, lexicon hits);
# 2. evaluates: grouped 5-fold CV, leave-one-file-out, and today's lexicon-only inspection on
#    the same chats; the QA constants are refitted inside each fold;
# 3. fits the four heads on everything and the QA constants on the cross-validated findings;
# 4. writes `models/chat/<version>/` (model.skops, metrics.json, MODEL_CARD.md), points
#    `models/current.json`'s "chat" entry at it, and writes the fitted constants into
#    `lexicons/qa_profiles/default.json` (its weights and description are kept).

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

parser = argparse.ArgumentParser(description="Train the chat model and fit the QA constants.")
parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding chat/")
parser.add_argument("--extra", default=None, help="folder of extra written chats ('none': without)")
parser.add_argument("--out", type=Path, default=DEFAULT_MODELS, help="models directory to write into")
parser.add_argument("--lexicons", type=Path, default=DEFAULT_LEXICONS)
parser.add_argument("--no-eval", action="store_true", help="skip the evaluation (the QA constants stay as they are)")
parser.add_argument("--dry-run", action="store_true", help="train and report, but write nothing")
args, _unknown = parser.parse_known_args()  # tolerate a notebook kernel's own arguments

from training.chat_run import EXTRA_DIR, ChatConfig, ChatTraining  # noqa: E402

extra = None if args.extra == "none" else Path(args.extra) if args.extra else EXTRA_DIR
run = ChatTraining(
    ChatConfig(
        data=args.data,
        out=args.out,
        lexicons=args.lexicons,
        extra=extra,
        evaluate=not args.no_eval,
        dry_run=args.dry_run,
    )
)

# %% [markdown]
# ## 1. Load the labelled chats and run their turns through the pipeline

# %%
with stop_on_error():
    run.load()

# %% [markdown]
# ## 2. Evaluate: CV, leave one file out, lexicon only

# %%
if not args.no_eval:
    run.evaluate()

# %% [markdown]
# ## 3. Fit on everything; 4. write the artifact and the fitted QA constants

# %%
run.fit()

# %%
run.write()
