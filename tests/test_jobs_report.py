"""The 差评报表 on small synthetic rows with known answers (no pipeline involved)."""

from __future__ import annotations

from collections import Counter

import pytest

from app.api.job_schemas import JobSummary
from app.jobs.report import DEFAULT_CONFIG, Accumulator, MemorySource, RowFacts, build_report, parse_day

NEG = RowFacts("negative", ("logistics",), (("logistics", "negative"),), frozenset({"慢", "物流"}))
POS = RowFacts("positive", (), (("quality", "positive"),), frozenset({"好", "物流"}))


def rows_for(groups: dict[str, tuple[int, int]], column="channel"):
    """(facts, groups) rows: for each group value, (rows, negatives)."""
    out = []
    for value, (n, neg) in groups.items():
        out += [(NEG if i < neg else POS, {column: value}) for i in range(n)]
    return out


def report_of(rows, plan, texts=None, **kw):
    acc = Accumulator()
    for i, (facts, groups, *day) in enumerate(rows):
        acc.add(
            i,
            facts,
            error=None if facts else "empty_text",
            groups=groups,
            day=day[0] if day else None,
            dated=bool(plan.get("date_column")),
        )
    return build_report(MemorySource(acc, texts), plan, **kw)


def group(report, value, column=0):
    return next(g for g in report["groups"]["columns"][column]["groups"] if g["value"] == value)


def test_counts_and_shares_by_sentiment_cause_and_aspect():
    r = report_of(rows_for({"a": (10, 4)}) + [(None, {})], {})
    assert r["totals"] == {"rows": 11, "analysed": 10, "errors": 1}
    assert r["sentiment"]["negative"] == {"count": 4, "share": 0.4, "label_zh": "差评"}
    assert r["root_causes"] == [
        {"cause": "logistics", "cause_zh": "物流配送", "name_zh": "物流配送", "count": 4, "share": 0.4}
    ]
    assert {a["aspect"]: (a["positive"], a["negative"]) for a in r["aspects"]} == {
        "logistics": (0, 4),
        "quality": (6, 0),
    }
    assert r["errors"]["by_code"] == {"empty_text": 1}


def test_a_group_with_a_clearly_higher_negative_rate_is_flagged_and_equal_ones_are_not():
    r = report_of(rows_for({"app": (100, 50), "web": (100, 10), "mini": (100, 10)}), {"group_columns": ["channel"]})
    col = r["groups"]["columns"][0]
    assert col["column"] == "channel" and col["flagged"] == ["app"]
    assert group(r, "app")["negative_rate"] == 0.5 and group(r, "app")["p_value"] < 0.001
    assert not group(r, "web")["flagged"] and not group(r, "mini")["flagged"]
    assert group(r, "web")["root_causes"][0]["count"] == 10  # per-group counts are there too


def test_equal_rates_are_not_flagged():
    r = report_of(rows_for({"app": (100, 20), "web": (100, 20)}), {"group_columns": ["channel"]})
    assert r["groups"]["columns"][0]["flagged"] == []
    assert group(r, "app")["z"] == 0.0


def test_groups_below_the_minimum_size_are_not_tested():
    small = DEFAULT_CONFIG.group_min_rows - 1
    r = report_of(rows_for({"app": (small, small), "web": (100, 5), "mini": (100, 5)}), {"group_columns": ["channel"]})
    assert group(r, "app")["z"] is None and not group(r, "app")["flagged"]
    assert r["groups"]["columns"][0]["groups_tested"] == 2


def test_a_slightly_higher_rate_in_a_huge_group_needs_the_minimum_difference():
    r = report_of(rows_for({"app": (20000, 2150), "web": (20000, 2000)}), {"group_columns": ["channel"]})
    assert group(r, "app")["p_value"] < 0.01 and not group(r, "app")["flagged"]  # 0.75 points < 2


def days_rows(spike_day="2026-11-08"):
    rows = []
    for d in range(1, 11):
        day = f"2026-11-{d:02d}"
        neg = 25 if day == spike_day else 5
        rows += [(NEG if i < neg else POS, {}, day) for i in range(50)]
    return rows + [(POS, {}, None)]


def test_daily_series_and_a_spike_day_is_flagged():
    r = report_of(days_rows(), {"date_column": "date"})
    daily = r["daily"]
    assert [d["date"] for d in daily["series"]][:2] == ["2026-11-01", "2026-11-02"]
    assert daily["undated_rows"] == 1
    spike = next(d for d in daily["series"] if d["date"] == "2026-11-08")
    assert spike["negative_rate"] == 0.5 and spike["top_cause"] == "logistics"
    alerts = {(a["date"], a["metric"]) for a in daily["alerts"]}
    assert alerts == {("2026-11-08", "negative_rate"), ("2026-11-08", "cause_share")}
    rate = next(a for a in daily["alerts"] if a["metric"] == "negative_rate")
    assert rate["baseline"] == 0.1 and "投诉率骤升" in rate["message_zh"]


BOTH = RowFacts("negative", ("logistics", "attitude"), (("logistics", "negative"),), frozenset({"慢"}))
PRICE = RowFacts("negative", ("price",), (), frozenset({"贵"}))


def trend_rows():
    """Per day: some rows blaming logistics, some logistics and attitude, some price; and an
    undated logistics row (counted overall, in no day)."""
    rows = []
    for d, (n_log, n_both, n_price) in enumerate([(3, 1, 0), (0, 2, 5), (1, 0, 1)], start=1):
        day = f"2026-11-{d:02d}"
        rows += [(NEG, {}, day)] * n_log + [(BOTH, {}, day)] * n_both + [(PRICE, {}, day)] * n_price + [(POS, {}, day)]
    return rows + [(NEG, {}, None)]


def test_daily_series_carries_every_causes_count_per_day():
    rows = trend_rows()
    daily = report_of(rows, {"date_column": "date"})["daily"]
    for point in daily["series"]:
        expected = Counter(c for f, _, day in rows if day == point["date"] for c in f.causes)
        assert point["causes"] == dict(expected)
        assert list(point["causes"].values()) == sorted(point["causes"].values(), reverse=True)
        assert point["top_cause"] == next(iter(point["causes"]))
    assert daily["series"][1]["causes"] == {"price": 5, "attitude": 2, "logistics": 2}
    # ranked over the dated days (the undated row is not in the trend), with the Chinese names
    assert [(c["cause"], c["count"]) for c in daily["causes"]] == [("logistics", 7), ("price", 6), ("attitude", 3)]
    assert daily["causes"][0]["cause_zh"] == "物流配送"
    head = {"job_id": "j", "status": "done", "complete": True}
    JobSummary.model_validate({**report_of(rows, {"date_column": "date"}), **head})  # the contract has the fields


def test_per_day_cause_counts_add_up_across_chunks():
    rows = trend_rows()
    one, first, second = Accumulator(), Accumulator(), Accumulator()
    for i, (f, groups, day) in enumerate(rows):
        one.add(i, f, groups=groups, day=day, dated=True)
        (first if i % 3 else second).add(i, f, groups=groups, day=day, dated=True)
    first.merge(second)
    assert first.counts == one.counts
    plan = {"date_column": "date"}
    assert build_report(MemorySource(first), plan)["daily"] == build_report(MemorySource(one), plan)["daily"]


def test_no_spike_without_enough_history_or_jump():
    flat = report_of(days_rows(spike_day="none"), {"date_column": "date"})
    assert flat["daily"]["alerts"] == []
    early = report_of(days_rows(spike_day="2026-11-02"), {"date_column": "date"})  # one trailing day only
    assert early["daily"]["alerts"] == []


def test_complaint_terms_rank_negative_words_with_an_example():
    rows = rows_for({"a": (40, 15)})
    texts = {0: ("r0", "发货太慢了")}
    r = report_of(rows, {}, texts)
    terms = r["complaint_terms"]
    assert [t["term"] for t in terms["items"]] == ["慢"]  # 物流 is everywhere, 好 is praise
    top = terms["items"][0]
    assert (top["negative_texts"], top["positive_texts"]) == (15, 0) and top["z"] >= 1.96
    assert top["example"] == {"row": 1, "id": "r0", "text": "发货太慢了"}
    assert "Monroe" in terms["method"]


def test_every_threshold_is_stated():
    r = report_of(rows_for({"a": (5, 1)}), {})
    assert r["thresholds"]["group_alpha"] == 0.05 and r["thresholds"]["spike_window_days"] == 7
    assert "z-test" in r["groups"]["test"]


def test_accumulators_merge_like_one():
    rows = rows_for({"app": (30, 9), "web": (20, 2)})
    one, a, b = Accumulator(), Accumulator(), Accumulator()
    for i, (facts, groups) in enumerate(rows):
        one.add(i, facts, groups=groups)
        (a if i % 2 else b).add(i, facts, groups=groups)
    a.merge(b)
    assert a.counts == one.counts and a.terms == one.terms


@pytest.mark.parametrize(
    "value, day",
    [
        ("2026-11-20", "2026-11-20"),
        ("2026/1/5 08:00", "2026-01-05"),
        ("2026-11-20T23:59:59+08:00", "2026-11-20"),
        ("2026年11月3日", "2026-11-03"),
        ("20261103", "2026-11-03"),
        ("2026-02-30", None),
        ("next week", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_day(value, day):
    assert parse_day(value) == day


def test_epoch_needs_a_time_column():
    assert parse_day("1763604000") is None
    assert parse_day("1763604000000", allow_epoch=True) == "2025-11-20"
