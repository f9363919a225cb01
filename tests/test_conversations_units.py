"""Unit tests of the transcript-inspection modules, table-driven (app/conversations/*)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.conversations import agent_checks, analyze_conversations, customer, load_conversation_rules, pii, resolution
from app.conversations.findings import grade_for
from app.conversations.model import Limits, Turn, parse_conversation
from app.conversations.text import turn_text
from app.conversations.timing import BadTime, compute_timing, first_out_of_order, parse_time, response_times
from app.core.errors import PingjiaError
from app.pipeline.findings import ItemError
from app.pipeline.lexicon import LexiconError

LEXICONS = Path(__file__).resolve().parents[1] / "lexicons"
PROFILES = ("default", "promotion")


@pytest.fixture(scope="module")
def rules():
    return load_conversation_rules(LEXICONS)


def turns_of(*pairs) -> list[Turn]:
    return [Turn(i, role, text, None) for i, (role, text) in enumerate(pairs)]


def found(index, text):
    return [(m.text, m.start, m.end) for m in index.find(turn_text(text))]


# --- text.py / forbidden_phrases.csv: robust matching --------------------------------------------

FORBIDDEN = [
    ("这不归我管", [("这不归我管", 0, 5)]),
    ("不 归 我 管", [("不 归 我 管", 0, 7)]),
    ("您好，不归我管！", [("不归我管", 3, 7)]),
    ("這不歸我管", [("這不歸我管", 0, 5)]),  # traditional
    ("你們聽不懂嗎？", [("聽不懂嗎", 2, 6)]),
    ("ＯＫ，你 找 别 人吧", [("你 找 别 人", 3, 10)]),  # full-width + spaces
    ("不知道您是否方便", []),  # exception context
    ("不知道，您是否方便", []),  # a comma inside the context is fine
    ("我不知道。您自己看吧", [("不知道", 1, 4)]),  # ... but the context never crosses 。
    ("看看有没有办法", []),
    ("我们没有办法", [("没有办法", 2, 6)]),
    ("如有不清楚的地方请联系", []),
    ("爱买不买，烦不烦", [("爱买不买", 0, 4), ("烦不烦", 5, 8)]),
    ("您好，我们这边已经核实", []),
]


@pytest.mark.parametrize("text, expected", FORBIDDEN)
def test_forbidden_matching(rules, text, expected):
    assert found(rules.forbidden, text) == expected
    for t, s, e in expected:
        assert text[s:e] == t


@pytest.mark.parametrize(
    "text, expected",
    [
        ("打12315投诉你们", ["12315", "投诉你们"]),
        ("订单3123156号", []),  # digits inside a longer number
        ("１２３１５", ["１２３１５"]),
        ("我不会投诉的，放心", []),
        ("再不处理就曝光，给差评", ["曝光", "差评"]),
    ],
)
def test_escalation_matching(rules, text, expected):
    assert [t for t, _, _ in found(rules.escalation, text)] == expected


# --- lexicons.py: validated data files -------------------------------------------------------------


def corrupt(tmp_path: Path, name: str, edit) -> Path:
    root = tmp_path / "lex"
    shutil.copytree(LEXICONS, root)
    path = root / name
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "name, edit, message",
    [
        (
            "forbidden_phrases.csv",
            lambda s: s.replace("这不归我管,blame_shifting,high,", "这不归我管,blame_shifting,severe,"),
            "forbidden_phrases.csv:",
        ),
        ("forbidden_phrases.csv", lambda s: s.replace("# version: 2026-12-05.1\n", ""), "missing '# version:'"),
        ("forbidden_phrases.csv", lambda s: s + "不 归我管,rude,low,\n", "duplicate phrase"),
        ("forbidden_phrases.csv", lambda s: s + "闭上嘴,rude,low,张嘴\n", "does not contain the phrase"),
        (
            "forbidden_phrases.csv",
            lambda s: s.replace("phrase,category,severity,exceptions", "phrase,severity"),
            "header must be phrase,category,severity,exceptions",
        ),
        ("polite_phrases.csv", lambda s: s + "早安,hello,\n", "polite_phrases.csv:"),
        ("emotion_cues.csv", lambda s: s + "暴怒,anger,9,\n", "weight"),
        ("escalation_cues.csv", lambda s: s + "！！！,complaint,high,\n", "no letters or digits"),
        ("qa_profiles/promotion.json", lambda s: s.replace('"attitude": 0.25', '"attitude": 0.5'), "add up to 1.0"),
        (
            "qa_profiles/promotion.json",
            lambda s: s.replace('"slow_reply_seconds"', '"slow_reply_secondz"'),
            "slow_reply_secondz",
        ),
        (
            "qa_profiles/promotion.json",
            lambda s: s.replace('"extends": "default"', '"extends": "nope"'),
            "extends 'nope'",
        ),
        ("qa_profiles/promotion.json", lambda s: s.replace("{", "[", 1), "invalid JSON"),
        ("qa_profiles/default.json", lambda s: s.replace('"forbidden_phrase"', '"swearing"'), "deductions"),
    ],
)
def test_bad_lexicon_files_name_the_problem(tmp_path, name, edit, message):
    with pytest.raises(LexiconError) as info:
        load_conversation_rules(corrupt(tmp_path, name, edit))
    assert message in str(info.value)
    assert name.split("/")[-1] in str(info.value)


def test_default_profile_is_required(tmp_path):
    root = corrupt(tmp_path, "qa_profiles/default.json", lambda s: s)
    (root / "qa_profiles" / "default.json").unlink()
    with pytest.raises(LexiconError, match="default.json"):
        load_conversation_rules(root)


def test_an_analyst_adds_a_profile_by_dropping_a_file(tmp_path):
    root = corrupt(tmp_path, "qa_profiles/default.json", lambda s: s)
    (root / "qa_profiles" / "night_shift.json").write_text(
        json.dumps(
            {
                "version": "1",
                "description": "night",
                "slow_reply_seconds": 120,
                "weights": {"responsiveness": 0.1, "attitude": 0.4, "resolution": 0.3, "competence": 0.2},
            }
        )
    )
    loaded = load_conversation_rules(root)
    assert set(loaded.profiles) == {"default", "promotion", "night_shift"}
    assert loaded.profiles["night_shift"].slow_reply_seconds == 120
    assert loaded.version != load_conversation_rules(LEXICONS).version


def test_lexicon_sizes_and_versions(rules):
    assert len(rules.forbidden) >= 80
    assert all(v for v in rules.file_versions.values())
    cats = {
        m.entry.row.category
        for t in ("这不归我管", "不知道", "烦不烦", "保证今天到", "加我微信")
        for m in rules.forbidden.find(turn_text(t))
    }
    assert cats == {"blame_shifting", "dismissive", "rude", "over_promise", "off_platform"}


# --- timing.py -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-20T10:00:00+08:00", 1795140000.0),
        ("2026-11-20T02:00:00Z", 1795140000.0),
        ("2026-11-20T10:00:00", 1795140000.0),  # no offset: China time
        ("2026-11-20 10:00:00+08:00", 1795140000.0),
        (1795140000, 1795140000.0),
        (1795140000.5, 1795140000.5),
        (None, None),
        ("", None),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("yesterday", "not ISO 8601"),
        (True, "boolean"),
        (1795140000000, "milliseconds"),
        (-5, "not a valid"),
        (float("nan"), "not a valid"),
        ([1], "list"),
    ],
)
def test_parse_time_rejects(value, message):
    with pytest.raises(BadTime, match=message):
        parse_time(value)


@pytest.mark.parametrize(
    "roles, times, pairs, unanswered",
    [
        # customer -> agent
        ("CA", [0, 40], [(0, 1, 40.0)], None),
        # a run of customer turns is answered once, timed from its first turn
        ("CCA", [0, 30, 50], [(0, 2, 50.0)], None),
        # bot and system turns neither answer nor end a run
        ("CBSA", [0, 1, 20, 90], [(0, 3, 90.0)], None),
        # an agent turn nobody waited for is not a response
        ("ACA", [0, 10, 25], [(1, 2, 15.0)], None),
        ("ACAA", [0, 10, 25, 60], [(1, 2, 15.0)], None),
        # missing times: the pair is listed but untimed; a later timed turn of the run is used
        ("CA", [None, 40], [(0, 1, None)], None),
        ("CCA", [None, 30, 50], [(0, 2, 20.0)], None),
        # the final run nobody answered
        ("CAC", [0, 10, 20], [(0, 1, 10.0)], 2),
        ("CB", [0, 1], [], 0),
    ],
)
def test_response_times(roles, times, pairs, unanswered):
    names = {"C": "customer", "A": "agent", "B": "bot", "S": "system"}
    got, open_turn = response_times([names[r] for r in roles], times)
    assert [(p.customer_turn, p.agent_turn, p.seconds) for p in got] == pairs
    assert open_turn == unanswered


def test_timing_figures_and_nulls():
    t = compute_timing(["customer", "agent", "customer", "agent"], [0, 30, 40, 140], 60)
    assert (t.first_response_seconds, t.avg_response_seconds, t.max_response_seconds, t.slow_replies) == (
        30,
        65,
        100,
        1,
    )
    t = compute_timing(["customer", "agent"], [None, None], 60)
    assert (t.first_response_seconds, t.avg_response_seconds, t.max_response_seconds, t.slow_replies) == (None,) * 3 + (
        0,
    )


@pytest.mark.parametrize("times, bad", [([0, 1, 2], None), ([0, None, 5, 3], 3), ([5, 5], None), ([None, 9, 8], 2)])
def test_first_out_of_order(times, bad):
    assert first_out_of_order(times) == bad


# --- model.py: validation with the turn index named --------------------------------------------------

LIMITS = Limits(max_turns=4, max_text_chars=20, max_conversation_chars=50, slow_reply_seconds=60)
OK_TURN = {"role": "customer", "text": "你好"}


@pytest.mark.parametrize(
    "raw, code, message",
    [
        ([], "invalid_input", "must be an object"),
        ({"id": True, "turns": [OK_TURN]}, "invalid_input", "id"),
        ({}, "invalid_input", "turns: is missing"),
        ({"turns": "hi"}, "invalid_input", "must be a list"),
        ({"turns": []}, "empty_conversation", "empty"),
        ({"turns": [OK_TURN] * 5}, "too_many_turns", "limit is 4"),
        ({"turns": [OK_TURN, "hi"]}, "invalid_input", "turns[1]"),
        ({"turns": [OK_TURN, {"role": "boss", "text": "x"}]}, "invalid_input", "turns[1].role"),
        ({"turns": [{"role": "agent"}]}, "invalid_input", "turns[0].text: is missing"),
        ({"turns": [{"role": "agent", "text": 5}]}, "invalid_input", "turns[0].text: must be a string"),
        ({"turns": [{"role": "agent", "text": "  "}]}, "empty_text", "turns[0].text"),
        ({"turns": [{"role": "agent", "text": "长" * 21}]}, "text_too_long", "turns[0].text"),
        ({"turns": [{"role": "agent", "text": "长" * 20}] * 3}, "conversation_too_long", "limit is 50"),
        ({"turns": [{"role": "agent", "text": "x", "time": "soon"}]}, "invalid_time", "turns[0].time"),
        (
            {"turns": [dict(OK_TURN, time=10), dict(OK_TURN, time=20), dict(OK_TURN, time=5)]},
            "turns_out_of_order",
            "turns[2].time",
        ),
        ({"profile": "vip", "turns": [OK_TURN]}, "unknown_profile", "known profiles: default, promotion"),
        ({"profile": 3, "turns": [OK_TURN]}, "unknown_profile", "3"),
    ],
)
def test_parse_conversation_rejects(raw, code, message):
    with pytest.raises(PingjiaError) as info:
        parse_conversation(raw, LIMITS, PROFILES)
    assert info.value.code == code and message in info.value.message
    assert 400 <= info.value.status < 500


def test_parse_conversation_accepts():
    conv = parse_conversation(
        {
            "id": 7,
            "turns": [
                dict(OK_TURN, time="2026-11-20T10:00:00+08:00"),
                {"role": "agent", "text": "您好", "agent_id": "a1"},
            ],
        },
        LIMITS,
        PROFILES,
    )
    assert conv.id == "7" and conv.profile == "default" and conv.turns[1].agent_id == "a1"
    assert conv.turns[0].time == 1795140000.0 and conv.turns[1].time is None


# --- pii.py ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("电话13812345678", [("phone", "13812345678", "138****5678")]),
        ("电话 138-1234-5678 ", [("phone", "138-1234-5678", "138-****-5678")]),
        ("手机１３８ １２３４ ５６７８", [("phone", "１３８ １２３４ ５６７８", "１３８ **** ５６７８")]),
        ("+86 13912345678", [("phone", "+86 13912345678", "+86 139****5678")]),
        ("身份证11010519491231002X", [("id_card", "11010519491231002X", "110***********002X")]),
        ("卡号4111 1111 1111 1111", [("bank_card", "4111 1111 1111 1111", "4111 **** **** 1111")]),
        ("寄到上海市浦东新区世纪大道100号", [("address", "上海市浦东新区世纪大道100号", "上海市浦东新区********")]),
        (
            "地址是浙江省杭州市西湖区文三路90号3栋2单元501室",
            [("address", "浙江省杭州市西湖区文三路90号3栋2单元501室", "浙江省杭州市西湖区" + "*" * 15)],
        ),
        # not PII
        ("已为您修改为138****5678", []),
        ("身份证110105194912310021", []),  # wrong check digit
        ("卡号4111 1111 1111 1112", []),  # fails Luhn
        ("订单号4111111111111111", []),  # an order number, not a card
        ("电话12812345678", []),  # not a mobile prefix
        ("138123456789", []),  # 12 digits
        ("文三路90号", []),  # a street without a city or district is not a full address
        ("客服热线400-820-8820", []),
    ],
)
def test_pii(text, expected):
    got = pii.find_pii(turn_text(text), 0)
    assert [(f.pii_type, f.text, f.masked) for f in got] == expected
    for f in got:
        assert text[f.start : f.end] == f.text and len(f.masked) == len(f.text)


@pytest.mark.parametrize(
    "number, ok",
    [
        ("11010519491231002X", True),
        ("110105194912310021", False),
        ("11010519491331002X", False),
        ("110101199003071233", True),
        ("440524188001010014", False),
    ],
)  # born 1880: not a living customer
def test_id_check_digit(number, ok):
    assert pii.id_check_ok(number) is ok


def test_pii_leak_only_in_agent_turns(rules):
    turns = turns_of(
        ("customer", "我的电话13812345678"),
        ("agent", "您好，13812345678对吗"),
        ("bot", "您的号码13812345678"),
        ("agent", "已登记138****5678"),
    )
    leaks, shared = agent_checks.pii(turns, [turn_text(t.text) for t in turns])
    assert [(v.turn, v.detail["masked"], v.detail["echoes_customer"]) for v in leaks] == [(1, "138****5678", True)]
    assert leaks[0].detail["masked_text"] == "您好，138****5678对吗"
    assert [f.turn for f in shared] == [0]


# --- agent_checks.py: what the agent said and when -------------------------------------------------


@pytest.mark.parametrize(
    "pairs, expected",
    [
        ((("customer", "在吗"), ("agent", "您好，在的"), ("agent", "祝您生活愉快")), []),
        ((("customer", "在吗"), ("agent", "说"), ("agent", "祝您生活愉快")), [("missing_greeting", 1)]),
        ((("customer", "在吗"), ("agent", "您好"), ("agent", "嗯")), [("missing_closing", 2)]),
        ((("customer", "在吗"), ("agent", "嗯")), [("missing_greeting", 1), ("missing_closing", 1)]),
        ((("customer", "您好"), ("bot", "您好，再见")), []),  # no agent turn: nothing to judge
        ((("bot", "您好"), ("agent", "查到了"), ("agent", "再见")), [("missing_greeting", 1)]),
    ],
)
def test_greeting_and_closing(rules, pairs, expected):
    turns = turns_of(*pairs)
    polite = agent_checks.polite_phrases(turns, [turn_text(t.text) for t in turns], rules)
    got = agent_checks.greeting_and_closing(turns, polite)
    assert [(v.rule, v.turn) for v in got] == expected
    assert all(v.text == turns[v.turn].text for v in got)


def test_forbidden_phrases_only_in_agent_turns(rules):
    turns = turns_of(("customer", "我也不知道，没办法"), ("bot", "不知道"), ("agent", "不知道"))
    got = agent_checks.forbidden_phrases(turns, [turn_text(t.text) for t in turns], rules)
    assert [(v.turn, v.text, v.detail["category"]) for v in got] == [(2, "不知道", "dismissive")]


@pytest.mark.parametrize("seconds, severity", [(59, None), (60, None), (61, "medium"), (180, "medium"), (181, "high")])
def test_slow_reply_severity(seconds, severity):
    turns = [Turn(0, "customer", "在吗", 0.0), Turn(1, "agent", "您好", float(seconds))]
    timing = compute_timing(["customer", "agent"], [0.0, float(seconds)], 60)
    got = agent_checks.slow_replies(turns, timing, 3, "high")
    assert [v.severity for v in got] == ([severity] if severity else [])


# --- customer.py: emotion and escalation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, emotion",
    [
        ("什么垃圾，气死我了", "anger"),
        ("我明天就要用，急死了，怎么还没发", "anxiety"),
        ("太失望了，再也不买了", "disappointment"),
        ("非常满意，谢谢", "satisfaction"),
        ("我不着急，慢慢来", "neutral"),  # 不着急 is an exception of 着急
        ("好的", "neutral"),
    ],
)
def test_turn_emotion(rules, fake_pipeline, text, emotion):
    analysis = fake_pipeline.analyze(text)
    if emotion == "neutral":
        analysis = type(analysis)(None, type(analysis.sentiment)("neutral", {}), (), ())
    got = customer.turn_emotion(Turn(0, "customer", text, None), turn_text(text), analysis, rules)
    assert got.emotion == emotion
    for h in got.evidence:
        assert text[h.start : h.end] == h.text


@pytest.mark.parametrize(
    "texts, resolved_at, risk",
    [
        (["你好，请问怎么退货"], None, "none"),
        (["转人工"], None, "low"),
        (["我要投诉"], None, "medium"),
        (["我要打12315"], None, "high"),
        (["我要投诉，还要给差评"], None, "high"),  # two kinds of threat: one level up
        (["在吗", "在吗", "在吗"], None, "low"),  # the same words again: 2 pressing turns
        (["在吗", "在吗", "在吗", "在吗"], None, "medium"),
        (["到底什么时候发", "怎么还没发", "人呢"], None, "medium"),
        (["到底什么时候发", "怎么还没发"], None, "low"),
        (["我要投诉", "好的，解决了"], 1, "low"),  # resolved after the threat: one level down
        (["我不会投诉的"], None, "none"),
    ],
)
def test_escalation(rules, texts, resolved_at, risk):
    turns = [Turn(i, "customer", t, None) for i, t in enumerate(texts)]
    got = customer.escalation(turns, [turn_text(t) for t in texts], rules, resolved_at)
    assert got.risk == risk, got.reasons
    for h in got.evidence:
        assert texts[h.turn][h.start : h.end] == h.text


# --- resolution.py ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs, status, source, turn",
    [
        ((("customer", "还没发货"), ("agent", "已为您催促"), ("customer", "好的解决了")), "resolved", "customer", 2),
        ((("customer", "收到了谢谢"),), "resolved", "customer", 0),
        ((("customer", "还是没解决"),), "unresolved", "customer", 0),
        ((("customer", "算了，不买了"),), "unresolved", "customer", 0),
        ((("customer", "还没收到"),), "unresolved", "customer", 0),  # 还没收到 beats 收到了
        ((("customer", "解决了吗？"),), "unknown", None, None),  # a question, not a confirmation
        ((("customer", "好的解决了"), ("customer", "等等，还是不行")), "unresolved", "customer", 1),
        ((("customer", "退款呢"), ("agent", "已为您退款")), "resolved", "agent", 1),
        ((("customer", "能修吗"), ("agent", "这个我们处理不了")), "unresolved", "agent", 1),
        ((("customer", "你好"), ("agent", "您好")), "unknown", None, None),
    ],
)
def test_resolution(rules, pairs, status, source, turn):
    turns = turns_of(*pairs)
    got = resolution.resolve(turns, [turn_text(t.text) for t in turns], rules)
    assert (got.status, got.source) == (status, source)
    assert (got.evidence[0].turn if got.evidence else None) == turn
    for e in got.evidence:
        assert turns[e.turn].text[e.start : e.end] == e.text


# --- qa.py ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "score, grade, zh",
    [
        (100, "excellent", "优秀"),
        (90, "excellent", "优秀"),
        (89.9, "good", "良好"),
        (80, "good", "良好"),
        (79.9, "pass", "合格"),
        (60, "pass", "合格"),
        (59.9, "needs_improvement", "待改进"),
        (0, "needs_improvement", "待改进"),
    ],
)
def test_grade_bands(score, grade, zh):
    assert grade_for(score) == (grade, zh)


SLOW = {
    "turns": [
        {"role": "customer", "text": "满减怎么算", "time": 0},
        {"role": "agent", "text": "您好，满300减50，祝您购物愉快", "time": 45},
    ]
}


def test_promotion_profile_weighs_responsiveness(rules, fake_pipeline):
    default, promo = analyze_conversations([SLOW, dict(SLOW, profile="promotion")], fake_pipeline, rules)
    assert default.timing.slow_replies == 0 and promo.timing.slow_replies == 1
    assert promo.qa.weights["responsiveness"] == 0.4 and default.qa.weights["responsiveness"] == 0.25
    assert promo.qa.score < default.qa.score


def test_every_dimension_explains_itself(rules, fake_pipeline):
    paths = sorted((Path(__file__).parent / "fixtures" / "conversations").glob("*.json"))
    convs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    for report in analyze_conversations(convs, fake_pipeline, rules):
        if isinstance(report, ItemError):
            continue
        for dim in report.qa.dimensions:
            total = sum(x.effect for x in dim.explanations)
            assert dim.score == round(min(max(total, 0), 100), 1), (report.id, dim)
        weighted = sum(report.qa.weights[d.name] * d.score for d in report.qa.dimensions)
        expected = min(max(weighted - sum(d.points for d in report.qa.deductions), 0), 100)
        caps = [float(n.split()[2].rstrip(":")) for n in report.qa.notes if n.startswith("capped at")]
        assert report.qa.score == pytest.approx(min([expected, *caps]), abs=0.06)


def test_qa_ignores_the_sentiment_label(rules, fake_pipeline):
    """A retrained sentiment model must not move a grade: QA reads rules and lexicon findings only."""
    conv = json.loads((Path(__file__).parent / "fixtures" / "conversations" / "30_angry_unresolved.json").read_text())

    class Flipped:
        version = "flipped"

        def predict(self, docs):
            return [
                type(s)({"positive": "negative", "negative": "positive"}.get(s.label, s.label), s.probabilities)
                for s in fake_pipeline.sentiment.predict(docs)
            ]

    flipped = type(fake_pipeline)(
        lexicon=fake_pipeline.lexicon,
        segmenter=fake_pipeline.segmenter,
        sentiment=Flipped(),
        aspects=fake_pipeline.aspects,
    )
    (a,) = analyze_conversations([conv], fake_pipeline, rules)
    (b,) = analyze_conversations([conv], flipped, rules)
    assert a.qa.score == b.qa.score and a.customer.sentiment_start != b.customer.sentiment_start


# --- doctests: the tiny examples in the docstrings stay true ----------------------------------------


@pytest.mark.parametrize("module", ["findings", "pii", "timing", "text", "lexicons", "qa", "customer"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"app.conversations.{module}"))
    assert result.failed == 0


# --- engine.py ----------------------------------------------------------------------------------------------


class CountingPipeline:
    def __init__(self, inner):
        self.inner, self.calls, self.versions = inner, [], inner.versions

    def analyze_batch(self, items, **kw):
        self.calls.append(len(items))
        return self.inner.analyze_batch(items, **kw)


def test_one_pipeline_call_for_a_whole_batch(rules, fake_pipeline):
    spy = CountingPipeline(fake_pipeline)
    good = {"id": "g", "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "您好"}]}
    out = analyze_conversations([good, {"id": "bad", "turns": []}, good, 42], spy, rules)
    assert spy.calls == [4]
    assert [type(r).__name__ for r in out] == ["ConversationReport", "ItemError", "ConversationReport", "ItemError"]
    assert out[1].id == "bad" and out[1].code == "empty_conversation"


def test_a_turn_the_pipeline_rejects_fails_its_conversation_only(rules, fake_pipeline):
    zero_width = {"id": "z", "turns": [{"role": "customer", "text": "在吗"}, {"role": "agent", "text": "\u200b\u200b"}]}
    good = {"id": "g", "turns": [{"role": "customer", "text": "在吗"}]}
    bad, ok = analyze_conversations([zero_width, good], fake_pipeline, rules)
    assert isinstance(bad, ItemError) and bad.code == "empty_text" and "turns[1]" in bad.message
    assert ok.id == "g"
