"""Review findings -> JSON-ready dicts in the shape of API.md.

Beside the finding types rather than in ``app.api`` because every caller presents them the
same way: the routes, batch jobs (``app.jobs.scoring``), conversation reports and the CLI.
Internal fields (clause ids, words) stay inside. Every code a person reads has its Chinese
name beside it (``aspect_zh``, ``cause_zh`` ...), from the one taxonomy.
"""

from __future__ import annotations

from app.core.taxonomy import zh
from app.pipeline.findings import Analysis, AspectFinding, ItemError, KeywordHit, Span


def span(s: Span) -> dict:
    return {"text": s.text, "start": s.start, "end": s.end}


def keyword(h: KeywordHit) -> dict:
    return {
        "term": h.term,
        "text": h.text,
        "dimension": h.dimension,
        "dimension_zh": zh("dimension", h.dimension),
        "polarity": h.polarity,
        "polarity_zh": zh("polarity", h.polarity),
        "negated": h.negated,
        "weight": h.weight,
        "start": h.start,
        "end": h.end,
    }


def aspect(a: AspectFinding) -> dict:
    return {
        "aspect": a.aspect,
        "aspect_zh": zh("aspect", a.aspect),
        "polarity": a.polarity,
        "polarity_zh": zh("polarity", a.polarity),
        "score": a.score,
        "evidence": [span(s) for s in a.evidence],
    }


def root_cause(a: AspectFinding) -> dict:
    return {
        "cause": a.aspect,
        "cause_zh": zh("cause", a.aspect),
        "score": a.score,
        "evidence": [span(s) for s in a.evidence],
    }


def sentiment(a: Analysis, names: str = "review_sentiment") -> dict:
    """The label, its probabilities and ``mixed`` (praise and blame on different evidence);
    ``label_zh`` is a review's 好评/中评/差评, or with ``names="sentiment"`` (a chat turn) 正面/中性/负面."""
    return {
        "label": a.sentiment.label,
        "label_zh": zh(names, a.sentiment.label),
        "probabilities": a.sentiment.probabilities,
        "mixed": a.mixed,
    }


def analysis(a: Analysis, versions: dict[str, str], *, with_terms: bool = False) -> dict:
    """One text's response body; ``top_terms`` only when asked for."""
    out = {
        "id": a.id,
        "sentiment": sentiment(a),
        "keywords": [keyword(h) for h in a.keywords],
        "aspects": [aspect(x) for x in a.aspects],
        "root_causes": [root_cause(x) for x in a.root_causes],
        "model": versions,
    }
    if with_terms:
        out["top_terms"] = [{"term": t.term, "weight": t.weight} for t in a.top_terms]
    return out


def item_error(e: ItemError) -> dict:
    """A batch slot that failed: ``{"id", "error": {code, message}}``."""
    return {"id": e.id, "error": {"code": e.code, "message": e.message}}
