"""The batch summary (``app.pipeline.summary``) answers the same texts with the same JSON in
every process: equal counts keep the texts' order, not a set's hash order."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

SUMMARY_OF_ONE_TEXT = """
import json
from types import SimpleNamespace as S
from app.pipeline.summary import summarize
pairs = [("logistics", "negative"), ("quality", "negative"), ("price", "negative"), ("attitude", "positive")]
found = [S(aspect=a, polarity=p) for a, p in pairs]
text = S(sentiment=S(label="negative"), mixed=True, aspects=found, root_causes=found[:3])
print(json.dumps(summarize([text]), ensure_ascii=False))
"""


def test_a_batch_summary_has_one_order_whatever_the_hash_seed():
    answers = {
        subprocess.run(
            [sys.executable, "-c", SUMMARY_OF_ONE_TEXT],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(answers) == 1, answers
    (answer,) = answers
    assert answer.index('"logistics:negative"') < answer.index('"quality:negative"') < answer.index('"price:negative"')
