from app.pipeline import present
from app.pipeline.engine import TextItem
from app.pipeline.findings import Analysis, ItemError
from tests.conftest import assert_spans


def test_batch_keeps_order_and_isolates_bad_items(fake_pipeline):
    items = [
        TextItem("发货太慢了", "a"),
        TextItem("", "b"),
        TextItem("x" * 5001, "c"),
        TextItem(12, "d"),
        TextItem(None, "e"),
        TextItem("坏\ud800", "f"),
        TextItem("客服很耐心", "g"),
    ]
    out = fake_pipeline.analyze_batch(items)
    assert [r.id for r in out] == list("abcdefg")
    assert [type(r) for r in out] == [Analysis, ItemError, ItemError, ItemError, ItemError, ItemError, Analysis]
    assert [r.code for r in out if isinstance(r, ItemError)] == [
        "empty_text",
        "text_too_long",
        "invalid_input",
        "invalid_input",
        "invalid_text",
    ]


def test_offsets_index_the_original_text(fake_pipeline):
    original = "  發貨\u200b太慢了，ＡＢＣ客服也不耐煩！！"
    result = present.analysis(fake_pipeline.analyze(original), fake_pipeline.versions)
    assert {k["dimension"] for k in result["keywords"]} == {"logistics", "attitude"}
    assert_spans(original, result)
    causes = [c["cause"] for c in result["root_causes"]]
    assert set(causes) == {"logistics", "attitude"}
    assert any("不耐煩" in ev["text"] for c in result["root_causes"] for ev in c["evidence"])


def test_root_causes_are_the_negative_aspects_best_first(fake_pipeline):
    a = fake_pipeline.analyze("客服很耐心，但是物流太慢，包装也破损了，价格有点贵")
    assert all(x.polarity == "negative" for x in a.root_causes)
    assert [x.score for x in a.root_causes] == sorted((x.score for x in a.root_causes), reverse=True)
    assert {x.aspect for x in a.aspects if x.polarity == "positive"} == {"attitude"}
    assert {x.aspect for x in a.root_causes} == {"logistics", "price"}


def test_top_terms_skip_stopwords(fake_pipeline):
    a = fake_pipeline.analyze("这个手机的屏幕很清晰，手机电池也耐用，手机很好", top_terms=3)
    terms = [t.term for t in a.top_terms]
    assert terms[0] == "手机"
    assert all(t not in fake_pipeline.lexicon.stopwords for t in terms)


def test_hostile_but_valid_texts_are_analysed(fake_pipeline):
    texts = [
        "😀😀😀",
        "https://example.com/a?b=1 质量差",
        "<b>好评</b><script>x</script>",
        "good product, fast shipping",
        "1234567890",
        "好" * 5000,
        "。。。！！！",
        "\t\n 质量 \n",
    ]
    out = fake_pipeline.analyze_batch([TextItem(t, str(i)) for i, t in enumerate(texts)])
    assert all(isinstance(r, Analysis) for r in out)


def test_a_batch_across_slices_answers_like_each_text_alone():
    """analyze_batch takes SLICE texts through the stages at a time: with the served models,
    every finding of a batch spanning three slices, with bad items on the slices' edges, is the
    finding of that text analysed alone, in its slot."""
    from pathlib import Path

    from app.pipeline.engine import SLICE, build_pipeline

    root = Path(__file__).resolve().parents[1]
    pipeline = build_pipeline(root / "lexicons", root / "models")
    texts = [
        "发货太慢了，客服也不耐烦",
        "质量很好，物流也快，下次还来",
        "东西不错，就是物流太慢了",
        "味道一般，分量太少，价格有点贵",
        "屏幕很清晰，运行流畅，但是电池不耐用",
    ]
    items = [TextItem(f"{texts[i % len(texts)]}{'！' * (i % 3)}{i}", f"r{i}") for i in range(2 * SLICE + 7)]
    for bad in (SLICE - 1, SLICE, 2 * SLICE):
        items[bad] = TextItem("", f"r{bad}")
    batch = pipeline.analyze_batch(items, with_words=True)
    assert [r.id for r in batch] == [it.id for it in items]
    for item, got in zip(items, batch):
        (alone,) = pipeline.analyze_batch([item], with_words=True)
        if isinstance(alone, ItemError):
            assert got == alone
        else:
            assert present.analysis(got, {}) == present.analysis(alone, {}) and got.words == alone.words
