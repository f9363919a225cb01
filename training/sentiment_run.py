"""Training the sentiment model, stage by stage: :class:`SentimentTraining` runs what
``training/train_sentiment.py`` documents (that notebook calls one stage per cell; ``pingjia
train`` calls :meth:`SentimentTraining.run`). Each stage prints one progress line and keeps its
results on the object, so a notebook can look at any of them."""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score
from tqdm import tqdm

from app.core.taxonomy import SENTIMENT_LABELS
from app.pipeline import sentiment as S
from app.pipeline.artifacts import save_artifact
from training import DEFAULT_DATA, DEFAULT_LEXICONS, DEFAULT_MODELS, TrainingError
from training.calibration import CalibrationData, fit_calibrator
from training.cards import package_versions, sentiment_card
from training.console import Stages
from training.corpora import clean_snownlp_corpus
from training.data import document_pipeline, read_annotations, read_binary_csv, require_domains, require_sentiment
from training.figures import confusion_png
from training.metrics import binary_report
from training.sentiment_fit import MIN_DF, count_matrix, make_state, matrix_margins
from training.sentiment_select import (
    INCUMBENT,
    NOISE,
    ReviewData,
    compare_designs,
    corpus_experiment,
    cross_domain,
    designs_that_matter,
    incumbent_choice,
)
from training.splits import review_split

SEED = 20261122
NOT_RUN = "not run in this training run (train_sentiment.py --full runs it)"
HELDOUT_FRACTION = 0.1
DOMAINS = ("shopping", "waimai")
TARGETS = {"shopping": 0.94, "waimai": 0.90}
SELECTION_CAVEAT = (
    "The shipped design is chosen in this script on a validation slice of the training part only. "
    "During development, though, C values (0.1-0.6), waimai weight x2, SnowNLP-corpus weights and "
    "NB-SVM + LR ensembles were tried in scratch code (not reproduced here; none beat the NB-SVM at "
    "C = 0.3 by more than the slice noise) with their held-out figures printed next to the validation ones, so the held-out split has "
    "been looked at many times; none of those variants was adopted, but treat the held-out figures as "
    "slightly optimistic. Validation slices of the training part run 0.5-1.5 points above the held-out "
    "split for every design (the held-out split is harder by chance; it is fixed and not re-drawn). "
    "The incumbent rule (keep the first issue's NB-SVM unless beaten by more than the slice noise) "
    "was added after a run of this script shipped a linear SVM that led by 0.0007 on validation; "
    "that run's held-out and three-class figures had been seen."
)


@dataclass(frozen=True)
class SentimentConfig:
    data: Path = DEFAULT_DATA  # folder with reviews_train.csv and aspects_train.jsonl
    out: Path = DEFAULT_MODELS  # models directory to write into
    lexicons: Path = DEFAULT_LEXICONS
    dry_run: bool = False  # train and report, but write no artifact
    snownlp_corpus: str = "keep"  # rule: the corpus experiment's rule decides; keep / drop: override it
    full: bool = False  # also the design comparison, the corpus and cross-domain experiments, SnowNLP's baseline


def snownlp_labels(docs) -> np.ndarray:
    """SnowNLP's own model on the caller's original texts (it segments on its own): 1 when
    ``sentiments > 0.5``. Imported here: SnowNLP loads its model when imported."""
    from snownlp import SnowNLP  # noqa: PLC0415 - deliberately lazy, like the serving fallback

    return np.array(
        [SnowNLP(d.norm.original).sentiments > 0.5 for d in tqdm(docs, desc="snownlp", mininterval=5, file=sys.stderr)],
        dtype=int,
    )


class SentimentTraining:
    """One training run; call the stages in order (or :meth:`run`)."""

    def __init__(self, config: SentimentConfig = SentimentConfig()):
        self.config = config
        self.stage = Stages()
        self.reviews_path = Path(config.data) / "reviews_train.csv"
        self.aspects_path = Path(config.data) / "aspects_train.jsonl"
        self.path: Path | None = None

    def run(self) -> SentimentTraining:
        for step in (
            self.load,
            self.documents,
            self.split,
            self.corpus,
            self.features,
            self.compare,
            self.corpus_experiments,
            self.fit,
            self.snownlp_baseline,
            self.calibrate,
            self.final_report,
            self.write,
        ):
            step()
        return self

    def load(self) -> None:
        """1. Read and validate both files; a bad row raises before anything is written."""
        self.stage("load and validate data")
        self.reviews = read_binary_csv(self.reviews_path)
        require_domains(self.reviews, self.reviews_path, DOMAINS)
        self.aspects = read_annotations(self.aspects_path)
        require_sentiment(self.aspects, self.aspects_path)
        print(f"  {len(self.reviews)} reviews, {len(self.aspects)} hand-labelled texts")

    def documents(self) -> None:
        """2. Documents through the service's own pipeline code."""
        self.stage("build documents (normalise, segment, keyword hits)")
        self.pipeline = document_pipeline(self.config.lexicons, max_text_chars=10**6)
        self.docs = [
            self.pipeline.make_doc(r.text) for r in tqdm(self.reviews, desc="reviews", mininterval=5, file=sys.stderr)
        ]
        self.aspect_docs = [self.pipeline.make_doc(r.text) for r in self.aspects]

    def split(self) -> None:
        """3. Held-out split (10%, stratified by domain x label) and the training rows."""
        self.stage("split")
        texts = [r.text for r in self.reviews]
        strata = [f"{r.domain}/{r.label}" for r in self.reviews]
        self.split_rows = review_split(texts, strata, {r.text for r in self.aspects}, HELDOUT_FRACTION, SEED)
        self.y = np.array([r.label for r in self.reviews])
        self.dom = np.array([r.domain for r in self.reviews])
        self.held_docs = [self.docs[i] for i in np.flatnonzero(self.split_rows.held)]
        self.y_te, self.dom_te = self.y[self.split_rows.held], self.dom[self.split_rows.held]
        rec = self.split_rows.record
        print(
            f"  train {rec['train_rows']}, held out {rec['heldout_rows']}, "
            f"excluded (hand-labelled) {rec['excluded_hand_labelled_rows']}"
        )

    def corpus(self) -> None:
        """4. SnowNLP's labelled corpus minus leaks, near-copies of our reviews and repeats."""
        self.stage("SnowNLP corpus: load, remove leaks and duplicates")
        protected = [self.split_rows.texts[i] for i in np.flatnonzero(self.split_rows.held)] + [
            r.text for r in self.aspects
        ]
        self.snow = clean_snownlp_corpus(protected, self.split_rows.texts)
        self.snow_docs = [self.pipeline.make_doc(t) for t in self.snow.kept_texts]
        self.y_snow = self.snow.labels[self.snow.keep]
        rec = self.snow.record
        print(
            f"  {rec['rows']} texts; removed {rec['removed_leak_heldout_or_hand_labelled']} equal/near "
            f"a held-out or hand-labelled text, {rec['removed_near_reviews_train']} equal/near a review in "
            f"reviews_train, {rec['removed_repeats']} repeats; kept {len(self.snow_docs)}"
        )

    def features(self) -> None:
        """5a. One count matrix of every feature group for every document."""
        self.stage("feature matrix (all groups)")
        self.negators = frozenset(self.pipeline.lexicon.negators)
        counts = count_matrix(self.docs + self.aspect_docs + self.snow_docs, self.negators)
        n_rev, n_asp = len(self.docs), len(self.aspect_docs)
        m = counts.matrix
        self.counts = counts
        self.data = ReviewData(
            m[:n_rev],
            m[n_rev : n_rev + n_asp],
            m[n_rev + n_asp :],
            counts.groups,
            self.y,
            self.dom,
            np.array([r.category for r in self.reviews]),
            self.y_snow,
            DOMAINS,
        )
        print(
            f"  {m.shape[1]:,} distinct features, nnz {m.nnz:,}; by group "
            f"{ {g: int(np.sum(counts.groups == g)) for g in S.FEATURE_GROUPS} }"
        )
        self.val = self.split_rows.slice_of_train(SEED + 1)

    def compare(self) -> None:
        """5b. The design comparison, on validation slices of the training part only (``full``;
        otherwise the incumbent design, which every comparison so far has kept)."""
        if not self.config.full:
            self.choice = incumbent_choice()
            return
        self.stage("design comparison (fit on training minus validation slice)")
        self.choice = compare_designs(self.data, self.split_rows, self.val, (SEED + 2, SEED + 3))

    def corpus_experiments(self) -> None:
        """6. Does SnowNLP's corpus help? In-domain, unseen categories, cross-domain (``full``, or
        when the rule is to decide)."""
        if not self.config.full and self.config.snownlp_corpus != "rule":
            keep = self.config.snownlp_corpus == "keep"
            self.snow_exp = {"kept_in_shipped_model": keep, "override": self.config.snownlp_corpus, "rule": NOT_RUN}
            self.use_snow, self.cross_domain = keep, None
            return
        self.stage("SnowNLP corpus in-domain and cross-domain")
        self.snow_exp = corpus_experiment(self.data, self.split_rows, self.val, self.choice.clf, self.choice.groups)
        if self.config.snownlp_corpus != "rule":  # an analyst's override, recorded beside the rule
            self.snow_exp["override"] = self.config.snownlp_corpus
            self.snow_exp["kept_in_shipped_model"] = self.config.snownlp_corpus == "keep"
            print(
                f"  corpus kept: {self.snow_exp['kept_in_shipped_model']} (--snownlp-corpus {self.config.snownlp_corpus})"
            )
        self.use_snow = self.snow_exp["kept_in_shipped_model"]
        self.cross_domain = cross_domain(self.data, self.split_rows, self.choice.clf)

    def fit(self) -> None:
        """7. The chosen design on all training rows, checked against the serving code."""
        self.stage(f"fit the chosen design on all training rows{' + SnowNLP corpus' if self.use_snow else ''}")
        t = time.perf_counter()
        self.chosen = self.data.fit(self.split_rows.train, self.choice.clf, self.choice.groups, self.use_snow)
        fit_seconds = round(time.perf_counter() - t, 1)
        self.terms = self.counts.names[self.chosen.kidx].tolist()
        self.binary_model = S.LinearSentimentModel(make_state(self.chosen, self.terms, self.negators), "candidate")
        z_held = self.binary_model.margins(self.held_docs)
        if not np.allclose(z_held, matrix_margins(self.chosen, self.data.rev[self.split_rows.held]), atol=1e-4):
            raise TrainingError("serving featurizer and training matrix disagree")
        self.heldout = binary_report(self.y_te, (z_held > 0).astype(int), self.dom_te, DOMAINS)
        print(
            f"  held-out binary macro-F1: shopping {self.heldout['shopping']['macro_f1']:.4f}, "
            f"waimai {self.heldout['waimai']['macro_f1']:.4f} ({len(self.terms):,} features, fit {fit_seconds}s)"
        )
        self.errors = self._largest_errors(z_held)

    def _largest_errors(self, z: np.ndarray) -> list[dict]:
        """Per domain, the 8 held-out reviews the model gets wrong with the largest margin."""
        out = []
        for d in DOMAINS:
            m = np.flatnonzero(self.dom_te == d)
            wrong = m[((z[m] > 0).astype(int) != self.y_te[m])]
            for i in wrong[np.argsort(-np.abs(z[wrong]))][:8]:
                out.append(
                    {
                        "domain": d,
                        "label": int(self.y_te[i]),
                        "margin": round(float(z[i]), 3),
                        "text": self.held_docs[i].norm.original[:120],
                    }
                )
        return out

    def snownlp_baseline(self) -> None:
        """8. SnowNLP's own model on the same held-out split (``full``: it takes a minute)."""
        self.snownlp_report = None
        if not self.config.full:
            return
        self.stage("SnowNLP baseline on the held-out split")
        self.snownlp_report = binary_report(self.y_te, snownlp_labels(self.held_docs), self.dom_te, DOMAINS)
        print(
            f"  snownlp: shopping {self.snownlp_report['shopping']['macro_f1']:.4f}  "
            f"waimai {self.snownlp_report['waimai']['macro_f1']:.4f}"
        )

    def calibrate(self) -> None:
        """9. The neutral calibrator on the hand-labelled texts (and the designs' 3-class figures)."""
        self.stage("neutral calibrator")
        self.cal_data = CalibrationData.of([r.sentiment for r in self.aspects], self.aspect_docs)
        z_cal = self.binary_model.margins(self.aspect_docs)
        compared = designs_that_matter(self.choice.table) if self.config.full else []
        matter = {n: self.choice.margins_cal[n] for n in compared}
        self.calibrator, three_class = fit_calibrator(self.cal_data, z_cal, SEED, matter)
        for name, f1 in three_class.items():
            self.choice.table[name]["three_class_nested_cv_macro_f1"] = f1
        self.state = make_state(self.chosen, self.terms, self.negators, self.calibrator.params)
        self.state["segmenter"] = self.pipeline.segmenter.name  # serving warns on another one

    def final_report(self) -> None:
        """10. The served model (binary layer + calibrator) on the held-out split."""
        self.stage("final model on the held-out split")
        final = S.LinearSentimentModel(self.state, "candidate")
        served = np.array([f.label for f in final.predict(self.held_docs)])
        committed = served != "neutral"
        gold = np.where(self.y_te == 1, "positive", "negative")
        everything = np.ones_like(self.y_te, dtype=bool)
        self.served_report = {
            "label_rates": {c: round(float(np.mean(served == c)), 4) for c in SENTIMENT_LABELS},
            "macro_f1_when_not_neutral": {
                d: round(float(f1_score(gold[m & committed], served[m & committed], average="macro")), 4)
                for d, m in (
                    ("shopping", self.dom_te == "shopping"),
                    ("waimai", self.dom_te == "waimai"),
                    ("all", everything),
                )
            },
        }
        print(
            f"  binary (margin > 0): shopping {self.heldout['shopping']['macro_f1']:.4f}, "
            f"waimai {self.heldout['waimai']['macro_f1']:.4f}"
        )
        print(
            f"  served labels {self.served_report['label_rates']}; macro-F1 where not neutral "
            f"{self.served_report['macro_f1_when_not_neutral']}"
        )

    def write(self) -> Path | None:
        """11. metrics.json, MODEL_CARD.md and confusion.png beside the artifact; the pointer moves."""
        self.stage("write artifact")
        self.metrics = self._metrics(round(self.stage.elapsed(), 1))
        self.card = sentiment_card(self.metrics)
        if self.config.dry_run:
            print("  --dry-run: nothing written")
        else:
            heldout, cv = self.heldout, self.calibrator.cv[self.calibrator.inputs]
            confusion = confusion_png(
                [
                    (f"held-out {d} (binary)", heldout[d]["confusion"]["labels"], heldout[d]["confusion"]["matrix"])
                    for d in DOMAINS
                ]
                + [
                    (
                        "hand-labelled, 3-class (nested CV)",
                        cv["confusion_repeat0"]["labels"],
                        cv["confusion_repeat0"]["matrix"],
                    )
                ],
                title=f"sentiment {self.choice.best}",
            )
            out = Path(self.config.out)
            self.path = save_artifact(
                out, S.KIND, self.state, self.metrics, self.card, extra_files={"confusion.png": confusion}
            )
            size = (self.path / "model.skops").stat().st_size
            print(f"  wrote {self.path} ({size / 1e6:.1f} MB); {out / 'current.json'} points at it")
            check = S.load_sentiment_model(out)
            for text in ("质量很好，物流很快，非常满意", "质量太差了，再也不买了"):
                print(f"  check: {text} -> {check.predict([self.pipeline.make_doc(text)])[0]}")
        self.stage(f"done in {self.stage.elapsed():.0f}s")
        return self.path

    def _metrics(self, train_seconds: float) -> dict:
        """metrics.json: every figure the card states, and what the run read."""
        choice, cal, snow_exp = self.choice, self.calibrator, self.snow_exp
        packages = package_versions(("numpy", "scipy", "scikit-learn", "rjieba", "jieba", "snownlp", "skops", "opencc"))
        packages["python"] = platform.python_version()
        y_cal = self.cal_data.y
        fit_rows = self.split_rows.train & ~self.val
        return {
            "task": "overall review sentiment (positive / neutral / negative)",
            "design": choice.best,
            "design_selection": "every design fitted on the training rows minus a validation slice (10% of them, "
            f"heldout_mask seed {SEED + 1}); the 3 best by the mean of per-domain validation "
            f"macro-F1 re-fitted and scored on two more slices (seeds {SEED + 2}, {SEED + 3}) with "
            f"the incumbent ({INCUMBENT}); the best 3-slice mean replaces the incumbent only if it "
            f"leads by more than {NOISE}. Held-out figures are reported, never used to choose."
            if self.config.full
            else f"the incumbent ({INCUMBENT}), not compared in this run ({NOT_RUN})",
            "design_table": choice.table,
            "cross_domain": {
                "note": f"trained on one domain's training rows only ({choice.clf}), scored on the "
                "held-out reviews of both domains; binary macro-F1",
                "results": self.cross_domain,
            }
            if self.cross_domain is not None
            else None,
            "snownlp_corpus": {**self.snow.record, "experiment": snow_exp},
            "heldout_binary": self.heldout,
            "heldout_served": self.served_report,
            "heldout_errors_largest_margin": self.errors,
            "snownlp_heldout": self.snownlp_report,
            "targets": {
                d: {
                    "target": TARGETS[d],
                    "reached": self.heldout[d]["macro_f1"],
                    "met": self.heldout[d]["macro_f1"] >= TARGETS[d],
                }
                for d in DOMAINS
            },
            "selection_caveat": SELECTION_CAVEAT,
            "neutral": {
                "inputs": cal.inputs,
                "threshold": cal.threshold,
                "cv": cal.cv,
                "never_neutral_baseline_macro_f1": cal.never_neutral_f1,
                "annotator_agreement_macro_f1": 0.83,
                "rows": int(len(y_cal)),
                "class_counts": {c: int(np.sum(y_cal == c)) for c in SENTIMENT_LABELS},
            },
            "segmenter": self.pipeline.segmenter.name,
            "features": {
                "groups": list(choice.groups),
                "word_ngrams": [1, 2],
                "char_ngrams": [1, 3],
                "lexicon_hits": "hits" in choice.groups,
                "negation": "neg" in choice.groups,
                "min_df": MIN_DF,
                "vocabulary": len(self.terms),
                "lexicon_version": self.pipeline.lexicon.version,
                "snownlp_corpus_rows": int(len(self.y_snow)) if self.use_snow else 0,
            },
            "split": self.split_rows.record,
            "validation_slice": {"seed": SEED + 1, "rows": int(self.val.sum()), "fit_rows": int(fit_rows.sum())},
            "data": {
                "reviews_train.csv": {
                    "sha256": _sha256(self.reviews_path),
                    "rows": len(self.reviews),
                    "by_domain_label": {
                        s: int(n) for s, n in zip(*np.unique(self.split_rows.strata, return_counts=True))
                    },
                },
                "aspects_train.jsonl": {"sha256": _sha256(self.aspects_path), "rows": len(self.aspects)},
                **(
                    {"snownlp_corpus": {"files": self.snow.record["files"], "rows_used": int(len(self.y_snow))}}
                    if self.use_snow
                    else {}
                ),
            },
            "packages": packages,
            "training_seconds": train_seconds,
            "stage_started_at_seconds": self.stage.offsets(),
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_sentiment(config: SentimentConfig) -> Path | None:
    """Every stage in order; the new version's folder (None on a dry run)."""
    return SentimentTraining(config).run().path
