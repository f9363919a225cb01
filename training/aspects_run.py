"""Training the aspect-polarity model, stage by stage: :class:`AspectsTraining` runs what
``training/train_aspects.py`` documents (that notebook calls one stage per cell; ``pingjia
train`` calls :meth:`AspectsTraining.run`)."""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.taxonomy import ASPECTS, PAIR_CODES, PAIRS
from app.pipeline import aspect_model as AM
from app.pipeline.artifacts import save_artifact
from training import DEFAULT_DATA, DEFAULT_LEXICONS, DEFAULT_MODELS
from training.aspects import OWN_THRESHOLD_BELOW, corpus_block, cross_validate, fit_and_decide, fit_state
from training.cards import aspects_card, package_versions
from training.console import Stages
from training.data import annotated_docs, annotation_files, document_pipeline, read_annotations, read_binary_csv
from training.figures import confusion_png, pairs_png
from training.metrics import label_matrix, pair_metrics
from training.splits import grouped_folds, near_duplicate_groups

SEED = 0
TARGETS = {"root_causes.micro_f1": 0.85, "root_causes.macro_f1": 0.75, "aspect_polarity.micro_f1": 0.85}
LEARNING_CURVE = (0.25, 0.5)  # fractions of each training fold (1.0 is the CV itself)
MIN_LEFT_OUT_ROWS = 150  # a domain or category with fewer labelled rows is not left out on its own


@dataclass(frozen=True)
class AspectsConfig:
    data: Path = DEFAULT_DATA  # folder with aspects_train*.jsonl (all are read), or one .jsonl in that format
    corpus: str | None = None  # CSV of pos/neg reviews; None: <data>/reviews_train.csv if present; "none": without
    out: Path = DEFAULT_MODELS
    lexicons: Path = DEFAULT_LEXICONS
    folds: int = 5  # outer cross-validation folds (0: skip CV)
    inner_folds: int = 5  # folds for calibration and thresholds
    dry_run: bool = False
    full: bool = False  # also the learning curve, the previous data on the same folds, leave-one-domain-out


def comparison_table(name_a: str, ma: dict, name_b: str, mb: dict) -> str:
    """Two sets of pair metrics side by side, as text."""
    lines = [
        f"{'pair':<26}{'support':>8}  {name_a:>18}  {name_b:>18}",
        f"{'':<26}{'':>8}  {'P    R    F1':>18}  {'P    R    F1':>18}",
    ]
    for key, a in ma["pairs"].items():
        b = mb["pairs"][key]
        fmt = "{precision:.2f} {recall:.2f} {f1:.2f}"
        lines.append(f"{key:<26}{a['support']:>8}  {fmt.format(**a):>18}  {fmt.format(**b):>18}")
    for group in ("aspect_polarity", "root_causes"):
        for k in ("micro_f1", "macro_f1"):
            lines.append(f"{group + ' ' + k:<34}  {ma[group][k]:>18.3f}  {mb[group][k]:>18.3f}")
    return "\n".join(lines)


def headline(m: dict) -> dict:
    """The summary figures of :func:`pair_metrics`, flat."""
    return {
        "root_causes_micro_f1": m["root_causes"]["micro_f1"],
        "root_causes_macro_f1": m["root_causes"]["macro_f1"],
        "aspect_polarity_micro_f1": m["aspect_polarity"]["micro_f1"],
        "aspect_polarity_macro_f1": m["aspect_polarity"]["macro_f1"],
    }


def targets_met(m: dict | None) -> dict:
    if m is None:
        return {}
    return {
        k: {"target": v, "value": m[k.split(".")[0]][k.split(".")[1]], "met": m[k.split(".")[0]][k.split(".")[1]] >= v}
        for k, v in TARGETS.items()
    }


class AspectsTraining:
    """One training run; call the stages in order (or :meth:`run`)."""

    def __init__(self, config: AspectsConfig = AspectsConfig()):
        self.config = config
        self.stage = Stages()
        self.path: Path | None = None
        self.report: dict = {}

    def run(self) -> AspectsTraining:
        for step in (self.load, self.corpus_block, self.cross_validate, self.full_report, self.fit, self.write):
            step()
        return self

    def load(self) -> None:
        """1. Validate every row and build documents with the service's own pipeline code."""
        self.stage("loading data")
        cfg = self.config
        self.data_files = annotation_files(cfg.data)
        per_file = [read_annotations(f) for f in self.data_files]
        self.rows = [r for rows in per_file for r in rows]
        self.pipeline = document_pipeline(cfg.lexicons)
        self.corpus_file, self.corpus_rows = None, None
        if cfg.corpus != "none":
            corpus_file = Path(cfg.corpus) if cfg.corpus else self.data_files[0].parent / "reviews_train.csv"
            if not cfg.corpus and not corpus_file.is_file():
                print(f"  note: no {corpus_file}: training without the corpus block (pass --corpus FILE)", flush=True)
            else:
                self.corpus_file, self.corpus_rows = corpus_file, read_binary_csv(corpus_file)
        self.docs = [d for f, rows in zip(self.data_files, per_file) for d in annotated_docs(self.pipeline, rows, f)]
        self.y = label_matrix(r.pairs for r in self.rows)
        self.file_of = np.repeat(np.arange(len(per_file)), [len(rows) for rows in per_file])
        self.files_record = [
            {
                "file": f.name,
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
                "rows": int((self.file_of == k).sum()),
            }
            for k, f in enumerate(self.data_files)
        ]
        self.groups = near_duplicate_groups([r.text for r in self.rows])
        for f in self.files_record:
            print(f"  {f['rows']} rows from {f['file']} (sha256 {f['sha256'][:12]}…)")
        print(
            f"  {len(self.rows)} rows in {len(set(self.groups.tolist()))} near-duplicate groups; "
            f"lexicon {self.pipeline.lexicon.version}"
        )
        print("  labels per pair: " + ", ".join(f"{a}:{p[:3]}={n}" for (a, p), n in zip(PAIRS, self.y.sum(0))))

    def corpus_block(self) -> None:
        """1b. Word vectors and word polarity from the reviews labelled only pos/neg (texts also
        in the labelled file left out)."""
        self.corpus, self.corpus_info = None, {"file": None}
        if self.corpus_file is None:
            return
        self.stage(f"corpus block from {self.corpus_file}")
        self.corpus, info = corpus_block(
            self.corpus_rows, self.pipeline.segmenter, {d.text for d in self.docs}, seed=SEED
        )
        self.corpus_info = {
            "file": self.corpus_file.name,
            "sha256": hashlib.sha256(self.corpus_file.read_bytes()).hexdigest(),
            **info,
        }
        print(
            f"  {info['rows_used']} reviews ({info['left_out_as_labelled']} left out as labelled), "
            f"{len(self.corpus.vocab)} words x {info['dims']} dims in {info['seconds']}s"
        )

    def cross_validate(self) -> None:
        """2. Outer K-fold CV of the whole procedure, beside the lexicon scorer on the same texts."""
        cfg = self.config
        lex_pred = np.zeros_like(self.y, dtype=bool)
        for i, found in enumerate(self.pipeline.aspects.score(self.docs)):
            for f in found:
                lex_pred[i, PAIRS.index((f.aspect, f.polarity))] = True
        self.lexicon_metrics = pair_metrics(self.y, lex_pred)
        self.cv_metrics, self.cv_seconds = None, 0.0
        if cfg.folds < 2:
            return
        self.stage(
            f"{cfg.folds}-fold cross-validation, grouped by near-duplicates (inner {cfg.inner_folds}-fold calibration)"
        )
        t = time.perf_counter()
        self.splits = grouped_folds(self.y, self.groups, cfg.folds, SEED)
        _, self.cv_pred = cross_validate(
            self.docs,
            self.y,
            self.pipeline.lexicon.targets,
            self.splits,
            progress=lambda k, n: print(f"  fold {k}/{n} done ({time.perf_counter() - t:.0f}s)", flush=True),
            **self._fit_kw(),
        )
        self.cv_seconds = time.perf_counter() - t
        self.cv_metrics = pair_metrics(self.y, self.cv_pred)
        print(comparison_table("model (CV)", self.cv_metrics, "lexicon", self.lexicon_metrics))
        self.report["cv_by_domain"] = {
            d: headline(pair_metrics(self.y[m], self.cv_pred[m])) | {"rows": int(m.sum())}
            for d, m in self.domain_masks().items()
        }

    def _fit_kw(self, corpus=None) -> dict:
        return {"inner_folds": self.config.inner_folds, "seed": SEED, "corpus": corpus or self.corpus}

    def domain_masks(self) -> dict[str, np.ndarray]:
        """Row masks of each domain with enough labelled rows to be left out on its own."""
        dom = np.array([r.domain for r in self.rows])
        return {d: dom == d for d in sorted(set(dom.tolist())) if (dom == d).sum() >= MIN_LEFT_OUT_ROWS}

    def category_masks(self) -> dict[str, np.ndarray]:
        """Row masks of the shopping categories (looked up in the review corpus the labelled
        texts were drawn from) with enough rows to be left out on their own."""
        if not self.corpus_rows:
            return {}
        category = {r.text: r.category for r in self.corpus_rows if r.domain == "shopping"}
        cat = np.array([category.get(r.text, "") if r.domain == "shopping" else "" for r in self.rows])
        return {c: cat == c for c in sorted(set(cat.tolist()) - {""}) if (cat == c).sum() >= MIN_LEFT_OUT_ROWS}

    def full_report(self) -> None:
        """2b (``--full``). The learning curve; the previous model's data on the same folds; and
        unseen domains: each domain and shopping category left out of training (and out of the
        corpus block) and tested on, beside the in-domain CV figures of the same rows."""
        if not self.config.full or self.cv_metrics is None:
            return
        self.stage("learning curve (share of each training fold)")
        self.report["learning_curve"] = self._learning_curve()
        if len(self.data_files) > 1:
            self.stage(f"the previous model's data ({self.data_files[0].name} only) on the same folds")
            self.report["previous_data"] = self._previous_data()
        self.stage("leave one domain / shopping category out (also out of the corpus block)")
        self.report["leave_one_out"] = self._leave_one_out()

    def _decide(self, train: np.ndarray, test: np.ndarray, corpus=None) -> np.ndarray:
        """Decisions on ``test`` of the model trained on ``train``."""
        return fit_and_decide(self.docs, self.y, self.pipeline.lexicon.targets, train, test, **self._fit_kw(corpus))[1]

    def _learning_curve(self) -> dict:
        rng, curve = np.random.default_rng(SEED), {"1.0": headline(self.cv_metrics)}
        for frac in LEARNING_CURVE:
            pred = np.zeros_like(self.cv_pred)
            for tr, te in self.splits:
                pred[te] = self._decide(np.sort(rng.choice(tr, size=int(len(tr) * frac), replace=False)), te)
            curve[str(frac)] = headline(pair_metrics(self.y, pred))
            print(f"  {frac:.0%} of each training fold: {curve[str(frac)]}", flush=True)
        return curve

    def _previous_data(self) -> dict:
        """The same design trained on the first file's rows of each training fold only."""
        pred = np.zeros_like(self.cv_pred)
        for tr, te in self.splits:
            pred[te] = self._decide(tr[self.file_of[tr] == 0], te)
        out = {"train_file": self.data_files[0].name, **headline(pair_metrics(self.y, pred))}
        print(f"  {out}", flush=True)
        return out

    def _leave_one_out(self) -> dict:
        units = [("domain", d, m) for d, m in self.domain_masks().items()]
        units += [("category", c, m) for c, m in self.category_masks().items()]
        out = {}
        for kind, name, mask in units:
            tr, te = np.flatnonzero(~mask), np.flatnonzero(mask)
            pred = self._decide(tr, te, self._corpus_without(kind, name))
            r = out[f"{kind}:{name}"] = {
                "rows": len(te),
                "left_out": headline(pair_metrics(self.y[te], pred)),
                "in_domain_cv": headline(pair_metrics(self.y[te], self.cv_pred[te])),
            }
            print(
                f"  {kind} {name} ({len(te)} rows): root causes micro {r['left_out']['root_causes_micro_f1']:.3f} "
                f"(in-domain CV {r['in_domain_cv']['root_causes_micro_f1']:.3f})",
                flush=True,
            )
        return out

    def _corpus_without(self, kind: str, name: str):
        """The corpus block learnt without the reviews of one domain or category."""
        if self.corpus is None:
            return None
        keep = [r for r in self.corpus_rows if (r.domain if kind == "domain" else r.category) != name]
        return corpus_block(keep, self.pipeline.segmenter, {d.text for d in self.docs}, seed=SEED)[0]

    def fit(self) -> None:
        """3a. The served model on all rows."""
        self.stage("training the served model on all rows")
        t = time.perf_counter()
        self.state, _ = fit_state(self.docs, self.y, self.pipeline.lexicon.targets, **self._fit_kw())
        self.train_seconds = time.perf_counter() - t
        self.state["segmenter"] = self.pipeline.segmenter.name  # serving warns on another one
        self.model = AM.AspectModel(self.state, "candidate")
        print(f"  trained in {self.train_seconds:.1f}s; {len(self.model.featurizer.vocab)} n-gram features")
        pairs = list(zip(PAIR_CODES, self.state["threshold"], self.state["lexicon_union"]))
        self.never = [k for k, th, u in pairs if th >= AM.NEVER and not u]
        self.lexicon_only = [k for k, th, u in pairs if th >= AM.NEVER and u]
        self.with_lexicon = [k for k, th, u in pairs if th < AM.NEVER and u]
        print(
            f"  never asserted: {', '.join(self.never) or 'none'}; asserted by lexicon hits only: "
            f"{', '.join(self.lexicon_only) or 'none'}; model or lexicon hit: {', '.join(self.with_lexicon) or 'none'}"
        )

    def write(self) -> Path | None:
        """3b. metrics.json, MODEL_CARD.md, pairs.png and confusion.png; the pointer's "aspects" moves."""
        cfg, cv = self.config, self.cv_metrics
        self.metrics = self._metrics()
        self.card = aspects_card(self.metrics, train_seconds=self.train_seconds, cv_seconds=self.cv_seconds)
        if cfg.dry_run:
            print("  --dry-run: nothing written")
        else:
            self.stage("writing the artifact")
            figures = {"pairs.png": pairs_png(cv, self.lexicon_metrics)}
            if cv:
                figures["confusion.png"] = confusion_png(
                    [(k, ["no", "yes"], v["confusion"]) for k, v in cv["pairs"].items()],
                    columns=6,
                    title=f"{cfg.folds}-fold CV confusion per pair (gold rows)",
                )
            out = Path(cfg.out)
            self.path = save_artifact(out, AM.KIND, self.state, self.metrics, self.card, extra_files=figures)
            size = (self.path / "model.skops").stat().st_size
            print(f'  wrote {self.path} ({size / 1e6:.1f} MB); {out / "current.json"} points "aspects" at it')
            served = AM.load_aspect_model(out, self.pipeline.lexicon)
            for text in ("发货太慢了，客服也不耐烦", "客服很耐心", "客服回复很及时"):
                found = served.score([self.pipeline.make_doc(text)])[0]
                print(f"  check: {text} -> " + ", ".join(f"{f.aspect}/{f.polarity} {f.score:.2f}" for f in found))
        self.stage(f"done in {self.stage.elapsed():.0f}s")
        return self.path

    def _metrics(self) -> dict:
        cfg, y = self.config, self.y
        return {
            "model": f"aspect_model.AspectModel (linear SVMs: {len(PAIRS)} direct + {len(ASPECTS)} presence + "
            f"{len(ASPECTS)} polarity; Platt; thresholds: shared, own below {OWN_THRESHOLD_BELOW} positives)",
            "data": {
                "files": self.files_record,
                "rows": len(self.rows),
                "near_duplicate_groups": len(set(self.groups.tolist())),
                "labels_per_pair": {k: int(n) for k, n in zip(PAIR_CODES, y.sum(0))},
                "domains": {d: sum(r.domain == d for r in self.rows) for d in sorted({r.domain for r in self.rows})},
            },
            "lexicon_version": self.pipeline.lexicon.version,
            "segmenter": self.pipeline.segmenter.name,
            "corpus": self.corpus_info,
            "cv": {
                "folds": cfg.folds,
                "inner_folds": cfg.inner_folds,
                "seed": SEED,
                "grouping": "StratifiedGroupKFold; a text and its near-duplicates (overlap coefficient of "
                "char 3-gram sets >= 0.7, transitively) share a fold (training.splits.near_duplicate_groups)",
                "model": self.cv_metrics,
                "lexicon_baseline": self.lexicon_metrics,
                "seconds": round(self.cv_seconds, 1),
            },
            "targets": targets_met(self.cv_metrics),
            **self.report,
            "thresholds": {k: round(float(th), 4) for k, th in zip(PAIR_CODES, self.state["threshold"])},
            "never_asserted": self.never,
            "lexicon_only_pairs": self.lexicon_only,
            "model_or_lexicon_pairs": self.with_lexicon,
            "n_features": int(self.model.featurizer.n_features),
            "training_seconds": round(self.train_seconds, 1),
            "stage_started_at_seconds": self.stage.offsets(),
            "packages": {
                "python": platform.python_version(),
                **package_versions(("scikit-learn", "numpy", "scipy", "skops", "rjieba", "jieba", "OpenCC")),
            },
        }


def train_aspects(config: AspectsConfig) -> Path | None:
    """Every stage in order; the new version's folder (None on a dry run)."""
    return AspectsTraining(config).run().path
