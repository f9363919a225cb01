"""The one feature pass (app/pipeline/features.py): built once per document, clause n-grams are
slices of the document's, ids equal dict lookups, and both served models give exactly the
numbers of the string featurisation training fits on (same segmentation -> same outputs)."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline import aspect_model as AM
from app.pipeline import features as F
from app.pipeline import sentiment as S
from app.pipeline.artifacts import decode_strings
from app.pipeline.engine import TextItem, build_pipeline
from app.pipeline.sparse import sparse_counts
from tests.conftest import ROOT, SHARED_DATA, needs_models

TEXTS = [
    "物流很快，但是客服态度很差，包装也破了。",
    "好吃 但是 贵",  # whitespace: the sentiment model's char n-grams differ from the aspect model's
    "a  b\u2003c 服务 态度 差，Apple 不错",  # a lone em space survives normalisation
    "İstanbul 很好，ΣΑΣ 一般",  # lower() changes the length / depends on context
    "😀😀很好，𠀀𠀁也行",
    "x",
    "！！！",
    "不是不耐心，不过发货太慢了，送货员也不太友好",
    "质量太差了,用了两天就坏了;再也不买了...客服:爱答不理",
    "机器很好，公司内部使用小巧，赞",  # a one-character last clause: its empty runs end past the ids
    "哈" * 1500 + "，好评",  # counts past the kernels' first count tables (1,024): the tables grow
]


@pytest.mark.parametrize("text", TEXTS)
def test_clause_ngrams_are_slices_of_the_document(fake_pipeline, text):
    doc = fake_pipeline.make_doc(text)
    f = doc.features
    for a, b in doc.clauses:
        assert f.clause(a, b) == F.char_ngrams("".join(doc.text[a:b].lower().split()))
        lo, hi = f.clause_words(a, b)
        inside = [w for w, s, e in doc.tokens if a <= s and e <= b and not w.isspace()]
        assert f.raw_words[lo:hi] == inside


def test_the_pass_is_built_once_per_document(fake_pipeline):
    doc = fake_pipeline.make_doc(TEXTS[0])
    assert doc.features is doc.features
    space = F.FeatureSpace([["物流", "很快"]])
    assert doc.features.encoded(space) is doc.features.encoded(space)


def test_compiled_ids_equal_dict_lookups_of_the_feature_strings(fake_pipeline):
    docs = [fake_pipeline.make_doc(t) for t in TEXTS * 3]
    names = {g for d in docs for f in (d.features,) for g in f.chars + f.sentiment_chars + f.word_keys + f.bigram_keys}
    vocab = sorted(names | {F.WORD + "物流", "\x04positive"})[::2]  # half of them known
    other = ["好", "好吃", "很好", vocab[0]]
    space = F.FeatureSpace([vocab, other])
    index = {name: i for i, name in enumerate(dict.fromkeys(vocab + other))}  # union ids: first seen first

    def ids(strings):
        return [index.get(x, -1) for x in strings]

    for d in docs:
        f = d.features
        enc = f.encoded(space)
        assert enc.ids[slice(*enc.words)].tolist() == ids(f.word_keys)
        assert enc.ids[slice(*enc.chars)].tolist() == ids(f.chars)
        runs = enc.sentiment_runs(0)
        runs = np.concatenate([enc.ids[a:b] for a, b in zip(runs[::2], runs[1::2])])
        assert runs.tolist() == ids(f.word_keys + f.bigram_keys + f.sentiment_chars)
        for a, b in d.clauses:
            if f.exact:
                runs, words = enc.clause_runs(f, 0, [(a, b)])
                *chars, lo, hi = runs
                assert words == [lo, hi] and (lo, hi) == f.clause_words(a, b)
                chars = np.concatenate([enc.ids[s:e] for s, e in zip(chars[::2], chars[1::2])])
                assert chars.tolist() == ids(f.clause(a, b))
                assert enc.ids[lo:hi].tolist() == ids(f.word_keys[lo:hi])
    assert space.ids(["好吃", "zz", F.WORD + "物流"]).tolist() == ids(["好吃", "zz", F.WORD + "物流"])
    assert space.columns(1)[space.ids(other)].tolist() == [0, 1, 2, 3]


def test_kernels_refuse_malformed_rows():
    space = F.FeatureSpace([["a", "b"]])
    rows = F.Rows()
    rows.add(rows.attach(np.array([0, 1, -1], dtype=np.int32)), 3)
    out = np.zeros((1, 2), dtype=np.float32)
    F.tfidf_product(rows, space.columns(0), np.ones(2), None, np.ones((2, 2), dtype=np.float32), out)
    assert out.tolist() == [[pytest.approx(2**0.5)] * 2]  # two unit features, L2-normalised
    assert space.kernel_columns(0) is None  # the first vocabulary: ids are its columns
    again = np.zeros((1, 2), dtype=np.float32)
    F.tfidf_product(rows, None, np.ones(2), None, np.ones((2, 2), dtype=np.float32), again)
    assert again.tolist() == out.tolist()
    bad = F.Rows()
    bad.add(bad.attach(np.array([0], dtype=np.int32)), 5)  # a run past the end of the ids
    with pytest.raises(ValueError, match="out of range"):
        F.tfidf_product(bad, space.columns(0), np.ones(2), None, np.ones((2, 2), dtype=np.float32), out)
    with pytest.raises(ValueError, match="out must be"):
        F.tfidf_product(rows, space.columns(0), np.ones(2), None, np.ones((2, 2), dtype=np.float32), out[:, :1])
    wrong = np.full(3, 1, dtype=np.int32)  # column 1 of a 1-wide model
    with pytest.raises(ValueError, match="out of range"):
        F.tfidf_product(rows, wrong, np.ones(1), None, np.ones((1, 2), dtype=np.float32), out)


def test_features_for_the_chat_models_are_documented_strings(fake_pipeline):
    f = fake_pipeline.make_doc("客服很耐心").features
    assert f.words == ["客服", "很", "耐心"] and f.word_keys == [F.WORD + w for w in f.words]
    assert f.bigram_keys[0] == F.BIGRAM + "客服" + F.JOIN + "很"
    assert f.chars[:5] == list("客服很耐心") and "客服很" in f.chars


# ---------------------------------------------------------------- served models, exact numbers


@pytest.fixture(scope="module")
def served(segmenter):
    return build_pipeline(ROOT / "lexicons", ROOT / "models", segmenter=segmenter)


def _reference_margins(model: S.LinearSentimentModel, docs) -> np.ndarray:
    """The margins as first written: doc_features strings looked up in the model's own index."""

    def feats(doc):
        text = doc.text.lower()
        words = [w.lower() for w, _, _ in doc.tokens if not w.isspace()]
        out = [F.WORD + w for w in words] + [F.BIGRAM + a + F.JOIN + b for a, b in zip(words, words[1:])]
        out += [c for c in text if not c.isspace()]
        out += [text[i : i + 2] for i in range(len(text) - 1)] + [text[i : i + 3] for i in range(len(text) - 2)]
        return out + S.evidence_features(doc, model.use_hits, model.negators)

    index = {t: i for i, t in enumerate(decode_strings(model.state()["vocab"]))}
    n, rows, cols, counts = sparse_counts(map(feats, docs), index)
    v = S.feature_values(counts, model.value)
    scale2, u = model._weights[:, 0], model._weights[:, 1]
    norm = np.sqrt(np.bincount(rows, weights=v * v * scale2[cols], minlength=n))
    norm[norm == 0] = 1.0
    return np.bincount(rows, weights=v * u[cols], minlength=n) / norm + model._b


def _sample_docs(served, n=400):
    import csv

    texts = list(TEXTS)
    if (SHARED_DATA / "reviews_train.csv").is_file():
        with open(SHARED_DATA / "reviews_train.csv", encoding="utf-8") as f:
            texts += [r["review"] for _, r in zip(range(n), csv.DictReader(f))]
    return [served.make_doc(t) for t in texts if t.strip()]


@needs_models
def test_served_models_give_the_numbers_of_the_string_featurisation(served):
    docs = _sample_docs(served)
    assert served.sentiment.margins(docs).tolist() == _reference_margins(served.sentiment, docs).tolist()
    am = served.aspects
    assert np.array_equal(
        am.linear_parts(AM.doc_parts(docs, served.space, am._target_cols)), am.linear([AM.doc_view(d) for d in docs])
    )
    parts = AM.clause_parts(docs, served.space, am._target_cols)
    views = [v for d in docs for v in AM.clause_views(d)]
    assert np.array_equal(am.linear_parts(parts), am.linear(views))


@needs_models
def test_one_text_alone_equals_the_same_text_in_a_batch(served):
    texts = TEXTS + ["质量很好，物流很快，非常满意"]
    batch = served.analyze_batch([TextItem(t) for t in texts])
    assert batch == [served.analyze_batch([TextItem(t)])[0] for t in texts]


@needs_models
def test_both_models_share_one_feature_space(served):
    assert served.sentiment._binding()[0] is served.space is served.aspects._binding()[0]
