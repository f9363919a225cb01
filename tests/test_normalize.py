import pytest

from app.pipeline.normalize import InvalidText, normalize, to_simplified

CASES = [
    # original, normalised text
    ("發貨太慢了，客服也不耐煩", "发货太慢了,客服也不耐烦"),
    ("ＡＢＣ１２３！", "ABC123!"),
    ("  前后空格  ", "前后空格"),
    ("a\u200bb\u200dc", "abc"),
    ("多个   空格\n\n换行", "多个 空格 换行"),
    ("控制\x00字符\x07", "控制字符"),
    ("表情😀保留", "表情😀保留"),
    ("全角　空格", "全角 空格"),
]


@pytest.mark.parametrize("original,expected", CASES)
def test_normalised_text(original, expected):
    assert normalize(original).text == expected


@pytest.mark.parametrize("original,_", CASES)
def test_every_character_maps_back(original, _):
    n = normalize(original)
    for i, ch in enumerate(n.text):
        s, e = n.to_original(i, i + 1)
        assert e - s == 1
        src = original[s]
        # the source is the same character modulo the length-preserving maps
        assert ch == to_simplified(src.translate({0x3000: 0x20} | {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)})) or (
            ch == " " and src.isspace()
        )


def test_range_maps_to_original_span():
    original = "  發貨\u200b太慢"
    n = normalize(original)
    assert n.text == "发货太慢"
    s, e = n.to_original(0, 4)
    assert original[s:e] == "發貨\u200b太慢"


def test_lone_surrogate_is_rejected():
    with pytest.raises(InvalidText):
        normalize("坏\ud800字")


def test_simplified_keeps_length():
    text = "乾隆皇帝的頭髮裡面有隻臺灣蟲"
    assert len(to_simplified(text)) == len(text)
