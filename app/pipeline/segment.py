"""Word segmentation with an owned jieba Tokenizer (never jieba's global one).

The tokenizer is built once (at service start-up) with the user dictionary and every
multi-character lexicon term, so terms like 爱答不理 come out as single tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import jieba

from app.pipeline.findings import Token

jieba.setLogLevel(logging.WARNING)

# Clause boundaries: sentence/clause punctuation (after full-width folding) and line breaks.
CLAUSE_BREAK = re.compile(r"(?:[,!?;:~…。！？；，、\s]|(?<!\d)\.|\.(?!\d))+")


class Segmenter:
    def __init__(self, userdict: Iterable[tuple[str, int | None, str | None]] = (), extra_words: Iterable[str] = ()):
        self._tok = jieba.Tokenizer()
        self._tok.initialize()
        for word, freq, tag in userdict:
            self._tok.add_word(word, freq, tag)
        for word in extra_words:
            if len(word) > 1 and word not in self._tok.FREQ:
                self._tok.add_word(word, None)

    def tokenize(self, text: str) -> list[Token]:
        """(word, start, end) for every token; offsets into ``text``."""
        return list(self._tok.tokenize(text))

    def cut(self, text: str) -> list[str]:
        return self._tok.lcut(text)


def clauses(text: str, tokens: list[Token], contrast: frozenset[str]) -> list[tuple[int, int]]:
    """Split into clause ranges at punctuation and before contrast words (但, 不过 …).

    Negation never crosses a clause, and evidence spans are whole clauses.
    """
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
