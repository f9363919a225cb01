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

    Decided word by word every time. A dict remembering the decisions was faster in a loop over
    the same texts (2.5 µs a review), but in a job, where it held a corpus's words, its lookups
    missed the CPU caches: 6.2 µs a review against 3.9 for deciding afresh (bench reviews, each
    measured right after its slice of the pipeline), with no memory to bound.
    """

    def __init__(self, stopwords: frozenset[str]):
        self.stopwords = stopwords

    def __call__(self, doc: Doc) -> tuple[str, ...]:
        stop, out = self.stopwords, []
        for w in doc.features.words:  # the feature pass's words: lower-cased, whitespace tokens out
            if w in stop or len(w) > 12:
                continue
            if "\u4e00" <= w[0] <= "\u9fff" or _WORDLIKE.search(w) is not None:  # mostly settled by w[0]
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
