"""The compiled segmenter (rjieba): exact character offsets on hostile text, the lexicon and user
dictionary taking effect, the HMM switch, and the segmenter recorded by models."""

from __future__ import annotations

import logging
import random

import pytest

from app.pipeline.aspects import LexiconAspectScorer
from app.pipeline.engine import Pipeline
from app.pipeline.normalize import normalize
from app.pipeline.segment import LEGACY_SEGMENTER, Segmenter
from tests.conftest import FakeSentiment

HOSTILE = [
    "发货太慢了，客服也不耐烦",
    "發貨太慢了，客服也不耐煩！！",  # traditional
    "ＡＢＣ全角１２３，ｆｕｌｌ　ｗｉｄｔｈ",  # full-width, ideographic space
    "😀😀很好👍🏽，👨‍👩‍👧‍👦一家人都喜欢🇨🇳",  # emoji, skin tone, ZWJ family, flag
    "𠀀𠀁𪚥好吃𩸽",  # astral CJK (extension B and beyond)
    "e\u0301clair很好吃 cafe\u0301",  # combining accents
    "مرحبا 你好 שלום",  # right-to-left scripts
    "3.3kg 8.0分 t.cn/zlW19r http://a.b/c?d=1&e=2 NULL-1 802.11N",
    "   前后空格\t\t制表符\n换行\r\n回车\u2028行分隔\u00a0不换行空格  ",
    "\x00\x01控制字符\x7f\u200b零宽\ufeff",
    "哈哈哈哈哈哈哈哈呵呵呵呵呵呵嗯嗯嗯嗯" * 20,
    "a" * 300 + "好" * 300,
    "",
    " ",
    "!!!???。。。",
]


def _assert_exact(seg: Segmenter, text: str) -> None:
    toks = seg.tokenize(text)
    pos = 0
    for w, s, e in toks:
        assert text[s:e] == w, (text, w, s, e)
        assert s == pos, "tokens cover the text in order, without gaps"
        pos = e
    assert pos == len(text)
    assert [w for w, _, _ in toks] == seg.cut(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_offsets_are_exact_character_offsets(segmenter, text):
    _assert_exact(segmenter, text)
    if text.strip():
        _assert_exact(segmenter, normalize(text).text)


def test_offsets_hold_on_long_random_unicode(segmenter):
    rng = random.Random(7)
    pools = [
        (0x4E00, 0x9FFF),  # CJK
        (0x20000, 0x2A6DF),  # CJK extension B (astral)
        (0x1F300, 0x1FAFF),  # emoji
        (0x20, 0x7E),  # ASCII
        (0xFF01, 0xFF5E),  # full-width
        (0x0300, 0x036F),  # combining marks
        (0x0600, 0x06FF),  # Arabic
    ]
    for _ in range(20):
        chars = []
        for _ in range(5000):
            lo, hi = rng.choice(pools)
            chars.append(chr(rng.randint(lo, hi)))
        _assert_exact(segmenter, "".join(chars))


def test_lexicon_terms_and_user_dictionary_are_single_tokens(segmenter, lexicon):
    words = segmenter.cut("客服爱答不理，挺好的，不满意，转人工")
    for term in ("爱答不理", "挺好", "不满意", "转人工"):  # 挺好, 不满意: Python jieba split them
        assert term in words, words
    assert ("转人工", 6000, "v") in lexicon.userdict


def test_the_hmm_switch_changes_unknown_words():
    text = "他来到了网易杭研大厦"
    assert "杭研" in Segmenter().cut(text)
    assert "杭研" not in Segmenter(hmm=False).cut(text)


def test_the_segmenter_names_itself():
    from importlib.metadata import version

    assert Segmenter.name == f"rjieba {version('rjieba')}"


class _OldModel(FakeSentiment):
    version = "old-1"
    segmenter = LEGACY_SEGMENTER


def test_a_model_trained_with_another_segmenter_is_served_with_a_warning(lexicon, segmenter, caplog):
    with caplog.at_level(logging.WARNING, logger="app.pipeline.engine"):
        Pipeline(lexicon=lexicon, segmenter=segmenter, sentiment=_OldModel(), aspects=LexiconAspectScorer("x"))
    assert any("old-1" in r.getMessage() and LEGACY_SEGMENTER in r.getMessage() for r in caplog.records)
    caplog.clear()
    same = _OldModel()
    same.segmenter = segmenter.name
    with caplog.at_level(logging.WARNING, logger="app.pipeline.engine"):
        Pipeline(lexicon=lexicon, segmenter=segmenter, sentiment=same, aspects=LexiconAspectScorer("x"))
    assert not [r for r in caplog.records if "trained on tokens" in r.getMessage()]


def _regex_gaps(text: str) -> list[tuple[int, int]]:
    """The text between CLAUSE_BREAK's matches, by the regex: what clause_gaps compiles."""
    from app.pipeline.segment import CLAUSE_BREAK

    gaps, prev = [], 0
    for m in CLAUSE_BREAK.finditer(text):
        if m.start() > prev:
            gaps.append((prev, m.start()))
        prev = m.end()
    return gaps + [(prev, len(text))] if prev < len(text) else gaps


def test_compiled_clause_gaps_and_width_folding_match_their_python_definitions():
    """_native.clause_gaps is CLAUSE_BREAK's complement and fold_width is str.translate of the
    full-width table, for every code point alone and around '.' between digits (8.0 is no break,
    ٣.٣ neither: re's \\d is any decimal digit), and on random mixtures; clauses() still equals
    clauses_reference, contrast words included."""
    from app.pipeline._native import clause_gaps, fold_width
    from app.pipeline.segment import clauses, clauses_reference

    table = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
    for cp in range(0x110000):
        ch = chr(cp)
        assert clause_gaps(ch) == _regex_gaps(ch), hex(cp)
        assert fold_width(ch) == ch.translate(table), hex(cp)
        if ch.isdecimal():
            for t in (ch + "." + ch, "a." + ch, ch + ".a", ch + ".."):
                assert clause_gaps(t) == _regex_gaps(t), t
    rnd = random.Random(13)
    pool = list(",!?;:~…。！？；，、. 09٣\t\n\u3000\u2028\xa0好吃但是不过Ａａ～｡") + [
        chr(c) for c in range(0xFF00, 0xFF60)
    ]
    seg = Segmenter(extra_words=["但是", "不过"])
    contrast = frozenset({"但是", "不过", "但"})
    for _ in range(20_000):
        text = "".join(
            rnd.choice(pool) if rnd.random() < 0.9 else chr(rnd.randint(1, 0xFFFF)) for _ in range(rnd.randint(0, 16))
        )
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # no lone surrogates
        assert clause_gaps(text) == _regex_gaps(text), text
        assert fold_width(text) == text.translate(table), text
        tokens = seg.tokenize(text)
        assert clauses(text, tokens, contrast) == clauses_reference(text, tokens, contrast), text
    with pytest.raises(TypeError):
        clause_gaps(b"bytes")
    with pytest.raises(TypeError):
        fold_width(None)
