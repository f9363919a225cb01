"""The sentiment model's neutral calibrator, fitted on the hand-labelled texts (which the binary
model never saw, so its margins there are honest).

- P(neutral) = q: logistic regression, neutral vs opinion, on [z, |z|] or on
  [z, |z|, log1p(#positive hits), log1p(#negative hits)] (the better by nested CV is kept);
  unweighted, so q stays calibrated to this sample (about 4% neutral);
- P(positive | opinion) = sigmoid(a z), slope a fitted without intercept on the pos/neg texts,
  so the positive/negative boundary stays at z = 0;
- label neutral when q >= threshold, the threshold chosen by cross-validated macro-F1.

The reported figure is nested: outer 5-fold x 5 repeats, the threshold chosen by an inner 5-fold
CV of each outer training part, so it is not tuned on the texts it is scored on. The formulas
are the serving code's (:func:`app.pipeline.sentiment.three_class`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score, log_loss, precision_recall_fscore_support
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold

from app.core.taxonomy import SENTIMENT_LABELS
from app.pipeline import sentiment as S
from app.pipeline.findings import Doc
from training.metrics import fast_macro_f1

LABELS = np.array(SENTIMENT_LABELS)  # positive, neutral, negative
SORTED_LABELS = np.sort(LABELS)
THRESHOLDS = np.round(np.arange(0.04, 0.51, 0.01), 2)
INPUT_SETS = {"z": [0, 1], "z+hits": [0, 1, 2, 3]}
"""Columns of :func:`app.pipeline.sentiment.calibration_inputs` each candidate reads."""


def decide(p: np.ndarray, z: np.ndarray, thr: float, has_letters: np.ndarray) -> np.ndarray:
    """The serving rule (see the sentiment module docstring)."""
    lab = np.where(p[:, 1] >= thr, "neutral", np.where(z >= 0, "positive", "negative"))
    return np.where(has_letters, lab, "neutral")


@dataclass(frozen=True)
class CalibrationData:
    """The hand-labelled texts as the calibrator sees them: gold labels, hit counts, and
    whether each text has a letter (no letter: neutral by rule)."""

    y: np.ndarray
    hits: np.ndarray
    letters: np.ndarray

    @classmethod
    def of(cls, sentiments: Sequence[str], docs: Sequence[Doc]) -> CalibrationData:
        return cls(np.array(list(sentiments)), S.hit_counts(docs), np.array([S.has_letters(d.text) for d in docs]))

    def fit(self, idx: np.ndarray, cols: Sequence[int], z: np.ndarray) -> dict:
        """Neutral-vs-opinion regression and the polarity slope, fitted on rows ``idx`` given
        the binary margins ``z`` of the hand-labelled texts."""
        x = S.calibration_inputs(z[idx], self.hits[idx])
        neu = LogisticRegression(C=1.0, solver="liblinear", intercept_scaling=10).fit(
            x[:, cols], self.y[idx] == "neutral"
        )
        coef = np.zeros(4)
        coef[cols] = neu.coef_.ravel()
        opinion = idx[self.y[idx] != "neutral"]
        pol = LogisticRegression(C=1.0, solver="liblinear", fit_intercept=False).fit(
            z[opinion, None], self.y[opinion] == "positive"
        )
        return {"neu_coef": coef, "neu_intercept": float(neu.intercept_[0]), "pos_slope": float(pol.coef_[0, 0])}

    def proba(self, cal: dict, idx: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(n, 3) probabilities in LABELS order, by the serving code's formula."""
        return S.three_class(z[idx], self.hits[idx], cal["neu_coef"], cal["neu_intercept"], cal["pos_slope"])

    def oof_proba(self, idx: np.ndarray, cols: Sequence[int], seed: int, z: np.ndarray) -> np.ndarray:
        """Out-of-fold probabilities for the rows ``idx`` (5-fold)."""
        out = np.zeros((len(idx), 3))
        for a, b in StratifiedKFold(5, shuffle=True, random_state=seed).split(idx, self.y[idx]):
            out[b] = self.proba(self.fit(idx[a], cols, z), idx[b], z)
        return out

    def best_threshold(self, idx: np.ndarray, cols: Sequence[int], seed: int, z: np.ndarray) -> float:
        """The neutral threshold with the best out-of-fold macro-F1 on rows ``idx``."""
        p = self.oof_proba(idx, cols, seed, z)
        scores = [
            fast_macro_f1(self.y[idx], decide(p, z[idx], t, self.letters[idx]), SORTED_LABELS) for t in THRESHOLDS
        ]
        return float(THRESHOLDS[int(np.argmax(scores))])

    def nested_cv(self, cols: Sequence[int], z: np.ndarray, seed: int) -> dict:
        """Honest 3-class figures: the threshold is chosen inside each outer training part."""
        y = self.y
        rsk = RepeatedStratifiedKFold(n_splits=5, n_repeats=5, random_state=seed)
        preds = np.empty((5, len(y)), dtype=object)
        losses, thresholds = [], []
        for k, (a, b) in enumerate(rsk.split(z, y)):
            thr = self.best_threshold(a, cols, k, z)
            p = self.proba(self.fit(a, cols, z), b, z)
            preds[k // 5, b] = decide(p, z[b], thr, self.letters[b])
            order = np.argsort(LABELS)  # log_loss wants columns in sorted label order
            losses.append(log_loss(y[b], p[:, order], labels=LABELS[order]))
            thresholds.append(thr)
        f1s = [f1_score(y, preds[r].astype(str), average="macro") for r in range(5)]
        first = preds[0].astype(str)
        p, r, f, n = precision_recall_fscore_support(y, first, labels=LABELS, zero_division=0)
        return {
            "macro_f1_mean": round(float(np.mean(f1s)), 4),
            "macro_f1_sd": round(float(np.std(f1s)), 4),
            "log_loss_mean": round(float(np.mean(losses)), 4),
            "inner_thresholds": [float(min(thresholds)), float(max(thresholds))],
            "per_class_repeat0": {
                c: {
                    "precision": round(float(p[i]), 4),
                    "recall": round(float(r[i]), 4),
                    "f1": round(float(f[i]), 4),
                    "support": int(n[i]),
                }
                for i, c in enumerate(LABELS)
            },
            "confusion_repeat0": {
                "labels": LABELS.tolist(),
                "matrix": confusion_matrix(y, first, labels=LABELS).tolist(),
            },
            "predicted_neutral_rate": round(float(np.mean(first == "neutral")), 4),
        }

    def never_neutral_f1(self, z: np.ndarray) -> float:
        """Macro-F1 of the binary sign alone (the baseline the calibrator must beat)."""
        return round(
            float(f1_score(self.y, decide(np.zeros((len(self.y), 3)), z, 1.01, self.letters), average="macro")), 4
        )


@dataclass
class Calibrator:
    """The chosen calibrator: its inputs, parameters and threshold, and the figures behind them."""

    inputs: str
    params: dict  # neu_coef, neu_intercept, pos_slope, threshold (what make_state stores)
    cv: dict  # nested-CV figures per input set
    never_neutral_f1: float

    @property
    def threshold(self) -> float:
        return self.params["threshold"]


def fit_calibrator(
    data: CalibrationData, z: np.ndarray, seed: int, design_margins: dict[str, np.ndarray] | None = None
) -> tuple[Calibrator, dict[str, float]]:
    """Nested CV of each input set, the nested-CV 3-class macro-F1 of the z+hits calibrator on
    other designs' margins (``design_margins``: name -> margins on the same texts), then the
    best input set fitted on every text with its threshold chosen by 5-fold CV."""
    cv = {name: data.nested_cv(cols, z, seed) for name, cols in INPUT_SETS.items()}
    three_class = {}
    for name, margins in (design_margins or {}).items():
        three_class[name] = round(data.nested_cv(INPUT_SETS["z+hits"], margins, seed)["macro_f1_mean"], 4)
        print(f"  3-class {name:28s} {three_class[name]:.4f}")
    for name, res in cv.items():
        print(
            f"  inputs {name:7s}: 3-class macro-F1 {res['macro_f1_mean']:.4f} ± {res['macro_f1_sd']:.4f}, "
            f"neutral F1 {res['per_class_repeat0']['neutral']['f1']:.3f}, log-loss {res['log_loss_mean']:.3f}"
        )
    inputs = max(cv, key=lambda k: cv[k]["macro_f1_mean"])
    cols = INPUT_SETS[inputs]
    everything = np.arange(len(data.y))
    threshold = data.best_threshold(everything, cols, seed, z)
    params = {**data.fit(everything, cols, z), "threshold": threshold}
    cal = Calibrator(inputs, params, cv, data.never_neutral_f1(z))
    print(
        f"  chosen inputs {inputs}, neutral when P(neutral) >= {threshold}; "
        f"never-neutral baseline macro-F1 {cal.never_neutral_f1}"
    )
    return cal, three_class
