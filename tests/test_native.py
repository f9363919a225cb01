"""The compiled half of the feature pass (app/pipeline/_native.c): the name table, the term
search and the kernels on edge cases and hostile input. Exactness against the numpy/string
reference is tests/test_features.py; keyword behaviour is tests/test_keywords.py."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline import _native
from app.pipeline import features as F
from app.pipeline.artifacts import encode_strings
from app.pipeline.sparse import tfidf_values


def ids(raw: bytes) -> list[int]:
    return np.frombuffer(raw, dtype=np.int32).tolist()


NAMES = ["", "a", "ab", "abc", "abcd", "好", "好吃", "😀", "𠀀𠀁", "a\x00b", F.WORD + "好吃", "长" * 300]


def test_the_table_numbers_names_in_order_and_tells_them_apart():
    v = _native.Vocab()
    assert ids(v.add(NAMES)) == list(range(len(NAMES)))
    assert ids(v.add(["好吃", "新"])) == [NAMES.index("好吃"), len(NAMES)]  # known names keep their id
    assert len(v) == len(NAMES) + 1
    # short names are their own key: a name and its prefixes, or the same code points in
    # another order, never collide
    assert ids(v.lookup(["a", "ab", "abc", "ba", "abcd", "abcde", "吃好", "\x00"])) == [1, 2, 3, -1, 4, -1, -1, -1]
    assert ids(v.lookup(["长" * 300, "长" * 299])) == [len(NAMES) - 1, -1]


def test_long_names_of_every_length_around_the_stored_length_cap_stay_apart():
    """A long name's key holds its length up to 255 (longer ones are also checked against the
    stored length): names of 254-300 characters, and a 255-character name inside a longer one,
    each find only themselves, by lookup and by encode (words, bigrams)."""
    v = _native.Vocab()
    names = ["长" * n for n in (4, 254, 255, 256, 257, 300)] + ["长" * 255 + "短", "长" * 256 + "短"]
    assert ids(v.add(names)) == list(range(len(names)))
    assert ids(v.lookup(names)) == list(range(len(names)))
    assert ids(v.lookup(["长" * 253, "长" * 258, "长" * 257 + "短", "短" + "长" * 255])) == [-1] * 4
    words = ["长" * 255, "长" * 256]
    v.add([F.WORD + w for w in words] + [F.BIGRAM + words[0] + F.JOIN + words[1]])
    got = ids(v.encode("", None, words))
    assert got == ids(v.lookup([F.WORD + w for w in words] + [F.BIGRAM + words[0] + F.JOIN + words[1]]))
    assert min(got) >= len(names)


def test_a_vocabulary_blob_adds_the_same_ids_as_its_names():
    a, b = _native.Vocab(), _native.Vocab()
    names = [n for n in NAMES if n and "\x00" not in n]  # a blob joins names with NUL
    assert ids(a.add(names)) == ids(b.add_joined(encode_strings(names)))
    assert ids(a.lookup(names)) == ids(b.lookup(names))
    with pytest.raises(UnicodeDecodeError):
        _native.Vocab().add_joined(b"ok\x00\xff\xfe")


def test_the_table_grows_past_its_first_size_and_keeps_every_name():
    v = _native.Vocab()
    names = [f"w{i}" for i in range(5000)] + [chr(0x4E00 + i) for i in range(3000)]
    assert ids(v.add(names)) == list(range(len(names)))
    assert ids(v.lookup(names[::7])) == list(range(0, len(names), 7))
    v.shrink()
    assert ids(v.lookup(names[-3:])) == [len(names) - 3, len(names) - 2, len(names) - 1]


@pytest.mark.parametrize("bad", [["ok", 3], [b"bytes"], "not a list"])
def test_names_must_be_strings(bad):
    with pytest.raises(TypeError):
        _native.Vocab().add(bad if not isinstance(bad, str) else 5)


def test_encode_refuses_what_is_not_text():
    v = _native.Vocab()
    with pytest.raises(TypeError):
        v.encode("好", None, ("好",))  # words must be a list
    with pytest.raises(TypeError):
        v.encode("好", b"x", ["好"])
    with pytest.raises(TypeError):
        v.encode("好", None, [1])


def test_the_term_search_refuses_tokens_that_do_not_tile_the_text():
    t = _native.Vocab()
    t.add(["好"])
    empty = _native.Vocab()
    args = (t, t, empty, empty, np.zeros(0, np.uint8), np.zeros(0), 1)
    assert _native.scan_terms(*args, "好的", [("好", 0, 1), ("的", 1, 2)]) == [(0, 1, 0, 0, 0, 1.0)]
    with pytest.raises(ValueError, match="tile"):
        _native.scan_terms(*args, "好的", [("好的", 0, 5)])
    with pytest.raises(ValueError, match="tile"):
        _native.scan_terms(*args, "好的", [("的", 1, 2), ("好", 0, 1)])
    with pytest.raises(TypeError):
        _native.scan_terms(*args, "好的", [("好", "0", 1)])
    with pytest.raises(ValueError, match="negator"):
        _native.scan_terms(t, t, empty, t, np.zeros(0, np.uint8), np.zeros(0), 1, "好", [("好", 0, 1)])


@pytest.mark.parametrize("width", [50, 300, 70_000])  # columns sorted in one, two, three radix passes
def test_tfidf_product_equals_numpy_on_long_rows_with_large_counts(width):
    """The kernel against tfidf_values + a float32 product, with counts past the first table,
    on rows long enough to be radix-sorted and rows short enough not to be."""
    rng = np.random.default_rng(3)
    k = 4
    pool = rng.integers(-1, width + 10, size=6000).astype(np.int32)  # unknown ids too
    pool[:3000] = 7  # one column counted 3,000 times in the first row
    rows = F.Rows()
    base = rows.attach(pool)
    rows.add(base, base + 3500)
    rows.add(base + 3500, base + 6000, base, base + 10)
    rows.add(base + 4000, base + 4030)  # a short row
    columns = np.full(width + 11, -1, dtype=np.int32)
    columns[:width] = rng.permutation(width)
    idf = rng.uniform(1, 5, width)
    groups = (np.arange(width) % 2).astype(np.uint8)
    weights = rng.normal(size=(width, k)).astype(np.float32)
    out = np.zeros((3, k), dtype=np.float32)
    F.tfidf_product(rows, columns, idf, groups, weights, out)

    expected = np.zeros((3, k), dtype=np.float32)
    for r, ids_ in enumerate([pool[:3500], np.concatenate([pool[3500:], pool[:10]]), pool[4000:4030]]):
        cols = columns[ids_[ids_ >= 0]]
        cols = cols[cols >= 0]
        uniq, counts = np.unique(cols, return_counts=True)
        x = tfidf_values(np.zeros(len(uniq), dtype=np.int64), uniq, counts, idf, groups[uniq].astype(np.int64))
        for c, v in zip(uniq, x.astype(np.float32)):
            expected[r] += v * weights[c]
    assert np.array_equal(out, expected)


def test_kernels_refuse_shapes_that_would_overflow_or_runs_past_the_segments():
    empty = np.zeros(0, dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        _native.add_dense(empty, empty, np.zeros(0, dtype=np.float32), 1 << 62, 4)
    ids = np.zeros(4, dtype=np.int32)
    segs = np.array([0, 2, 2, 4], dtype=np.int64)
    rowptr = np.array([0, 1 << 40, 1], dtype=np.int64)  # a middle row ending far past the segments
    with pytest.raises(ValueError, match="malformed rows"):
        _native.tfidf_product(
            ids,
            segs,
            rowptr,
            None,
            np.ones(2),
            F.LOG_COUNT.table,
            None,
            np.ones(2, np.float32),
            np.zeros(2, np.float32),
        )


def test_sentiment_margins_handle_empty_rows_and_refuse_bad_shapes():
    rows = F.Rows()
    empty = rows.attach(np.zeros(0, dtype=np.int32))
    rows.add(empty, empty)
    table = F.CountTable(lambda c: np.ones(len(c), dtype=np.float32), np.float32)
    weights = np.ones((3, 2), dtype=np.float32)
    assert F.sentiment_margins(rows, None, table, weights, 0.25).tolist() == [0.25]  # no feature: the intercept
    with pytest.raises(ValueError, match="weights"):
        F.sentiment_margins(rows, None, table, np.ones(5, dtype=np.float32)[:3], 0.0)


def test_random_text_never_breaks_the_table_or_the_term_search():
    """Random strings over a small alphabet with astral characters, NUL and lone surrogates:
    encode's ids equal lookups of the same n-gram strings, and the term search runs on any
    tokenisation that tiles the text."""
    rng = np.random.default_rng(11)
    alphabet = list("好吃不太快 a\x00") + ["😀", "\ud800", "𠀀"]
    v = _native.Vocab()
    names = ["".join(rng.choice(alphabet, size=rng.integers(1, 4))) for _ in range(300)]
    v.add(names)
    terms = _native.Vocab()
    terms.add(["好吃", "不", "快", "😀"])
    heads = _native.Vocab()
    heads.add(["好吃", "不", "快", "😀"])
    prefixes = _native.Vocab()
    prefixes.add(["不", "太"])
    firsts = _native.Vocab()
    firsts.add(["不", "太"])
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=rng.integers(1, 40)))
        words = [w for w in text.split(" ") if w]
        got = ids(v.encode(text.replace(" ", ""), text, words))
        t = text.replace(" ", "")
        grams = [*t, *(t[i : i + 2] for i in range(len(t) - 1)), *(t[i : i + 3] for i in range(len(t) - 2))]
        sgrams = [c for c in text if not c.isspace()]
        sgrams += [text[i : i + 2] for i in range(len(text) - 1)] + [text[i : i + 3] for i in range(len(text) - 2)]
        keys = [F.WORD + w for w in words] + [F.BIGRAM + a + F.JOIN + b for a, b in zip(words, words[1:])]
        assert got == ids(v.lookup(keys + grams + sgrams))
        cuts = sorted({0, len(text), *rng.integers(0, len(text) + 1, size=5).tolist()})
        tokens = [(text[a:b], a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        found = _native.scan_terms(
            terms, heads, firsts, prefixes, np.array([1, 0], np.uint8), np.array([1.0, 1.5]), 2, text, tokens
        )
        assert all(0 <= s < e <= len(text) for s, e, *_ in found)
        assert all(a[1] <= b[0] for a, b in zip(found, found[1:]))  # in order, never overlapping
