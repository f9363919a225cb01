"""app.core.jsonbytes: the fast JSON reader must read back what ``json.dumps`` wrote."""

import json
import random
import re

from app.core import jsonbytes


def test_the_long_number_check_finds_exactly_the_runs_of_19_digits():
    rnd = random.Random(3)
    alphabet = '0123456789a"-.,评'
    for _ in range(5000):
        data = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60))).encode()
        assert jsonbytes._has_long_number(data) == (re.search(rb"\d{19}", data) is not None), data
    assert jsonbytes._has_long_number(("差" * 10 + "1234567890123456789").encode())
    assert not jsonbytes._has_long_number(("差" * 10 + "123456789012345678").encode())


def test_loads_reads_back_what_json_wrote():
    values = [
        [2**63, -(2**63) - 1, 10**30, 2**63 - 1, -(2**63)],
        {"term": "订单号12345678901234567890", "n": 3},
        ["物流", "很慢"] * 1000 + [float("nan")],
        {"ok": [1, 2.5, None, True, "好评"]},
    ]
    for value in values:
        text = json.dumps(value, ensure_ascii=False)
        got = jsonbytes.loads(text.encode())
        assert json.dumps(got, ensure_ascii=False) == text
