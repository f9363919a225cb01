"""The chat-job report's QA section: per agent, per channel and overall, from additive
counters (histogram percentiles, bounded examples), the group test on violation and
unresolved rates, the store's v2 examples table, and the CLI and HTTP paths agreeing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from app.api.job_schemas import JobSummary
from app.conversations import Limits, analyze_conversations, load_conversation_rules
from app.core.config import Settings
from app.jobs import local, service
from app.jobs.ingest import InputSpec
from app.jobs.qa_report import build_chat_report, qa_columns
from app.jobs.report import (
    DEFAULT_CONFIG,
    FIRST_RESPONSE_EDGES,
    Accumulator,
    MemorySource,
    QAFacts,
    RowFacts,
    bucket_percentile,
    build_report,
    first_response_bucket,
)
from app.jobs.scoring import ConversationScorer
from app.jobs.store import MIGRATIONS, SCHEMA_VERSION, ChunkOutput, NewJob, open_store
from app.jobs.worker import ThreadRunner
from app.jobs.workfile import WorkRow
from app.main import create_app
from tests.conftest import ROOT

PLAN = {"columns": {"agent_id": {"distinct": 3}, "channel": {"distinct": 2}}}


@pytest.fixture(scope="module")
def rules():
    return load_conversation_rules(ROOT / "lexicons")


def facts(grade="good", score=85.0, resolution="resolved", frt=20.0, violations=(), applicable=True, dims=None):
    qa = QAFacts(score, grade, resolution, frt, violations, applicable, tuple((dims or {}).items()))
    return RowFacts("neutral", (), (), frozenset(), qa)


def qa_of(rows, plan=PLAN):
    """rows: (facts or None, {agent_id, channel}); the QA section via a memory source."""
    acc = Accumulator()
    for i, (f, groups) in enumerate(rows):
        acc.add(i, f, error=None if f else "invalid_conversation", qa_groups=groups, row_id=f"c{i}")
    return build_chat_report(MemorySource(acc), plan)["qa"], acc


def agent(qa, value, table="agents"):
    return next(g for g in qa[table]["groups"] if g["value"] == value)


# ---------------------------------------------------------------- counters and statistics
def test_overall_and_per_agent_counts_scores_grades_resolution():
    rows = [
        (facts("excellent", 95.0, "resolved", 10.0), {"agent_id": "a1", "channel": "app"}),
        (facts("pass", 70.5, "unresolved", 50.0), {"agent_id": "a1", "channel": "web"}),
        (facts("needs_improvement", 40.0, "unknown", None), {"agent_id": "a2", "channel": "app"}),
        (facts("good", 85.0, "resolved", 100.0, applicable=False), {"agent_id": "", "channel": "app"}),
        (None, {"agent_id": "a2", "channel": ""}),  # an error row: counted as an error, never crashes
    ]
    qa, _ = qa_of(rows)
    o = qa["overall"]
    assert qa["conversations"] == o["conversations"] == 4 and o["errors"] == 1 and o["unattended"] == 1
    assert o["qa_score_mean"] == round((95 + 70.5 + 40 + 85) / 4, 2)
    assert {g["grade"]: (g["count"], g["name_zh"]) for g in o["grades"]} == {
        "excellent": (1, "优秀"),
        "good": (1, "良好"),
        "pass": (1, "合格"),
        "needs_improvement": (1, "待改进"),
    }
    assert o["resolution"] == {
        "resolved": 2,
        "unresolved": 1,
        "unknown": 1,
        "resolution_rate": 0.6667,
        "unresolved_rate": 0.3333,
    }
    assert o["first_response"]["measured"] == 3 and o["first_response"]["missing"] == 1
    a1, a2 = agent(qa, "a1"), agent(qa, "a2")
    assert (a1["conversations"], a1["qa_score_mean"], a1["resolution"]["resolution_rate"]) == (2, 82.75, 0.5)
    assert (a2["conversations"], a2["errors"], a2["resolution"]["resolution_rate"]) == (1, 1, None)
    # the conversation without an agent_id is left out of the agent table, and counted
    assert qa["agents"]["without_value"] == 1 and [g["value"] for g in qa["agents"]["groups"]] == ["a1", "a2"]
    assert qa["channels"]["without_value"] == 1 and agent(qa, "app", "channels")["conversations"] == 3
    JobSummary.model_validate({**build_chat_report(MemorySource(Accumulator()), PLAN), **_head()})


def test_a_chat_report_has_no_mixed_review_share():
    """``mixed`` is a review figure: the shared builder leaves it out of a chat report."""
    chat = build_chat_report(MemorySource(Accumulator()), PLAN)
    review = build_report(MemorySource(Accumulator()), PLAN)
    assert "mixed" not in chat and review["mixed"] == {"count": 0, "share": 0.0}
    assert [k for k in review if k != "mixed"] == [k for k in chat if k != "qa"]


def _head():
    return {"job_id": "j", "status": "done", "complete": True}


def dims(responsiveness, attitude, resolution, competence):
    return {"responsiveness": responsiveness, "attitude": attitude, "resolution": resolution, "competence": competence}


DIM_ROWS = [
    (facts(dims=dims(100, 95, 80, 90.5)), {"agent_id": "a1", "channel": "app"}),
    (facts(dims=dims(70, 60.5, 40, 80)), {"agent_id": "a1", "channel": "web"}),
    (facts(dims=dims(90, 85, 100, 100)), {"agent_id": "a2", "channel": "web"}),
    # unattended: no agent turn, its dimension scores are set by rule, not earned: left out
    (facts(applicable=False, dims=dims(0, 80, 20, 80)), {"agent_id": "", "channel": "phone"}),
    (None, {"agent_id": "a2", "channel": "app"}),
]


def test_dimension_means_per_agent_channel_and_overall_over_judged_conversations():
    qa, _ = qa_of(DIM_ROWS, {"columns": {"agent_id": {"distinct": 2}, "channel": {"distinct": 3}}})
    judged = [f.qa for f, _ in DIM_ROWS if f and f.qa.applicable]

    def mean(qas, code):
        values = [dict(q.dimensions)[code] for q in qas]
        return round(sum(values) / len(values), 2)

    codes = ["responsiveness", "attitude", "resolution", "competence"]  # the taxonomy's order
    assert list(qa["overall"]["dimensions_mean"]) == codes
    assert qa["overall"]["dimensions_mean"] == {c: mean(judged, c) for c in codes}
    assert agent(qa, "a1")["dimensions_mean"] == {c: mean(judged[:2], c) for c in codes}
    assert agent(qa, "a1")["dimensions_mean"]["attitude"] == 77.75  # (95 + 60.5) / 2
    assert agent(qa, "a2")["dimensions_mean"] == dims(90.0, 85.0, 100.0, 100.0)
    assert agent(qa, "web", "channels")["dimensions_mean"]["resolution"] == 70.0
    # a channel whose only conversation QA did not judge has no means (and its score still counts)
    phone = agent(qa, "phone", "channels")
    assert phone["dimensions_mean"] == dict.fromkeys(codes) and phone["qa_score_mean"] == 85.0
    assert qa["dimensions_zh"] == {
        "responsiveness": "响应速度",
        "attitude": "服务态度",
        "resolution": "问题解决",
        "competence": "专业能力",
    }
    JobSummary.model_validate({**build_chat_report(MemorySource(qa_of(DIM_ROWS)[1]), PLAN), **_head()})


def test_dimension_counters_add_up_across_chunks():
    """Two chunks summed (as the store, the worker processes and Spark sum them) give the
    counters, and so the means, of one chunk holding both."""
    one, first, second = Accumulator(), Accumulator(), Accumulator()
    for i, (f, g) in enumerate(DIM_ROWS):
        one.add(i, f, error=None if f else "invalid_conversation", qa_groups=g)
        (first if i < 2 else second).add(i, f, error=None if f else "invalid_conversation", qa_groups=g)
    first.merge(second)
    assert first.counts == one.counts
    assert one.counts[("qa", "", "dim_n:attitude")] == 3
    assert one.counts[("qa:agent_id", "a1", "dim_centi:attitude")] == 15550  # (95 + 60.5) x 100
    assert build_chat_report(MemorySource(first), PLAN)["qa"] == build_chat_report(MemorySource(one), PLAN)["qa"]


def test_violations_per_code_with_one_example_and_the_service_rate():
    rows = [
        (facts(violations=(("missing_greeting", 0, "在吗"), ("slow_reply", 3, "稍等"))), {"agent_id": "a1"}),
        (facts(violations=(("rude", 1, "你烦不烦"), ("rude", 3, "别问了"))), {"agent_id": "a1"}),
        (facts(violations=(("pii_leak", 2, "电话138****5678"),)), {"agent_id": "a2"}),
        (facts(), {"agent_id": "a2"}),
    ]
    qa, _ = qa_of(rows)
    o = qa["overall"]
    by_code = {v["code"]: v for v in o["violations"]}
    assert by_code["rude"]["count"] == 2 and by_code["rude"]["conversations"] == 1 and by_code["rude"]["service"]
    assert by_code["rude"]["example"] == {"row": 2, "id": "c1", "turn": 1, "text": "你烦不烦"}
    assert not by_code["missing_greeting"]["service"] and not by_code["slow_reply"]["service"]
    assert by_code["pii_leak"]["service"] and by_code["pii_leak"]["example"]["text"] == "电话138****5678"
    # service violations: rude (row 2) and pii_leak (row 3); row 1 has only non-service codes
    assert (o["conversations_with_service_violation"], o["violation_rate"]) == (2, 0.5)
    assert agent(qa, "a2")["violations"][0]["example"]["id"] == "c2"  # per agent too


def test_examples_are_bounded_and_independent_of_chunking():
    rows = [(facts(violations=(("rude", 1, "话" * 500),)), {"agent_id": f"a{i % 3}"}) for i in range(90)]
    one = Accumulator()
    parts = [Accumulator() for _ in range(4)]
    for i, (f, g) in enumerate(rows):
        one.add(i, f, qa_groups=g, row_id=str(i))
    for i, (f, g) in reversed(list(enumerate(rows))):  # another order, other chunks
        parts[i % 4].add(i, f, qa_groups=g, row_id=str(i))
    merged = Accumulator()
    for p in reversed(parts):
        merged.merge(p)
    assert merged.counts == one.counts and merged.examples == one.examples
    assert len(one.examples) == 4  # one per (scope, code): overall + 3 agents, whatever the rows
    assert all(len(json.loads(d)["text"]) == DEFAULT_CONFIG.example_chars for _, d in one.examples.values())
    assert json.loads(one.examples[("qa", "", "rude")][1])["row"] == 1


def test_first_response_percentiles_come_from_fixed_buckets():
    assert FIRST_RESPONSE_EDGES[0] == 0 and list(FIRST_RESPONSE_EDGES) == sorted(FIRST_RESPONSE_EDGES)
    values = [3, 8, 12, 25, 40, 55, 70, 100, 200, 400]
    counts = Counter(first_response_bucket(v) for v in values)
    buckets = [counts[i] for i in range(len(FIRST_RESPONSE_EDGES))]
    p50, p90 = bucket_percentile(buckets, 0.5), bucket_percentile(buckets, 0.9)
    assert 30 <= p50 <= 45 and 180 <= p90 <= 300  # the buckets holding the true p50 (40) and p90 (200)
    assert bucket_percentile([0] * len(FIRST_RESPONSE_EDGES), 0.5) is None
    assert bucket_percentile([0] * (len(FIRST_RESPONSE_EDGES) - 1) + [5], 0.5) == FIRST_RESPONSE_EDGES[-1]
    qa, _ = qa_of([(facts(frt=v), {"agent_id": "a1"}) for v in values])
    assert qa["overall"]["first_response"] == {"measured": 10, "missing": 0, "p50_seconds": p50, "p90_seconds": p90}


def test_an_agent_with_a_clearly_higher_violation_rate_is_flagged_with_the_test_numbers():
    rude = (("rude", 1, "你烦不烦"),)
    rows = []
    for name, n, bad, unresolved in [("a1", 60, 30, 6), ("a2", 60, 3, 30), ("a3", 60, 3, 6)]:
        rows += [
            (facts(violations=rude if i < bad else (), resolution="unresolved" if i < unresolved else "resolved"),
             {"agent_id": name, "channel": "app" if i % 2 else "web"})
            for i in range(n)
        ]  # fmt: skip
    qa, _ = qa_of(rows)
    flags = {(f["value"], f["metric"]): f for f in qa["agents"]["flagged"]}
    assert set(flags) == {("a1", "violation_rate"), ("a2", "unresolved_rate")}
    f = flags[("a1", "violation_rate")]
    assert (f["x"], f["n"], f["rate"], f["rest_x"], f["rest_n"], f["rest_rate"]) == (30, 60, 0.5, 6, 120, 0.05)
    assert f["p_value"] < 0.001 and f["z"] > 3
    t = agent(qa, "a3")["tests"]["violation_rate"]
    assert not t["flagged"] and t["p_value"] is not None
    assert qa["channels"]["flagged"] == []  # equal rates across channels
    assert "Bonferroni" in qa["test"] and "violation_rate" in qa["test"]


def test_small_groups_are_not_tested():
    qa, _ = qa_of([(facts(violations=(("rude", 1, "x"),)), {"agent_id": "a1"})] + [(facts(), {"agent_id": "a2"})] * 5)
    t = agent(qa, "a1")["tests"]["violation_rate"]
    assert (t["x"], t["n"], t["z"], t["p_value"], t["flagged"]) == (1, 1, None, None, False)


def test_a_column_with_too_many_values_or_absent_has_no_table():
    plan = {"columns": {"agent_id": {"distinct": ">50 or long values"}}}
    assert qa_columns(plan) == [] and qa_columns(PLAN) == ["agent_id", "channel"]
    qa, _ = qa_of([(facts(), {})], plan)
    assert qa["agents"]["available"] is False and "more than 50" in qa["agents"]["note"]
    assert qa["channels"]["available"] is False and "no row has" in qa["channels"]["note"]
    assert qa["overall"]["conversations"] == 1


def test_channel_comes_from_the_conversation_or_its_meta():
    from app.jobs.ingest import conversation_extras

    turns = [{"role": "agent", "text": "您好", "agent_id": 7}]
    assert conversation_extras({"channel": "app", "turns": turns}) == {"channel": "app", "agent_id": 7}
    assert conversation_extras({"meta": {"channel": "web"}, "turns": "x"}) == {"channel": "web"}
    assert conversation_extras({"channel": {"x": 1}, "turns": None}) == {}


def test_reviews_rows_add_no_qa_counters():
    acc = Accumulator()
    acc.add(0, RowFacts("negative", (), ()), groups={"channel": "app"})
    assert not any(k[0].startswith("qa") for k in acc.counts) and acc.examples == {}


# ---------------------------------------------------------------- scoring and storage
CONV = {
    "id": "k1",
    "channel": "app",
    "turns": [
        {"role": "customer", "text": "我要改一下收货电话，新号码是138-1234-5678", "time": "2026-11-20T10:00:00+08:00"},
        {
            "role": "agent",
            "text": "已为您把联系电话改成13812345678了",
            "time": "2026-11-20T10:00:20+08:00",
            "agent_id": "a17",
        },
        {"role": "customer", "text": "还是没解决", "time": "2026-11-20T10:01:00+08:00"},
    ],
}


def test_the_conversation_scorer_reports_codes_turns_and_masks_pii(fake_pipeline, rules):
    scorer = ConversationScorer(fake_pipeline, rules, Limits())
    rows = [
        WorkRow("k1", CONV, {"agent_id": "a17", "channel": "app"}),
        WorkRow("k2", None, {}, ("invalid_conversation", "a conversation needs a 'turns' list")),
    ]
    out = scorer.score(0, rows, PLAN)
    c = out.counts
    assert c[("qa", "", "conversations")] == 1 and c[("qa", "", "errors")] == 1
    assert c[("qa:agent_id", "a17", "viol:pii_leak")] == 1 and c[("qa:channel", "app", "res:unresolved")] == 1
    assert c[("qa", "", "service_violation")] == 1 and c[("qa", "", f"frt:{first_response_bucket(20)}")] == 1
    # each QA dimension's score, as the conversation's own QA result has it, per scope
    (result,) = analyze_conversations([{**CONV, "id": "k1"}], fake_pipeline, rules, Limits())
    assert len(result.qa.dimensions) == 4 and result.qa.applicable
    for d in result.qa.dimensions:
        for scope in (("qa", ""), ("qa:agent_id", "a17"), ("qa:channel", "app")):
            assert (c[(*scope, f"dim_centi:{d.name}")], c[(*scope, f"dim_n:{d.name}")]) == (round(d.score * 100), 1)
    row, data = out.examples[("qa:agent_id", "a17", "pii_leak")]
    ex = json.loads(data)
    assert row == 0 and (ex["id"], ex["turn"]) == ("k1", 1)
    assert "13812345678" not in ex["text"] and "138****5678" in ex["text"]  # the leak is not repeated


def test_store_keeps_the_lowest_row_example_and_migrates_a_v1_file(tmp_path):
    path = tmp_path / "jobs.db"
    conn = sqlite3.connect(path)  # a database written by the v1 code
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for sql in MIGRATIONS[0][1]:
        conn.execute(sql)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.commit()
    conn.close()
    store = open_store(path)
    assert SCHEMA_VERSION >= 2 and store.migrate() == SCHEMA_VERSION  # v1 -> the latest, v2's table included
    store.create_job(NewJob("j", "conversations", 4, {}, "w", [(0, 2, 0), (2, 2, 10)]))
    key = ("qa", "", "rude")
    first, second = store.claim_chunk("w1"), store.claim_chunk("w2")
    for claim, row in [(second, 3), (first, 1)]:  # the later chunk commits first
        rows = [(claim.start_row + i, "x", 0, "{}") for i in range(2)]
        assert store.commit_chunk(claim, ChunkOutput(rows, {}, {}, {}, {key: (row, f'"r{row}"')}))
    jid = store.get_job("j").jid
    assert list(store.iter_examples(jid)) == [("qa", "", "rude", 1, '"r1"')]
    store.delete_job(jid)
    assert list(store.iter_examples(jid)) == []
    store.close()


# ---------------------------------------------------------------- CLI and HTTP agree
def chats() -> list[dict]:
    """A small help desk: two agents, two channels, a PII leak, an unresolved chat, bad rows."""
    out = []
    for i in range(12):
        agent_id, channel = ("a1", "app") if i % 3 else ("a2", "web")
        turns = [
            {"role": "customer", "text": "我的快递三天了还没发货", "time": f"2026-11-2{i % 3}T10:00:00+08:00"},
            {
                "role": "agent",
                "text": "您好，请稍等，我帮您查一下" if i % 4 else "已为您把电话改成13812345678了",
                "time": f"2026-11-2{i % 3}T10:00:{10 + 3 * i}+08:00",
                "agent_id": agent_id,
            },
            {"role": "customer", "text": "还是没解决" if i % 5 == 0 else "收到了，谢谢"},
        ]
        if i == 7:
            turns = [{"role": "customer", "text": "有人吗"}]  # no agent: left out of the agent table
        out.append({"id": f"c{i}", "channel": channel, "turns": turns})
    return [*out, {"id": "bad", "channel": "app"}]


def _comparable(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("job_id", "generated_at", "input", "status")}


def test_cli_and_http_reports_agree(tmp_path, fake_pipeline, fake_scorers, rules, monkeypatch):
    lines = [json.dumps(c, ensure_ascii=False) for c in chats()] + ['["not an object"]']
    data = "\n".join(lines) + "\n"
    src = tmp_path / "chats.jsonl"
    src.write_text(data, encoding="utf-8")

    monkeypatch.setattr(local, "load_scorers", lambda _settings: fake_scorers())
    settings = Settings(data_dir=tmp_path / "cli", job_chunk_rows=4)
    summary = tmp_path / "report.json"
    opts = local.ScoreOptions(
        str(src), str(tmp_path / "out.jsonl"), str(summary), InputSpec(kind="conversations"), quiet=True
    )
    local.score_file(opts, settings)
    cli = json.loads(summary.read_text(encoding="utf-8"))

    http_settings = Settings(data_dir=tmp_path / "http", job_chunk_rows=5)  # other chunks, same report
    app = create_app(http_settings, pipeline=fake_pipeline)
    app.state.conversation_rules = rules
    store = app.state.job_store = open_store(service.db_url(http_settings))
    app.state.job_runner = ThreadRunner(store, fake_scorers(), workers=2)
    with TestClient(app) as client:
        r = client.post("/v1/jobs", files={"file": ("chats.jsonl", data.encode())}, data={"kind": "conversations"})
        assert r.status_code == 202, r.text
        url = f"/v1/jobs/{r.json()['job_id']}"
        deadline = time.monotonic() + 30
        while client.get(url).json()["status"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        http = client.get(f"{url}/summary").json()
    JobSummary.model_validate(http)
    JobSummary.model_validate({**cli, "job_id": "local"})  # the CLI writes job_id null
    assert _comparable(cli) == _comparable(http)

    qa = http["qa"]
    assert http["totals"] == {"rows": 14, "analysed": 12, "errors": 2}
    assert qa["conversations"] == 12 and qa["overall"]["errors"] == 2
    assert [g["value"] for g in qa["agents"]["groups"]] == ["a1", "a2"]
    assert qa["agents"]["without_value"] == 3  # the chat without an agent and the two bad rows
    assert {g["value"] for g in qa["channels"]["groups"]} == {"app", "web"}
    leak = next(v for v in qa["overall"]["violations"] if v["code"] == "pii_leak")
    assert leak["count"] == 3 and leak["example"] == {"row": 1, "id": "c0", "turn": 1, "text": "138****5678"}
    assert "13812345678" not in json.dumps(qa)  # other codes' examples of that turn are masked too
    assert qa["overall"]["resolution"]["unresolved"] == 3
