"""The shipped chat model as the service runs it: trained violations with their clause, the
lexicons' last word, satisfaction per customer turn, resolution with deciding turns, and the
QA caps. Runs on the real pipeline and models of the repository (no ../shared needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.api.conversation_schemas import ConversationResponse
from app.conversations import analyze_conversation, load_conversation_rules, present, qa
from app.conversations.findings import Resolution
from app.conversations.learned import views_of
from app.conversations.model import Turn
from app.core.taxonomy import FORBIDDEN_CATEGORIES, SATISFACTION_LEVELS
from app.pipeline.artifacts import ArtifactError, check_state
from app.pipeline.chat_model import KIND, STATE_SCHEMA, CodeFinding
from app.pipeline.engine import TextItem, build_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(segmenter):
    pipeline = build_pipeline(ROOT / "lexicons", ROOT / "models", segmenter=segmenter)
    assert pipeline.chat is not None, "models/current.json names no chat model"
    return pipeline


@pytest.fixture(scope="module")
def rules():
    return load_conversation_rules(ROOT / "lexicons")


def chat(served, rules, *pairs, **extra):
    turns = [{"role": r, "text": t} for r, t in pairs]
    report = analyze_conversation({"id": "t", "turns": turns, **extra}, served, rules)
    body = present.report(report)
    ConversationResponse.model_validate(body)  # the response contract
    for v in body["violations"]:
        assert turns[v["turn"]]["text"][v["start"] : v["end"]] == v["text"]
    for e in body["resolution"]["evidence"]:
        assert turns[e["turn"]]["text"][e["start"] : e["end"]] == e["text"]
    return report, body


def codes(body, turn):
    return {v.get("category") or v["rule"] for v in body["violations"] if v["turn"] == turn}


def test_blame_shifting_without_a_listed_phrase_is_found_with_its_clause(served, rules):
    _, body = chat(
        served,
        rules,
        ("customer", "外卖超时一个小时了还没送到，怎么回事"),
        ("agent", "您好，送餐是骑手的事，您自己找平台去问吧"),
    )
    found = [v for v in body["violations"] if v["turn"] == 1 and v.get("category") == "blame_shifting"]
    assert found, body["violations"]
    assert all(v["source"] in ("model", "similar_rule") or "phrase" in v for v in found)
    model = [v for v in found if v.get("source") == "model"]
    if model:  # the clause that carried it, not the greeting
        assert "您好" not in model[0]["text"] and 0 < model[0]["probability"] <= 1


def test_acting_while_naming_the_courier_is_not_blame_shifting(served, rules):
    _, body = chat(
        served,
        rules,
        ("customer", "外卖超时一个小时了还没送到"),
        ("agent", "非常抱歉让您久等了，我这边马上帮您联系骑手核实位置，五分钟内给您回复"),
    )
    assert not codes(body, 1) & set(FORBIDDEN_CATEGORIES)


def test_a_listed_phrase_always_fires(served, rules):
    _, body = chat(served, rules, ("customer", "东西坏了"), ("agent", "这不归我管"))
    phrase = [v for v in body["violations"] if v["turn"] == 1 and v.get("phrase")]
    assert phrase and phrase[0]["category"] == "blame_shifting"
    assert sum(v.get("category") == "blame_shifting" for v in body["violations"]) == 1  # one deduction


def test_an_exception_context_clears_the_model(served, rules):
    conv = {"id": "x", "turns": [{"role": "customer", "text": "怎么连不上"}, {"role": "agent", "text": "我也不知道"}]}
    (a, b) = served.analyze_batch([TextItem(t["text"]) for t in conv["turns"]], with_docs=True)
    turns = [Turn(i, t["role"], t["text"], None) for i, t in enumerate(conv["turns"])]
    views = views_of(turns, [a, b])
    everything = {1: set(FORBIDDEN_CATEGORIES)}
    assert served.chat.violations(views, {1: []}, everything) == {}


def test_a_clause_of_listed_polite_phrases_is_never_a_model_violation(served, rules, monkeypatch):
    """The shipped model read 感谢您的耐心等待 (polite_phrases.csv, kind waiting) as dismissive,
    p 0.78: the polite list keeps the last word over a clause made only of its phrases; a
    violation in a clause beside it still stands."""
    reply = "您好，感谢您的耐心等待，这个我们也没有办法"
    _, body = chat(
        served, rules, ("customer", "我的快递三天了还没到"), ("agent", "您好，感谢您的耐心等待，我马上帮您查询物流")
    )
    assert not codes(body, 1) & set(FORBIDDEN_CATEGORIES)
    polite_clause, other_clause = (3, 11), (12, len(reply))
    assert reply[slice(*polite_clause)] == "感谢您的耐心等待"

    def model(views, cues, cleared):  # the model flags both clauses of the agent's reply
        return {1: [CodeFinding("dismissive", 0.8, *polite_clause), CodeFinding("rude", 0.8, *other_clause)]}

    monkeypatch.setattr(served.chat, "violations", model)
    _, body = chat(served, rules, ("customer", "我的快递三天了还没到"), ("agent", reply))
    flagged = {(v["category"], v["text"]) for v in body["violations"] if v.get("source") == "model"}
    assert flagged == {("rude", "这个我们也没有办法")}


def test_satisfaction_on_every_customer_turn(served, rules):
    report, body = chat(
        served,
        rules,
        ("customer", "你们发错货了，我要的是黑色！"),
        ("agent", "您好，非常抱歉给您添麻烦了，已为您安排补发黑色，今天下午发出，错发的不用寄回"),
        ("customer", "好的，谢谢，问题解决了"),
        ("agent", "不客气，祝您生活愉快"),
    )
    moods = {t["index"]: t["satisfaction"] for t in body["turns"] if "satisfaction" in t}
    assert set(moods) == {0, 2}
    for m in moods.values():
        assert m["label"] in SATISFACTION_LEVELS and abs(sum(m["probabilities"].values()) - 1) < 0.01
    assert moods[0]["label"] == "dissatisfied" and moods[2]["label"] == "satisfied"
    assert {e["source"] for e in body["customer"]["emotions"]} == {"model"}
    assert body["resolution"]["status"] == "resolved" and body["resolution"]["source"] == "model"
    assert abs(sum(body["resolution"]["probabilities"].values()) - 1) < 0.01
    assert body["resolution"]["evidence"]  # the deciding turns


def test_giving_up_is_unresolved(served, rules):
    _, body = chat(
        served,
        rules,
        ("customer", "我的退款申请为什么被驳回了"),
        ("agent", "系统判定不符合退款条件"),
        ("customer", "什么条件？东西就是坏的"),
        ("agent", "这个没办法"),
        ("customer", "算了，我去投诉"),
    )
    assert body["resolution"]["status"] == "unresolved"


def test_asking_to_wait_and_never_coming_back_is_not_excellent(served, rules):
    report, _ = chat(
        served,
        rules,
        ("customer", "在吗？我的快递三天了还没发货"),
        ("agent", "您好，请稍等，我帮您查一下"),
        ("customer", "好的，收到了谢谢"),
    )
    assert report.qa.grade != "excellent" and report.qa.score < 90
    waiting = qa_input(report)
    assert qa.left_waiting(waiting)
    best = replace(waiting, resolution=Resolution("resolved", "model", ()), violations=(), polite=waiting.polite)
    capped = qa.score(best, rules.profiles["default"])
    # capped at 89 (良好): with a note whenever the uncapped score was higher
    assert capped.score <= 89 and (capped.weighted_score <= 89 or any("wait" in n for n in capped.notes))
    followed, _ = chat(
        served,
        rules,
        ("customer", "在吗？我的快递三天了还没发货"),
        ("agent", "您好，请稍等，我帮您查一下"),
        ("agent", "查到了，今天下午发出，单号稍后短信发您"),
    )
    assert not qa.left_waiting(qa_input(followed))


def qa_input(report):
    c = report.customer
    turns = [Turn(t.index, t.role, "", None) for t in report.turns]
    return qa.QAInput(
        turns,
        [t.analysis for t in report.turns],
        report.timing,
        report.violations,
        report.polite_phrases,
        report.resolution,
        c.escalation,
        c.emotions,
    )


def test_slow_replies_alone_do_not_zero_the_score(served, rules):
    turns = [
        ("customer", "您好，我想把收货地址改一下"),
        ("agent", "您好，可以的，请问改到哪里？"),
        ("customer", "改到公司，我一会儿把地址发您"),
        ("agent", "好的，收到后我马上为您修改，修改好会通知您"),
        ("customer", "好的，谢谢"),
        ("agent", "不客气，祝您生活愉快"),
    ]
    times = [0, 600, 660, 1500, 1560, 2400]  # every reply 10-14 minutes late
    body_turns = [{"role": r, "text": t, "time": 1795140000 + s} for (r, t), s in zip(turns, times)]
    report = analyze_conversation({"id": "slow", "turns": body_turns}, served, rules)
    assert report.timing.slow_replies == 3
    assert report.qa.score >= 50, report.qa


def test_a_rude_reply_caps_the_grade_at_pass(served, rules):
    report, _ = chat(
        served,
        rules,
        ("customer", "这个能便宜点吗"),
        ("agent", "您好，爱买不买"),
        ("customer", "好吧"),
    )
    assert report.qa.score <= 79 and report.qa.grade in ("pass", "needs_improvement")


def test_the_artifact_records_its_segmenter_and_a_wrong_schema_is_refused(served):
    assert served.chat.segmenter == served.segmenter.name
    with pytest.raises(ArtifactError, match="schema"):
        check_state({"schema": STATE_SCHEMA + 1}, KIND, STATE_SCHEMA, ("schema",), "training/train_chat.py")
    head = served.chat.head["violations"]
    assert head.classes == list(FORBIDDEN_CATEGORIES) and np.all(head.thresholds > 0)


def test_versions_name_the_chat_model(served, rules):
    _, body = chat(served, rules, ("customer", "你好"), ("agent", "您好，请问有什么可以帮您"))
    assert body["model"]["chat"] == json.loads((ROOT / "models" / "current.json").read_text())["chat"]


@pytest.mark.parametrize(
    "text", ["发货太慢了，客服也不耐烦", "你好 世界 abc", "😀 好 吗？", "退款 退款  退款", "這個不歸我管！"]
)
def test_feature_positions_line_up_with_the_feature_pass(served, text):
    """Clause evidence splits the score by where each feature starts: every char n-gram must sit
    at its offset, and every word at its token's start."""
    from app.pipeline.chat_model import positioned_features

    doc = served.make_doc(text)
    feats, pos = positioned_features(doc)
    assert len(feats) == len(pos)
    words = {s: w.lower() for w, s, _ in doc.tokens}
    for f, p in zip(feats, pos):
        if f[0] >= "\x08":  # a char n-gram
            assert doc.text.lower()[p : p + len(f)] == f
        elif f[0] == "\x02":  # a word
            assert words[p] == f[1:]


def test_a_resolution_without_deciding_turns_does_not_crash(served, rules, monkeypatch):
    from app.pipeline.chat_model import ResolutionCall

    call = ResolutionCall("resolved", {"resolved": 0.9, "unresolved": 0.05, "unknown": 0.05}, ())
    monkeypatch.setattr(type(served.chat), "resolution", lambda self, views, cues: call)
    report, body = chat(served, rules, ("customer", "发错货了"), ("agent", "已为您补发"), ("customer", "好的"))
    assert body["resolution"] == {
        "status": "resolved",
        "status_zh": "已解决",
        "source": "model",
        "evidence": [],
        "probabilities": call.probabilities,
    }
