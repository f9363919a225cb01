"""The training library's pieces on tiny inputs: the sentiment fit agrees with the serving
code, the fast metrics agree with scikit-learn, the near-duplicate and split helpers behave."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from app.core.taxonomy import SENTIMENT_LABELS
from app.pipeline import sentiment as S
from training.calibration import CalibrationData, decide
from training.data import LabelledDataError, annotation_files
from training.metrics import binary_report, fast_macro_f1, label_matrix, pair_metrics, prf_table
from training.sentiment_fit import count_matrix, fit_linear, make_state, matrix_margins
from training.splits import grouped_folds, near_duplicate_groups, review_split, strat_keys

POS = ["质量很好，物流很快", "非常满意，下次还买", "味道不错，分量足", "客服很耐心，态度好", "包装完好，好评"]
NEG = ["质量太差了，再也不买了", "送餐太慢，饭都凉了", "客服态度很差", "没有想象中那么好用", "不新鲜，难吃"]


@pytest.fixture(scope="module")
def tiny(fake_pipeline):
    texts = (POS + NEG) * 3
    docs = [fake_pipeline.make_doc(t + "！" * (i // 10)) for i, t in enumerate(texts)]
    y = np.array(([1] * len(POS) + [0] * len(NEG)) * 3)
    negators = frozenset(fake_pipeline.lexicon.negators)
    return docs, y, negators, count_matrix(docs, negators)


@pytest.mark.parametrize(
    "clf, groups",
    [("nbsvm", ("word", "char", "hits")), ("lr", ("word", "char")), ("svm", ("word", "char", "hits", "neg"))],
)
def test_training_matrix_and_serving_model_give_the_same_margins(tiny, clf, groups):
    docs, y, negators, counts = tiny
    fitted = fit_linear(counts.matrix, y, clf, groups, counts.groups)
    model = S.LinearSentimentModel(make_state(fitted, counts.names[fitted.kidx].tolist(), negators), "t")
    assert np.allclose(model.margins(docs), matrix_margins(fitted, counts.matrix), atol=1e-4)
    assert ((model.margins(docs) > 0).astype(int) == y).mean() > 0.9
    assert set(counts.groups[fitted.kidx]) <= set(groups)


def test_count_matrix_groups_cover_the_feature_groups(tiny):
    _, _, _, counts = tiny
    assert set(counts.groups) <= set(S.FEATURE_GROUPS) and {"word", "char", "hits"} <= set(counts.groups)
    assert counts.matrix.shape == (len(tiny[0]), len(counts.names))


def test_fast_macro_f1_is_sklearns():
    rng = np.random.default_rng(0)
    labels = np.array(SENTIMENT_LABELS)
    gold, pred = rng.choice(labels, 200), rng.choice(labels, 200)
    assert fast_macro_f1(gold, pred, np.sort(labels)) == pytest.approx(f1_score(gold, pred, average="macro"))


def test_decide_follows_the_serving_rule():
    p = np.array([[0.5, 0.3, 0.2], [0.6, 0.1, 0.3], [0.1, 0.1, 0.8], [0.6, 0.1, 0.3]])
    z = np.array([1.0, 1.0, -1.0, 1.0])
    letters = np.array([True, True, True, False])
    assert decide(p, z, 0.25, letters).tolist() == ["neutral", "positive", "negative", "neutral"]


def test_calibration_data_of_documents(fake_pipeline):
    docs = [fake_pipeline.make_doc(t) for t in ("质量很好", "123")]
    data = CalibrationData.of(["positive", "neutral"], docs)
    assert data.letters.tolist() == [True, False] and data.hits.shape == (2, 2)


def test_pair_metrics_and_label_matrix():
    y = label_matrix([{("logistics", "negative")}, {("quality", "positive"), ("price", "negative")}, set()])
    assert y.shape == (3, 18) and y.sum() == 3
    m = pair_metrics(y, y)
    assert m["aspect_polarity"]["micro_f1"] == 1.0 and m["pairs"]["logistics:negative"]["support"] == 1
    assert pair_metrics(y, np.zeros_like(y))["root_causes"]["micro_f1"] == 0.0


def test_binary_report_and_prf_table_agree():
    y = np.array([1, 1, 0, 0, 1, 0])
    pred = np.array([1, 0, 0, 1, 1, 0])
    dom = np.array(["shopping", "waimai"] * 3)
    report = binary_report(y, pred, dom, ("shopping", "waimai"))
    lab = {1: "positive", 0: "negative"}
    table = prf_table([lab[v] for v in y], [lab[v] for v in pred], ["positive", "negative"])
    assert report["all"]["macro_f1"] == table["macro_f1"]
    assert report["all"]["confusion"]["matrix"] == table["confusion"]["rows_gold_cols_pred"]


def test_review_split_keeps_hand_labelled_and_held_out_copies_out_of_training():
    texts = [f"t{i}" for i in range(100)] + ["t0", "hand"]
    strata = ["a"] * 50 + ["b"] * 50 + ["a", "b"]
    split = review_split(texts, strata, {"hand"}, 0.1, seed=3)
    assert split.held.sum() == 10 and not (split.held & split.train).any()
    assert not split.train[texts.index("hand")]
    held_texts = {t for t, h in zip(texts, split.held) if h}
    assert all(t not in held_texts for t, tr in zip(texts, split.train) if tr)
    val = split.slice_of_train(4)
    assert not (val & ~split.train).any() and 0 < val.sum() < split.train.sum()
    assert split.record["heldout_rows"] == 10


def test_strat_keys_pool_rare_pairs():
    y = np.zeros((12, 18), dtype=np.int8)
    y[:10, 0] = 1
    y[10:, 5] = 1  # only 2 rows: pooled for 5 folds
    keys = strat_keys(y, 5)
    assert set(keys[:10]) == {0} and set(keys[10:]) == {-2}


def test_near_duplicate_groups_join_copies_and_containment_transitively():
    texts = [
        "物流太慢了，等了一个星期才到",
        "物流太慢了!!等了一个星期才到。",  # punctuation variant
        "质量很好，穿着舒服",
        "物流太慢了，等了一个星期才到，客服也不理人",  # contains the first
        "好",  # too short for trigrams: only equal texts join it
        "好！",
    ]
    g = near_duplicate_groups(texts)
    assert g[0] == g[1] == g[3]
    assert g[2] != g[0] and g[4] == g[5] and g[4] not in (g[0], g[2])


def test_grouped_folds_keep_each_group_in_one_test_fold():
    rng = np.random.default_rng(0)
    y = (rng.random((60, 18)) < 0.2).astype(np.int8)
    groups = np.arange(60) // 3  # 20 groups of 3
    folds = grouped_folds(y, groups, 5)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested.tolist()) == list(range(60))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])


def test_annotation_files_of_a_folder_are_every_round_sorted(tmp_path):
    for name in ("aspects_train_2.jsonl", "aspects_train.jsonl", "notes.jsonl"):
        (tmp_path / name).write_text('{"text": "好", "aspects": []}\n', encoding="utf-8")
    assert [p.name for p in annotation_files(tmp_path)] == ["aspects_train.jsonl", "aspects_train_2.jsonl"]
    assert annotation_files(tmp_path / "notes.jsonl") == [tmp_path / "notes.jsonl"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelledDataError, match="no aspects_train"):
        annotation_files(tmp_path / "empty")


def test_sentiment_card_of_a_run_without_full_says_what_was_not_run():
    """A default training run skips the design comparison, the corpus experiments and SnowNLP's
    baseline; its card must still render and say so, not invent the missing figures."""
    import json
    from pathlib import Path

    from training.cards import sentiment_card
    from training.sentiment_select import INCUMBENT

    models = Path(__file__).resolve().parents[1] / "models"
    version = json.loads((models / "current.json").read_text())["sentiment"]
    m = json.loads((models / "sentiment" / version / "metrics.json").read_text())
    clf, features = INCUMBENT.split(" / ")
    m["design_table"] = {INCUMBENT: {"classifier": clf, "features": features}}
    m["cross_domain"], m["snownlp_heldout"] = None, None
    m["snownlp_corpus"]["experiment"] = {"kept_in_shipped_model": True, "override": "keep", "rule": "not run"}
    card = sentiment_card(m)
    assert card.count("Not run in this training run") == 2 and "Leave-one-category-out: not run" in card
    assert f"shopping {m['heldout_binary']['shopping']['macro_f1']:.4f}" in card
