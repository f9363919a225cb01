"""Shared fixtures: the real lexicons and segmenter (built once), a fake sentiment model
so engine and API tests run in milliseconds, and the repo/shared-data paths."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.pipeline.aspects import LexiconAspectScorer
from app.pipeline.engine import Pipeline, build_segmenter
from app.pipeline.findings import SentimentFinding
from app.pipeline.lexicon import load_lexicon

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(),
                                  reason=f"{SHARED_DATA} is absent (training data is not in the repo)")
needs_models = pytest.mark.skipif(not (ROOT / "models" / "current.json").is_file(),
                                  reason="no trained models in models/ (run `make train`)")


class FakeSentiment:
    """Positive when the lexicon found more positive than negative hits: fast and predictable."""
    version = "fake-1"

    def predict(self, docs):
        out = []
        for d in docs:
            score = sum(1 if h.polarity == "positive" else -1 for h in d.hits)
            label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
            probs = {k: (0.8 if k == label else 0.1) for k in ("positive", "neutral", "negative")}
            out.append(SentimentFinding(label, probs))
        return out


@pytest.fixture(scope="session")
def lexicon():
    return load_lexicon(ROOT / "lexicons")


@pytest.fixture(scope="session")
def segmenter(lexicon):
    return build_segmenter(lexicon)


@pytest.fixture(scope="session")
def fake_pipeline(lexicon, segmenter):
    return Pipeline(lexicon=lexicon, segmenter=segmenter, sentiment=FakeSentiment(),
                    aspects=LexiconAspectScorer(lexicon.version), max_text_chars=5000)


def assert_spans(original: str, result: dict) -> None:
    """The contract's invariant: every span indexes the caller's original text exactly."""
    for k in result.get("keywords", []):
        assert original[k["start"]:k["end"]] == k["text"], k
    for group in ("aspects", "root_causes"):
        for a in result.get(group, []):
            assert a["evidence"], a
            for ev in a["evidence"]:
                assert original[ev["start"]:ev["end"]] == ev["text"], ev
