"""The CLI a person uses (issue 14): ``--version``, help on every option, ``-q``, the summary
table in Chinese, and the CSV ``pingjia score`` writes (BOM on by default, the input's columns
kept). Runs ``app.cli.main`` in this process over the fake pipeline: milliseconds, no models."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os

import pytest

from app import cli
from app.core import taxonomy as T
from app.jobs import local
from app.jobs.summary_table import summary_table, width
from tests.conftest import CONVERSATIONS, ROOT, conversation

FIXTURE = ROOT / "tests" / "fixtures" / "reviews_small.csv"
ARGS = ["--text-column", "content", "--id-column", "review_id", "--workers", "1"]


@pytest.fixture
def fake_models(monkeypatch, fake_scorers):
    monkeypatch.setattr(local, "load_scorers", lambda _s: fake_scorers())


def subparsers(parser: argparse.ArgumentParser):
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_option_of_every_command_has_help():
    missing = [
        f"{name}: {'/'.join(a.option_strings) or a.dest}"
        for name, p in subparsers(cli.build_parser())
        for a in p._actions
        if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS)
    ]
    assert missing == []
    assert len(list(subparsers(cli.build_parser()))) >= 7  # the walk reached the commands


def test_version_names_the_package_and_the_served_models(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("pingjia ") and "lexicon: " in out
    current = ROOT / "models" / "current.json"
    if current.is_file():
        for kind, version in json.loads(current.read_text()).items():
            assert f"{kind} {version}" in out
    else:
        assert "models: none served" in out


def test_quiet_writes_the_results_and_prints_nothing(tmp_path, capsys, fake_models):
    out = tmp_path / "out.csv"
    assert cli.main(["score", str(FIXTURE), "-o", str(out), *ARGS, "-q"]) == 0
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("", "")
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM on by default


def test_errors_still_reach_stderr_when_quiet(tmp_path, capsys, fake_models):
    assert cli.main(["score", str(FIXTURE), "-o", str(tmp_path / "o.csv"), *ARGS[2:], "-q"]) == 2
    assert "'text'" in capsys.readouterr().err  # the text column named in the refusal


def test_score_csv_keeps_the_input_columns_and_bom_can_be_turned_off(tmp_path, capsys, fake_models):
    out = tmp_path / "out.csv"
    assert cli.main(["score", str(FIXTURE), "-o", str(out), *ARGS, "-q", "--no-bom"]) == 0
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    source = list(csv.reader(FIXTURE.open(encoding="utf-8", newline="")))
    assert rows[0][:3] == source[0] and rows[0][3] == "情感"
    assert [r[:3] for r in rows[1:]] == source[1:]  # every input row, as it was, in order
    assert rows[3][-1].startswith("empty_text")
    codes = tmp_path / "codes.csv"
    assert cli.main(["score", str(FIXTURE), "-o", str(codes), *ARGS, "-q", "--columns", "codes"]) == 0
    assert codes.read_text(encoding="utf-8-sig").startswith("row,id,sentiment")


def test_the_summary_is_a_chinese_table_matching_the_report(tmp_path, capsys, fake_models):
    report_file = tmp_path / "report.json"
    assert cli.main(["score", str(FIXTURE), "-o", str(tmp_path / "o.jsonl"), *ARGS, "--summary", str(report_file)]) == 0
    printed = capsys.readouterr()
    report = json.loads(report_file.read_text(encoding="utf-8"))
    table = printed.out
    assert not table.lstrip().startswith("{")  # not JSON
    assert f"共 {report['totals']['rows']} 行" in table and f"错误 {report['totals']['errors']} 行" in table
    for label, name in T.REVIEW_SENTIMENT_NAMES_ZH.items():
        entry = report["sentiment"][label]
        line = next(x for x in table.splitlines() if x.strip().startswith(name))
        assert line.split()[1:] == [str(entry["count"]), f"{entry['share']:.1%}"]
    for cause in report["root_causes"][:5]:
        assert T.ASPECT_NAMES_ZH[cause["cause"]] in table
    assert "loading" in printed.err  # the progress bar, on stderr


def test_the_summary_table_of_a_chat_job_has_the_qa_figures(tmp_path, capsys, fake_models):
    src = tmp_path / "chats.jsonl"
    lines = [json.dumps(conversation(p, ("id", "turns", "channel")), ensure_ascii=False) for p in CONVERSATIONS]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["score", str(src), "-o", str(tmp_path / "o.csv"), "--kind", "conversations", "--workers", "1"]
    assert cli.main(args) == 0
    table = capsys.readouterr().out
    assert "质检：" in table and "平均分" in table and "客户情绪" in table
    assert any(name in table for name in T.GRADE_NAMES_ZH)


def test_table_columns_align_by_display_width():
    report = {
        "kind": "reviews",
        "totals": {"rows": 3, "analysed": 3, "errors": 0},
        "sentiment": {k: {"count": 1, "share": 0.3333} for k in T.SENTIMENT_LABELS},
        "root_causes": [
            {"cause": "price", "count": 12, "share": 0.4},
            {"cause": "description", "count": 3, "share": 0.1},
        ],
    }
    lines = [x for x in summary_table(report).splitlines() if "价格" in x or "与描述不符" in x]
    assert len(lines) == 2 and len({width(x) for x in lines}) == 1


def test_worker_log_lines_go_to_a_file_not_across_the_bar(tmp_path, capsys):
    log_file = tmp_path / "workers.log"
    logger = logging.getLogger("pingjia.test")
    with local.logs_around_the_bar(log_file):
        pid = os.fork()
        if pid == 0:  # a worker: its warning must not reach the shared stderr
            logger.warning("from the worker")
            logging.shutdown()
            os._exit(0)
        os.waitpid(pid, 0)
        logger.warning("from the parent")
    err = capsys.readouterr().err
    assert "from the parent" in err and "from the worker" not in err
    assert "from the worker" in log_file.read_text(encoding="utf-8")


def test_the_table_names_flagged_groups_and_agents():
    group = {"value": "app", "negative_rate": 0.45, "rest_negative_rate": 0.2, "flagged": True}
    report = {
        "kind": "conversations",
        "totals": {"rows": 90, "analysed": 90, "errors": 0},
        "sentiment": {k: {"count": 30, "share": 0.3333} for k in T.SENTIMENT_LABELS},
        "groups": {"columns": [{"column": "channel", "flagged": ["app"], "groups": [group]}]},
        "qa": {
            "overall": {
                "conversations": 90,
                "qa_score_mean": 71.5,
                "violation_rate": 0.2,
                "resolution": {"resolution_rate": 0.8},
                "grades": [{"grade": c, "grade_zh": z, "count": 1, "share": 0.01} for _, c, z in T.GRADES],
                "violations": [{"code": "blame_shifting", "count": 7}],
            },
            "agents": {"flagged": [{"value": "a17", "metric": "violation_rate", "rate": 0.5, "rest_rate": 0.1}]},
            "channels": {"flagged": []},
        },
    }
    text = summary_table(report)
    assert "channel = app" in text and "45.0%" in text and "20.0%" in text
    assert "客服 a17" in text and "违规率" in text and "推诿" in text and "平均分 71.5" in text
    assert "正面" in text and "好评" not in text  # a chat's sentiment names


def stdin_of(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)), encoding="utf-8"))


def test_stdin_is_copied_only_for_the_readable_csv_and_the_report_only_built_when_used(
    tmp_path, capsys, monkeypatch, fake_models
):
    data = "".join(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(["好", "差"]))
    copies = []
    real_open_private = local.open_private
    monkeypatch.setattr(local, "open_private", lambda p: copies.append(p) or real_open_private(p))
    monkeypatch.setattr(local.service, "summary", lambda *a: pytest.fail("the report was built for nothing"))
    for out, extra in (("o.jsonl", []), ("o.csv", ["--columns", "codes"])):
        stdin_of(monkeypatch, data.encode())
        assert cli.main(["score", "-", "-o", str(tmp_path / out), "--workers", "1", "-q", *extra]) == 0
    assert copies == [] and len((tmp_path / "o.jsonl").read_text().splitlines()) == 2
    stdin_of(monkeypatch, data.encode())
    assert cli.main(["score", "-", "-o", str(tmp_path / "r.csv"), "--workers", "1", "-q"]) == 0
    assert len(copies) == 1
    table = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8-sig"), newline="")))
    assert table[0][:3] == ["id", "text", "情感"] and [r[1] for r in table[1:]] == ["好", "差"]
