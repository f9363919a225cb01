"""Counts over a batch of analyses: what the batch endpoint returns beside its rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from app.core.taxonomy import zh
from app.pipeline.findings import Analysis, ItemError


def summarize(results: Iterable[Analysis | ItemError]) -> dict:
    """Totals, errors, and counts by sentiment (plus how many texts are ``mixed``), root cause
    and aspect/polarity."""
    total = errors = mixed = 0
    sentiment: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    aspects: Counter[str] = Counter()
    for r in results:
        total += 1
        if isinstance(r, ItemError):
            errors += 1
            continue
        sentiment[r.sentiment.label] += 1
        mixed += r.mixed
        # each once per text, in the text's order (a set's order would change with the hash
        # seed, and with it the order of equal counts: one answer, one order)
        causes.update(dict.fromkeys(a.aspect for a in r.root_causes).keys())
        aspects.update(dict.fromkeys(f"{a.aspect}:{a.polarity}" for a in r.aspects).keys())
    analysed = total - errors
    return {
        "total": total,
        "analysed": analysed,
        "errors": errors,
        "sentiment": dict(sentiment),
        "mixed": mixed,
        "root_causes": [
            {"cause": c, "cause_zh": zh("cause", c), "count": n, "share": round(n / analysed, 4)}
            for c, n in causes.most_common()
        ]
        if analysed
        else [],
        "aspects": dict(aspects.most_common()),
    }
