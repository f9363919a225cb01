"""Rules as data (lexicons/qa_rules.json): loading and validation, role / position / keyword
scopes, similar-sentence matching, offsets into the original text, and the API contract.

Runs without ../shared (the per-code figures on the labelled chats: bench/bench_rules.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.conversation_schemas import ConversationResponse
from app.conversations import analyze_conversation, load_conversation_rules, present
from app.conversations.custom_rules import CustomRules, word_source
from app.conversations.findings import Violation
from app.conversations.lexicons import load_qa_rules
from app.conversations.text import turn_text
from app.core.config import Settings
from app.main import create_app
from app.pipeline.lexicon import LexiconError
from tests.conftest import ROOT, needs_models

LEXICONS = ROOT / "lexicons"
AGENT_RULE = {
    "id": "r1",
    "code": "blame_shifting",
    "description": "推诿",
    "role": "agent",
    "examples": ["你去问快递吧"],
}


def write(tmp_path: Path, rules: list, **top) -> Path:
    path = tmp_path / "qa_rules.json"
    path.write_text(json.dumps({"version": "t1", "flags": {"complaint_threat": "投诉"}, "rules": rules, **top}))
    return path


def rules_of(tmp_path: Path, *rules: dict) -> CustomRules:
    return load_qa_rules(write(tmp_path, list(rules)))


def run(rules: CustomRules, turns: list[tuple[str, str]], words=None):
    texts = [turn_text(t) for _, t in turns]
    return rules.apply([r for r, _ in turns], texts, list(range(len(turns))), words)


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{**AGENT_RULE, "code": "blame_shfting"}], "rule 'r1': unknown code 'blame_shfting'"),
        ([{**AGENT_RULE, "threshold": 1.5}], "rule 'r1': threshold"),
        ([{**AGENT_RULE, "threshold": 0}], "rule 'r1': threshold"),
        ([AGENT_RULE, {**AGENT_RULE, "examples": ["别的"]}], "rule 'r1': duplicate id"),
        ([{**AGENT_RULE, "examples": []}], 'rule \'r1\': rule: Value error, a rule needs "examples" or "any"/"all"'),
        ([{**AGENT_RULE, "examples": [], "keywords": {"none": ["快递"]}}], 'needs "examples" or'),
        ([{**AGENT_RULE, "position": {"first": 0}}], "rule 'r1': position.first"),
        ([{**AGENT_RULE, "position": {"first": 1, "last": 2}}], 'exactly one of "first" or "last"'),
        ([{**AGENT_RULE, "position": {"middle": 2}}], "rule 'r1': position.middle"),
        ([{**AGENT_RULE, "role": "customer"}], "blame_shifting is an agent violation; role must be agent"),
        ([{**AGENT_RULE, "role": "bot"}], "rule 'r1': role"),
        ([{**AGENT_RULE, "examples": ["！！！"]}], "rule 'r1': example '！！！' has no letters or digits"),
        ([{**AGENT_RULE, "severity": "fatal"}], "rule 'r1': severity"),
        ([{**AGENT_RULE, "colour": "red"}], "rule 'r1': colour"),
        ([{k: v for k, v in AGENT_RULE.items() if k != "id"}], "rule 'rules[0]': id"),
    ],
)
def test_a_bad_rule_names_the_file_and_the_rule(tmp_path, rules, message):
    with pytest.raises(LexiconError) as info:
        load_qa_rules(write(tmp_path, rules))
    assert "qa_rules.json" in str(info.value) and message in str(info.value)


def test_a_bad_file_names_the_problem(tmp_path):
    path = tmp_path / "qa_rules.json"
    path.write_text("{")
    with pytest.raises(LexiconError, match="qa_rules.json:1: invalid JSON"):
        load_qa_rules(path)
    path.write_text(json.dumps({"rules": []}))
    with pytest.raises(LexiconError, match="qa_rules.json: version"):
        load_qa_rules(path)
    with pytest.raises(LexiconError, match="missing"):
        load_qa_rules(tmp_path / "absent.json")
    with pytest.raises(LexiconError, match="not a 服务禁语 code"):
        load_qa_rules(write(tmp_path, [], flags={"rude": "x"}))


def test_the_rules_join_the_conversation_rules_and_their_digest(tmp_path):
    shipped = load_conversation_rules(LEXICONS)
    assert shipped.file_versions["qa_rules.json"] == shipped.custom_rules.version
    codes = {r.code for r in shipped.custom_rules.rules if r.examples}
    assert codes == {"blame_shifting", "dismissive", "impatient", "challenging", "rude", "over_promise", "off_platform"}
    root = tmp_path / "lex"
    shutil.copytree(LEXICONS, root)
    write(root, [AGENT_RULE])
    edited = load_conversation_rules(root)
    assert len(edited.custom_rules) == 1 and edited.version != shipped.version


# ---------------------------------------------------------------- scopes


def test_role_scope(tmp_path):
    rules = rules_of(
        tmp_path,
        {"id": "c", "code": "complaint_threat", "description": "x", "role": "customer", "keywords": {"any": ["投诉"]}},
    )
    hits = run(rules, [("agent", "您可以投诉我"), ("customer", "我要投诉"), ("bot", "投诉请按1")])
    assert [(h.turn, h.role, h.text) for h in hits] == [(1, "customer", "我要投诉")]


def test_position_scope_counts_the_turns_of_the_rules_role(tmp_path):
    kw = {"any": ["投诉"]}
    base = {"code": "complaint_threat", "description": "x", "role": "customer", "keywords": kw}
    rules = rules_of(
        tmp_path, {**base, "id": "first", "position": {"first": 1}}, {**base, "id": "last2", "position": {"last": 2}}
    )
    turns = [
        ("customer", "投诉一"),  # customer turn 0 of 4
        ("agent", "投诉"),
        ("customer", "投诉二"),
        ("customer", "投诉三"),  # the last two customer turns
        ("agent", "好"),
        ("customer", "投诉四"),
    ]
    assert [(h.rule_id, h.turn) for h in run(rules, turns)] == [("first", 0), ("last2", 3), ("last2", 5)]


@pytest.mark.parametrize(
    "text, fires",
    [
        ("马上给您退款", True),
        ("馬上給您退款！", True),  # traditional + full-width
        ("马 上 给您退 款", True),  # spaces inside
        ("马上给您退款，3个工作日到账", False),  # a none keyword
        ("给您退款", False),  # no any keyword
        ("马上给您处理", False),  # the all keyword is missing
    ],
)
def test_keyword_conditions(tmp_path, text, fires):
    rules = rules_of(
        tmp_path,
        {
            "id": "k",
            "code": "complaint_threat",
            "description": "x",
            "role": "agent",
            "keywords": {"any": ["马上", "立刻"], "all": ["退款"], "none": ["工作日"]},
        },
    )
    hits = run(rules, [("agent", text)])
    assert bool(hits) is fires
    for h in hits:
        assert text[h.start : h.end] == h.text and h.similarity is None and h.example is None


# ---------------------------------------------------------------- similarity


def test_similarity_fires_on_a_close_clause_and_names_the_example(tmp_path):
    rules = rules_of(
        tmp_path, {**AGENT_RULE, "examples": ["物流的事我们管不了", "你自己去问快递公司"], "threshold": 0.5}
    )
    text = "亲，这个您得自己去问快递公司哦。其他问题随时找我"
    (hit,) = run(rules, [("customer", "快递还没到"), ("agent", text)])
    assert (hit.turn, hit.example, hit.text) == (1, "你自己去问快递公司", "这个您得自己去问快递公司哦")
    assert text[hit.start : hit.end] == hit.text and 0.5 <= hit.similarity <= 1
    assert run(rules, [("agent", "我这边帮您联系快递公司核实，稍后回复您")]) == []
    assert run(rules, [("customer", text)]) == []  # an agent rule never reads the customer


def test_a_short_clause_is_not_like_a_long_example(tmp_path):
    rules = rules_of(
        tmp_path, {**AGENT_RULE, "examples": ["别人用都没问题，怎么就你有问题", "随你便"], "threshold": 0.5}
    )
    assert run(rules, [("agent", "好的，没问题")]) == []
    assert [h.example for h in run(rules, [("agent", "行吧，随你便")])] == ["随你便"]


def test_offsets_index_the_original_traditional_full_width_text(tmp_path):
    rules = rules_of(tmp_path, {**AGENT_RULE, "examples": ["这个问题你自己去找快递公司问吧"]})
    text = "您好！　這個問題你自己去找快遞公司問吧～ＯＫ？"
    (hit,) = run(rules, [("agent", text)])
    assert hit.text == "這個問題你自己去找快遞公司問吧" and text[hit.start : hit.end] == hit.text
    assert hit.similarity == 1.0


def test_violations_and_flags_are_split(tmp_path):
    from app.conversations.custom_rules import flags, violations

    rules = rules_of(
        tmp_path,
        AGENT_RULE,
        {"id": "c", "code": "complaint_threat", "description": "x", "role": "customer", "keywords": {"any": ["投诉"]}},
    )
    hits = run(rules, [("customer", "我要投诉"), ("agent", "你去问快递吧")])
    (v,) = violations(hits)
    assert (v.rule, v.turn, v.severity, v.code) == ("forbidden_phrase", 1, "medium", "blame_shifting")
    assert v.detail == {
        "category": "blame_shifting",
        "source": "similar_rule",
        "rule_id": "r1",
        "example": "你去问快递吧",
        "similarity": 1.0,
    }
    assert [h.rule_id for h in flags(hits)] == ["c"]
    phrase = Violation(
        1, "forbidden_phrase", "问快递", 3, 6, "medium", {"category": "blame_shifting", "phrase": "问快递"}
    )
    assert violations(hits, [phrase]) == []  # a lexicon phrase in the same clause already costs the deduction
    elsewhere = Violation(0, "forbidden_phrase", "投诉", 2, 4, "low", {"category": "rude", "phrase": "投诉"})
    assert len(violations(hits, [elsewhere])) == 1


@pytest.fixture(scope="module")
def served():
    from app.core.config import get_settings
    from app.pipeline.engine import build_pipeline

    s = get_settings()
    return build_pipeline(s.lexicon_dir, s.models_dir)


@needs_models
@pytest.mark.parametrize(
    "text, code",
    [
        ("物流的问题我们这边管不了，你自己去问快递公司吧", "blame_shifting"),  # a paraphrase, in no example
        ("我这边帮您联系快递核实一下，稍后回复您", None),  # the look-alike: taking action
        ("加我微信吧，私下给你便宜点", "off_platform"),
        ("按平台规定我们只能在这里为您服务哦", None),
        ("您好，请问还有什么可以帮您？", None),
    ],
)
def test_shipped_rules_with_the_served_word_vectors(served, text, code):
    shipped = load_conversation_rules(LEXICONS).custom_rules
    words = word_source(served)
    assert words is not None
    hits = [h for h in run(shipped, [("customer", "快递怎么还没到"), ("agent", text)], words) if h.example]
    assert [h.code for h in hits] == ([code] if code else [])


# ---------------------------------------------------------------- the API


@pytest.fixture(scope="module")
def client(fake_pipeline, tmp_path_factory):
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("rules")), pipeline=fake_pipeline)
    app.state.conversation_rules = load_conversation_rules(LEXICONS)
    with TestClient(app) as c:
        yield c


def test_the_response_carries_rule_hits_and_validates(client):
    turns = [
        {"role": "customer", "text": "快遞三天沒動了"},
        {"role": "agent", "text": "您好，這個問題你自己去找快遞公司問吧"},
        {"role": "customer", "text": "什么态度，我要投诉你们"},
    ]
    resp = client.post("/v1/conversations/analyze", json={"id": "r", "turns": turns})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ConversationResponse.model_validate(body)
    similar = [v for v in body["violations"] if v.get("source") == "similar_rule"]
    assert [(v["turn"], v["category"], v["rule_id"]) for v in similar] == [
        (1, "blame_shifting", "similar_blame_shifting")
    ]
    assert [(h["rule_id"], h["turn"], h["role"]) for h in body["rule_hits"]] == [
        ("complaint_threat_at_end", 2, "customer")
    ]
    for item in similar + body["rule_hits"]:
        assert turns[item["turn"]]["text"][item["start"] : item["end"]] == item["text"]


def test_a_report_without_rules_presents_an_empty_list(fake_pipeline, tmp_path):
    root = tmp_path / "lex"
    shutil.copytree(LEXICONS, root)
    write(root, [])
    rules = load_conversation_rules(root)
    report = analyze_conversation({"turns": [{"role": "agent", "text": "你去问快递吧"}]}, fake_pipeline, rules)
    assert present.report(report)["rule_hits"] == [] and report.rule_hits == ()
