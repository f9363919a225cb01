"""Golden transcripts: every fixture in tests/fixtures/conversations/ against its ``expected`` block.

Runs on the real lexicons with the conftest's stand-in for the sentiment model (QA never
reads the sentiment label, so grades do not depend on it). Checks, for every span in
every result, the invariant ``turns[turn].text[start:end] == text``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.conversations import analyze_conversation, load_conversation_rules, present
from app.core.errors import PingjiaError

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "conversations").glob("*.json"))
LEXICONS = Path(__file__).resolve().parents[1] / "lexicons"
PRESENT_RULES = ("forbidden_phrase", "pii_leak", "missing_greeting", "missing_closing", "slow_reply")


@pytest.fixture(scope="session")
def pipeline(fake_pipeline):
    return fake_pipeline  # tests/conftest.py: real lexicons and segmenter (built once), fake sentiment


@pytest.fixture(scope="session")
def rules():
    return load_conversation_rules(LEXICONS)


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def spans(body: dict):
    """(turn, text, start, end) of every span in a response body."""
    yield from ((v["turn"], v["text"], v["start"], v["end"]) for v in body["violations"])
    yield from ((p["turn"], p["text"], p["start"], p["end"]) for p in body["polite_phrases"])
    yield from ((e["turn"], e["text"], e["start"], e["end"]) for e in body["resolution"]["evidence"])
    yield from ((e["turn"], e["text"], e["start"], e["end"]) for e in body["customer"]["escalation_evidence"])
    for em in body["customer"]["emotions"]:
        yield from ((e["turn"], e["text"], e["start"], e["end"]) for e in em["evidence"])
    for rc in body["root_causes"]:
        yield from ((e["turn"], e["text"], e["start"], e["end"]) for e in rc["evidence"])
    for t in body["turns"]:
        yield from ((t["index"], k["text"], k["start"], k["end"]) for k in t["keywords"])
        for a in t["aspects"]:
            yield from ((t["index"], e["text"], e["start"], e["end"]) for e in a["evidence"])


def assert_spans_exact(turns: list[dict], body: dict) -> None:
    for turn, text, start, end in spans(body):
        assert turns[turn]["text"][start:end] == text, (turn, text, start, end)
    for f in body["customer"]["pii_shared"] + [v for v in body["violations"] if v["rule"] == "pii_leak"]:
        original = turns[f["turn"]]["text"]
        assert (
            len(original[f["start"] : f["end"]]) == len(f["masked"]) and f["masked"] != original[f["start"] : f["end"]]
        )
        if "masked_text" in f:
            assert len(f["masked_text"]) == len(original) and "*" in f["masked_text"]


def matches(found: dict, want: dict) -> bool:
    return all(found.get(k) == v for k, v in want.items())


def test_there_are_enough_fixtures():
    assert len(FIXTURES) >= 25
    covered = {r for f in FIXTURES for r in load(f)["expected"].get("rules", [])}
    assert covered == set(PRESENT_RULES)  # every rule is exercised by some fixture


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture(path: Path, pipeline, rules):
    conv = load(path)
    exp = conv["expected"]
    if "error" in exp:
        with pytest.raises(PingjiaError) as info:
            analyze_conversation(conv, pipeline, rules)
        assert info.value.code == exp["error"]["code"]
        assert exp["error"]["message_contains"] in info.value.message
        assert 400 <= info.value.status < 500
        return
    body = present.report(analyze_conversation(conv, pipeline, rules))
    assert_spans_exact(conv["turns"], body)
    violations = body["violations"]
    if "rules" in exp:
        assert sorted({v["rule"] for v in violations}) == sorted(exp["rules"]), violations
    for want in exp.get("violations", []):
        assert any(matches(v, want) for v in violations), (want, violations)
    for unwanted in exp.get("absent", []):
        assert not any(matches(v, unwanted) for v in violations), (unwanted, violations)
    kinds = {p["kind"] for p in body["polite_phrases"]}
    assert set(exp.get("polite_kinds", [])) <= kinds
    if "resolution" in exp:
        assert body["resolution"]["status"] == exp["resolution"], body["resolution"]
    if "resolution_turn" in exp:
        assert body["resolution"]["evidence"][0]["turn"] == exp["resolution_turn"]
    if "resolution_source" in exp:
        assert body["resolution"]["source"] == exp["resolution_source"]
    cust = body["customer"]
    if "escalation_risk" in exp:
        assert cust["escalation_risk"] == exp["escalation_risk"], (
            cust["escalation_evidence"],
            cust["escalation_reasons"],
        )
    assert set(exp.get("escalation_kinds", [])) <= {e["kind"] for e in cust["escalation_evidence"]}
    emotions = {str(e["turn"]): e["emotion"] for e in cust["emotions"]}
    for turn, emotion in exp.get("emotions", {}).items():
        assert emotions[turn] == emotion, cust["emotions"]
    if "pii_shared" in exp:
        assert len(cust["pii_shared"]) == exp["pii_shared"], cust["pii_shared"]
    for key, value in exp.get("timing", {}).items():
        assert body["timing"][key] == value, (key, body["timing"])
    qa = body["qa"]
    assert 0 <= qa["score"] <= 100 and set(qa["dimensions"]) == {
        "responsiveness",
        "attitude",
        "resolution",
        "competence",
    }
    if "grade" in exp:
        assert qa["grade"] == exp["grade"], qa
    if "grade_in" in exp:
        assert qa["grade"] in exp["grade_in"], qa
    if "profile" in exp:
        assert qa["profile"] == exp["profile"]
    if "qa_applicable" in exp:
        assert qa["applicable"] is exp["qa_applicable"]
