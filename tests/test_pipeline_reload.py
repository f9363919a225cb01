"""The reload checks are plain functions of the pipeline layer: callable on any pipeline,
without the app or its admin route (tests/test_admin_reload.py covers the route)."""

from __future__ import annotations

import pytest

from app.pipeline.engine import Pipeline
from app.pipeline.findings import SentimentFinding
from app.pipeline.reload import SMOKE_CASES, ModelRejected, smoke_check


class ConstantSentiment:
    """Says the same thing about every text: a model no smoke case would let serve."""

    version = "constant-1"

    def __init__(self, label: str, probabilities: dict[str, float] | None = None):
        self.finding = SentimentFinding(label, probabilities or {"positive": 0.1, "neutral": 0.1, "negative": 0.8})

    def predict(self, docs):
        return [self.finding for _ in docs]


class Crashing:
    version = "crash-1"

    def predict(self, docs):
        raise ValueError("shapes do not align")


def test_the_smoke_cases_ask_for_both_labels_and_a_root_cause():
    assert {label for _, label, _ in SMOKE_CASES} >= {"positive", "negative"}
    assert any(cause for _, _, cause in SMOKE_CASES)


@pytest.mark.parametrize(
    "sentiment, words",
    [
        (ConstantSentiment("negative"), ["sentiment negative, expected positive"]),
        (ConstantSentiment("positive", {"positive": 0.9, "neutral": 0.5, "negative": 0.5}), ["malformed sentiment"]),
        (ConstantSentiment("angry"), ["malformed sentiment"]),
        (Crashing(), ["smoke prediction crashed", "ValueError", "not loaded"]),
    ],
)
def test_a_candidate_that_gets_the_smoke_cases_wrong_is_rejected(fake_pipeline, sentiment, words):
    candidate = Pipeline(
        lexicon=fake_pipeline.lexicon,
        segmenter=fake_pipeline.segmenter,
        sentiment=sentiment,
        aspects=fake_pipeline.aspects,
    )
    with pytest.raises(ModelRejected) as caught:
        smoke_check(candidate)
    assert caught.value.status == 409 and caught.value.code == "model_rejected"
    for w in words:
        assert w in caught.value.message, caught.value.message


def test_a_candidate_that_gets_them_right_passes(fake_pipeline):
    smoke_check(fake_pipeline)  # the lexicon-driven fake: positive, negative, logistics as asked
