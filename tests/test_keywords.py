"""Keyword rules as a table: (text, hits that must be found, terms that must not fire)."""

import pytest

# Expected hits are (term containing, dimension, polarity, negated); negated=None: either way,
# since the lexicon may list a pre-negated form (不专业) instead of negating 专业.

CASES = [
    (
        "发货太慢了，客服也不耐烦",
        [("慢", "logistics", "negative", False), ("不耐烦", "attitude", "negative", False)],
        [],
    ),
    ("客服很耐心", [("耐心", "attitude", "positive", False)], []),
    ("客服没有耐心", [("耐心", "attitude", "negative", True)], []),
    ("客服不是不耐心", [], ["negative"]),  # double negation cancels
    ("一点都不专业", [("专业", "competence", "negative", None)], []),
    (
        "客服很不专业，但是发货很快",
        [("专业", "competence", "negative", None), ("快", "logistics", "positive", False)],
        [],
    ),
    ("不耐心但是很专业", [("专业", "competence", "positive", False)], []),  # contrast ends scope
    ("质量不错", [("不错", "quality", "positive", False)], ["negative"]),  # 不错 is not negated 错
    ("不但便宜而且好用", [("便宜", "price", "positive", False)], ["negative"]),  # 不但 is no negation
    ("物流不慢", [("慢", "logistics", "positive", True)], []),
    ("价格有点贵", [("贵", "price", "negative", False)], []),
    ("颜色和图片不一样，色差很大", [("色差", "description", "negative", False)], []),
    ("收到的时候包装破损了", [("破损", "logistics", "negative", False)], []),
    ("退款难，一拖再拖", [("退款难", "after_sales", "negative", False)], []),
    ("问了三次都答非所问", [("答非所问", "competence", "negative", False)], []),
    ("客服回复很及时", [], ["negative"]),
    ("性价比很高", [], ["negative"]),
    ("快递小哥态度很好", [("很好", "logistics", "positive", False)], []),  # courier manner is logistics
    ("東西質量很差", [("差", "quality", "negative", False)], []),
]


def hits_of(pipeline, text):
    return pipeline.analyze(text).keywords


@pytest.mark.parametrize("text,expected,forbidden", CASES)
def test_keyword_table(fake_pipeline, text, expected, forbidden):
    hits = hits_of(fake_pipeline, text)
    got = {(h.term, h.dimension, h.polarity, h.negated) for h in hits}
    for term, dim, pol, neg in expected:
        assert any(term in t and d == dim and p == pol and (neg is None or n == neg) for t, d, p, n in got), (
            f"{text}: expected {(term, dim, pol, neg)}, got {got}"
        )
    for polarity in forbidden:
        assert all(h.polarity != polarity for h in hits), f"{text}: unexpected {polarity} in {got}"
    for h in hits:
        assert text[h.start : h.end] == h.text


def test_every_dimension_is_reachable(fake_pipeline):
    samples = {
        "logistics": "快递太慢了",
        "quality": "质量太差了",
        "description": "与描述不符",
        "attitude": "客服态度很差",
        "responsiveness": "客服一直不回复",
        "competence": "客服答非所问",
        "after_sales": "拒绝退款",
        "price": "价格太贵了",
    }
    for dim, text in samples.items():
        dims = {h.dimension for h in hits_of(fake_pipeline, text)}
        assert dim in dims, f"{text}: {dims}"


def test_intensifier_scales_weight(fake_pipeline):
    plain = hits_of(fake_pipeline, "价格贵")[0].weight
    strong = hits_of(fake_pipeline, "价格非常贵")[0].weight
    weak = hits_of(fake_pipeline, "价格有点贵")[0].weight
    assert weak < plain < strong


def test_general_word_without_target_is_not_reported(fake_pipeline):
    assert hits_of(fake_pipeline, "太差了") == ()
