"""Loaded models are kept out of the collector's walks (app.core.memory.freeze_loaded), and
replacing them still frees them: freezing again thaws and collects first, and the served models
hold no reference cycles, so a replaced one goes by reference counting alone."""

from __future__ import annotations

import gc
import weakref

from app.core.memory import YOUNG_GENERATION, collect_less_often, freeze_loaded
from app.pipeline.sentiment import load_sentiment_model
from tests.conftest import ROOT, needs_models


class Node:
    pass


def test_a_cycle_frozen_earlier_is_collected_by_the_next_freeze():
    a = Node()
    a.self = a
    ref = weakref.ref(a)
    freeze_loaded()
    del a
    gc.collect()
    assert ref() is not None  # frozen: the collector leaves it alone
    freeze_loaded()
    assert ref() is None
    gc.unfreeze()


@needs_models
def test_a_replaced_sentiment_model_is_freed_without_the_collector():
    model = load_sentiment_model(ROOT / "models")
    model.margins([])  # binds its own feature space
    ref = weakref.ref(model)
    gc.disable()
    try:
        del model
        assert ref() is None  # no cycle through the model (its count table holds no self)
    finally:
        gc.enable()


def test_collect_less_often_raises_only_the_young_generations_threshold():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        collect_less_often()
        assert gc.get_threshold() == (YOUNG_GENERATION, 11, 12)
    finally:
        gc.set_threshold(*before)
