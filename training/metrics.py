"""Figures a model is judged by: per-pair and per-class precision / recall / F1, macro-F1 per
domain, confusion matrices. Shared by the training runs and ``pingjia eval``, so the figures
they report come from one implementation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from app.core.taxonomy import NEGATIVE_PAIRS, PAIR_CODES, PAIRS


def label_matrix(pair_sets: Iterable[Iterable[tuple[str, str]]]) -> np.ndarray:
    """(n, N_PAIRS) 0/1 labels in PAIRS order."""
    index = {p: j for j, p in enumerate(PAIRS)}
    rows = [list(ps) for ps in pair_sets]
    y = np.zeros((len(rows), len(PAIRS)), dtype=np.int8)
    for i, ps in enumerate(rows):
        for p in ps:
            y[i, index[p]] = 1
    return y


def pair_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    """Per-pair P/R/F1 with counts, and micro/macro F1 over all pairs and over the negative ones
    (the root causes)."""
    y, pred = y.astype(bool), pred.astype(bool)
    per = {}
    for j, key in enumerate(PAIR_CODES):
        tp = int((y[:, j] & pred[:, j]).sum())
        fp = int((~y[:, j] & pred[:, j]).sum())
        fn = int((y[:, j] & ~pred[:, j]).sum())
        tn = int(len(y) - tp - fp - fn)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[key] = {
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "f1": round(f1, 4),
            "support": int(y[:, j].sum()),
            "confusion": [[tn, fp], [fn, tp]],
        }

    def summary(cols) -> dict:
        tp = sum(per[PAIR_CODES[j]]["confusion"][1][1] for j in cols)
        fp = sum(per[PAIR_CODES[j]]["confusion"][0][1] for j in cols)
        fn = sum(per[PAIR_CODES[j]]["confusion"][1][0] for j in cols)
        micro = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        macro = float(np.mean([per[PAIR_CODES[j]]["f1"] for j in cols]))
        return {"micro_f1": round(micro, 4), "macro_f1": round(macro, 4)}

    return {"pairs": per, "aspect_polarity": summary(range(len(PAIRS))), "root_causes": summary(NEGATIVE_PAIRS)}


def per_domain_f1(z: np.ndarray, mask: np.ndarray, y: np.ndarray, dom: np.ndarray, domains: Sequence[str]) -> dict:
    """Binary macro-F1 (margin > 0 = positive) per domain of the rows in ``mask``; ``z``
    holds the margins of those rows only."""
    return {
        d: round(float(f1_score(y[mask & (dom == d)], (z[dom[mask] == d] > 0).astype(int), average="macro")), 4)
        for d in domains
    }


def binary_report(y: np.ndarray, pred: np.ndarray, dom: np.ndarray, domains: Sequence[str]) -> dict:
    """Macro-F1 per domain and overall, per-class P/R/F1 and confusion matrices (1 = positive)."""
    out = {}
    for d in (*domains, "all"):
        m = np.ones_like(y, dtype=bool) if d == "all" else dom == d
        p, r, f, n = precision_recall_fscore_support(y[m], pred[m], labels=[1, 0], zero_division=0)
        out[d] = {
            "macro_f1": round(float(f1_score(y[m], pred[m], average="macro")), 4),
            "per_class": {
                lab: {
                    "precision": round(float(p[i]), 4),
                    "recall": round(float(r[i]), 4),
                    "f1": round(float(f[i]), 4),
                    "support": int(n[i]),
                }
                for i, lab in enumerate(("positive", "negative"))
            },
            "confusion": {
                "labels": ["positive", "negative"],
                "matrix": confusion_matrix(y[m], pred[m], labels=[1, 0]).tolist(),
            },
        }
    return out


def fast_macro_f1(gold: np.ndarray, pred: np.ndarray, sorted_labels: np.ndarray) -> float:
    """Macro-F1 over ``sorted_labels`` (as sklearn's when every class occurs in ``gold``), fast
    enough to scan thresholds inside nested cross-validation."""
    k = len(sorted_labels)
    g = np.searchsorted(sorted_labels, gold)
    p = np.searchsorted(sorted_labels, pred)
    cm = np.bincount(g * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    return float(np.mean(2 * tp / np.maximum(cm.sum(0) + cm.sum(1), 1)))


def prf_table(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    """Per-class P/R/F1 and support, macro-F1, accuracy and the confusion matrix (rows gold)."""
    out = {}
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred))
        fp = sum(g != lab and p == lab for g, p in zip(gold, pred))
        fn = sum(g == lab and p != lab for g, p in zip(gold, pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        out[lab] = {
            "precision": round(prec, 4),
            "recall": round(rec, 4),
            "f1": round(2 * prec * rec / (prec + rec), 4) if prec + rec else 0.0,
            "support": sum(g == lab for g in gold),
        }
    confusion = [[sum(g == a and p == b for g, p in zip(gold, pred)) for b in labels] for a in labels]
    return {
        "classes": out,
        "macro_f1": round(float(np.mean([v["f1"] for v in out.values()])), 4),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4),
        "confusion": {"labels": labels, "rows_gold_cols_pred": confusion},
        "n": len(gold),
    }
