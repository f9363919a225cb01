"""Per-text top terms by TF-IDF, with jieba's shipped IDF table and our stop-word list.

Computed from the tokens the pipeline already has (jieba.analyse would re-segment with
the global tokenizer and ignore our user dictionary).
"""

from __future__ import annotations

import re
from collections import Counter
from importlib.resources import files

from app.pipeline.findings import Doc, TermScore

_WORDLIKE = re.compile(r"[\u4e00-\u9fffA-Za-z]")


class ContentWords:
    """A text's distinct content words in order, for corpus statistics (complaint terms).

    Unlike ``TfidfTerms`` no IDF table (~150 MB per process) and single characters stay:
    慢, 差, 贵 are complaint words. Stop words, digits and punctuation go.

    Whether a word is one is remembered, since a corpus repeats its words (5,000 reviews: 28
    words each, 14,000 distinct): 11.6 -> 6.6 µs a review. At most ``REMEMBERED`` words (~6 MB
    with their strings; 200,000 took 23 MB); past that the memory starts afresh, so a job
    worker's memory stays flat on any input.
    """

    REMEMBERED = 50_000

    def __init__(self, stopwords: frozenset[str]):
        self.stopwords = stopwords
        self._known: dict[str, bool] = {}

    def __call__(self, doc: Doc) -> tuple[str, ...]:
        known = self._known
        if len(known) > self.REMEMBERED:
            known.clear()
        out = []
        for w in doc.features.words:  # the feature pass's words: lower-cased, whitespace tokens out
            keep = known.get(w)
            if keep is None:
                keep = known[w] = w not in self.stopwords and len(w) <= 12 and _WORDLIKE.search(w) is not None
            if keep:
                out.append(w)
        return tuple(dict.fromkeys(out))


class TfidfTerms:
    def __init__(self, stopwords: frozenset[str]):
        self.stopwords = stopwords
        self._idf: dict[str, float] | None = None
        self._median = 0.0

    def _load(self) -> dict[str, float]:
        if self._idf is None:
            idf = {}
            text = files("jieba.analyse").joinpath("idf.txt").read_text(encoding="utf-8")
            for line in text.splitlines():
                word, _, value = line.rpartition(" ")
                if word:
                    idf[word] = float(value)
            self._idf = idf
            self._median = sorted(idf.values())[len(idf) // 2]
        return self._idf

    def top(self, doc: Doc, k: int) -> tuple[TermScore, ...]:
        """The ``k`` highest tf-idf words (two or more characters, not stop words)."""
        idf = self._load()
        counts = Counter(
            w for w, _, _ in doc.tokens if len(w.strip()) > 1 and w not in self.stopwords and not w.isdigit()
        )
        total = sum(counts.values()) or 1
        scored = [(w, c / total * idf.get(w, self._median)) for w, c in counts.items()]
        scored.sort(key=lambda x: (-x[1], x[0]))
        return tuple(TermScore(w, round(s, 4)) for w, s in scored[:k])
