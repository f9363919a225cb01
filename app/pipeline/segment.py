"""Word segmentation with an owned, compiled jieba instance (never a module-level global one).

The segmenter is ``rjieba`` (Python bindings of jieba-rs: jieba's algorithm, dictionary and
HMM for unknown words, in Rust), built once at service start-up with the user dictionary and
every multi-character lexicon term, so terms like 爱答不理 come out as single tokens. It is
about ten times faster than Python jieba and agrees with it token for token on ~96 % of
reviews with our lexicon (``bench/bench_segmenter.py`` measures that and lists where they
differ). Offsets are character offsets: ``text[start:end] == word`` for every token.

Models record the segmenter they were trained with (:attr:`Segmenter.name`); the pipeline
warns when it serves a model trained with another one. :class:`PyJiebaSegmenter` is Python
jieba behind the same interface: the reference that benchmarks and agreement checks compare
against, and what models trained before the switch saw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib.metadata import version as _pkg_version
from operator import itemgetter

import rjieba

from app.pipeline._native import clause_gaps
from app.pipeline.findings import Token

# Clause boundaries: sentence/clause punctuation (after full-width folding) and line breaks.
# clauses() reads the compiled twin, _native.clause_gaps (tests/test_segmenter.py holds them equal).
CLAUSE_BREAK = re.compile(r"(?:[,!?;:~…。！？；，、\s]|(?<!\d)\.|\.(?!\d))+")

UserDict = Iterable[tuple[str, int | None, str | None]]

LEGACY_SEGMENTER = "jieba 0.42.1"
"""What a model whose artifact names no segmenter was trained with (every model before rjieba)."""


class Segmenter:
    """Compiled jieba (``rjieba.Jieba``) with the user dictionary and lexicon terms added.

    ``userdict`` rows are ``(word, freq, tag)`` as in jieba's user-dictionary format (a ``None``
    frequency lets jieba pick one that keeps the word whole); ``extra_words`` are added with such
    a frequency unless the dictionary already has them as words. ``hmm`` switches jieba's HMM
    for unknown words (on, as in the service).
    """

    name = f"rjieba {_pkg_version('rjieba')}"

    def __init__(self, userdict: UserDict = (), extra_words: Iterable[str] = (), *, hmm: bool = True):
        self._jieba = rjieba.Jieba()
        self._hmm = hmm
        for word, freq, tag in userdict:
            self._jieba.add_word(word, freq, tag)
        for word in extra_words:
            if len(word) > 1 and not self._jieba.has_word(word):
                self._jieba.add_word(word, None, None)

    def tokenize(self, text: str) -> list[Token]:
        """(word, start, end) for every token; character offsets into ``text``."""
        return self._jieba.tokenize(text, "default", self._hmm)

    def cut(self, text: str) -> list[str]:
        return self._jieba.cut(text, self._hmm)


class PyJiebaSegmenter:
    """Python jieba (an owned ``jieba.Tokenizer``) behind the same interface: the reference.

    Built the way the service built its segmenter before the switch to rjieba. Python jieba
    counts a word's prefixes as dictionary entries, so a lexicon term that is only the start
    of a dictionary word (挺好, 不满意) was never added; rjieba adds it.
    """

    def __init__(self, userdict: UserDict = (), extra_words: Iterable[str] = (), *, hmm: bool = True):
        import logging

        import jieba  # the reference only: the service never loads Python jieba's dictionary

        jieba.setLogLevel(logging.WARNING)
        self.name = f"jieba {jieba.__version__}"
        self._hmm = hmm
        self._tok = jieba.Tokenizer()
        self._tok.initialize()
        for word, freq, tag in userdict:
            self._tok.add_word(word, freq, tag)
        for word in extra_words:
            if len(word) > 1 and word not in self._tok.FREQ:
                self._tok.add_word(word, None)

    def tokenize(self, text: str) -> list[Token]:
        return list(self._tok.tokenize(text, HMM=self._hmm))

    def cut(self, text: str) -> list[str]:
        return self._tok.lcut(text, HMM=self._hmm)


def clauses(text: str, tokens: list[Token], contrast: frozenset[str]) -> list[tuple[int, int]]:
    """Split into clause ranges at punctuation and before contrast words (但, 不过 …).

    Negation never crosses a clause, and evidence spans are whole clauses.

    >>> clauses("好吃，但是贵", [("好吃", 0, 2), ("，", 2, 3), ("但是", 3, 5), ("贵", 5, 6)], frozenset({"但是"}))
    [(0, 2), (3, 6)]
    >>> clauses("不错但是贵!!", [("不错", 0, 2), ("但是", 2, 4), ("贵", 4, 5), ("!!", 5, 7)], frozenset({"但是"}))
    [(0, 2), (2, 5)]
    """
    gaps = clause_gaps(text)  # the text between runs of CLAUSE_BREAK, compiled
    if contrast.isdisjoint(map(itemgetter(0), tokens)):
        return gaps
    cuts = sorted({s for w, s, _ in tokens if w in contrast})
    out = []
    for a, b in gaps:
        for c in cuts:
            if a < c < b:
                out.append((a, c))
                a = c
        out.append((a, b))
    return out


def clauses_reference(text: str, tokens: list[Token], contrast: frozenset[str]) -> list[tuple[int, int]]:
    """:func:`clauses` as first written (every cut point, then every piece tested): the
    definition the faster one is checked against."""
    cuts = {0, len(text)}
    for m in CLAUSE_BREAK.finditer(text):
        cuts.add(m.start())
        cuts.add(m.end())
    for word, start, _ in tokens:
        if word in contrast:
            cuts.add(start)
    points = sorted(cuts)
    out = []
    for a, b in zip(points, points[1:]):
        piece = text[a:b]
        if piece and not CLAUSE_BREAK.fullmatch(piece):
            out.append((a, b))
    return out
