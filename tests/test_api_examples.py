"""The recorded answers (OpenAPI examples, the README's example) are what the served models
answer: a retrained model without re-recorded examples fails here, naming the command."""

from __future__ import annotations

import json

import pytest

from app.api.schemas import example
from training.record_examples import README, README_MARKS, answers, readme_block, readme_example, recorded_requests

RERECORD = "re-record them: .venv/bin/python training/record_examples.py (make train does it after training)"


@pytest.fixture(scope="module")
def served():
    return answers()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(recorded_requests()))
def test_each_example_is_what_the_served_models_answer(served, name):
    assert served[name] == example(name), f"app/api/examples/{name}.json is not what is served; {RERECORD}"


def test_the_readme_shows_the_recorded_analysis():
    shown = readme_example(README.read_text(encoding="utf-8"))
    assert json.loads(shown.removeprefix("```json\n").removesuffix("```\n")) == example("analyze"), RERECORD
    assert shown == readme_block(example("analyze"))


def test_the_readme_block_is_found_between_its_marks():
    start, end = README_MARKS
    text = f"before\n{start}```json\n{{}}\n```\n{end}\nafter"
    assert readme_example(text) == "```json\n{}\n```\n"
