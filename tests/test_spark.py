"""Pingjia on a real local Spark (``local[2]``, one session for the module): the findings equal the
in-process pipeline's, the report equals ``pingjia score --summary`` on the same file, bad rows
get their error in their slot, conversations work, models reach executors as an archive, and the
command line refuses bad input with exit code 2.

Skipped, with the reason, without the spark extra or without Java; ``.ci/run`` installs Java.
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil

import pytest

from tests.conftest import ROOT, SHARED_DATA, needs_models, needs_shared

pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install '.[spark]'")
if shutil.which("java") is None:
    pytest.skip(
        "Java is not on PATH: Spark needs Java 17 (apt-get install openjdk-17-jre-headless)", allow_module_level=True
    )

from app.cli import main  # noqa: E402
from app.core.config import get_settings  # noqa: E402
from app.integrations.spark import local_session, report, score, ship_assets  # noqa: E402
from app.integrations.spark_worker import worker_state  # noqa: E402
from app.jobs.scoring import ReviewScorer  # noqa: E402
from app.pipeline import present  # noqa: E402
from app.pipeline.engine import TextItem, build_pipeline  # noqa: E402
from app.pipeline.findings import ItemError  # noqa: E402

pytestmark = [needs_models]
CHATS = ROOT / "tests" / "fixtures" / "conversations"
TOO_LONG = "长" * 5001


@pytest.fixture(scope="module")
def spark():
    session = local_session("local[2]", app_name="pingjia-tests", conf={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def pipeline():
    s = get_settings()
    return build_pipeline(s.lexicon_dir, s.models_dir, max_text_chars=s.max_text_chars)


def sample_reviews(n: int = 500, seed: int = 7) -> list[dict]:
    """``n`` reviews of the shared corpus, negatives over-represented on channel ``mini`` and on
    2026-11-08 (a group that stands out, a spike day), then three bad rows."""
    with open(SHARED_DATA / "reviews_train.csv", encoding="utf-8") as f:
        pool = list(csv.DictReader(f))
    rng = random.Random(seed)
    neg = [r for r in pool if r["label"] == "0"]
    pos = [r for r in pool if r["label"] == "1"]
    rows = []
    for i in range(n):
        day, channel = 1 + i % 10, ("app", "web", "mini")[i % 3]
        p_neg = 0.3 + (0.35 if channel == "mini" else 0) + (0.4 if day == 8 else 0)
        r = rng.choice(neg if rng.random() < p_neg else pos)
        created = f"2026-11-{day:02d} 10:{i % 60:02d}:00"
        rows.append({"review_id": f"r{i + 1}", "content": r["review"][:300], "channel": channel, "created_at": created})
    for rid, text, channel in (("e1", "", "app"), ("e2", "   ", "web"), ("e3", TOO_LONG, "web")):
        rows.append({"review_id": rid, "content": text, "channel": channel, "created_at": "2026-11-03 09:00:00"})
    return rows


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("spark-data") / "reviews.csv"
    rows = sample_reviews()
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def close(a, b, path="$"):
    """Equal JSON values, floats to 1e-9 relative (sums may be added in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), path
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b) or set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@needs_shared
def test_findings_equal_the_in_process_pipeline_and_each_worker_loads_once(spark, pipeline):
    rows = sample_reviews()
    df = spark.createDataFrame(
        [(r["review_id"], r["content"], r["channel"]) for r in rows], "id string, text string, channel string"
    )
    out = {r["id"]: r.asDict(recursive=True) for r in score(df, partitions=4).collect()}
    expected = pipeline.analyze_batch([TextItem(r["content"], r["review_id"]) for r in rows], with_words=True)
    assert len(out) == len(expected) == 503
    versions = dict(pipeline.versions)
    for a in expected:
        got = out[a.id]
        if isinstance(a, ItemError):
            assert (got["error_code"], got["error_message"]) == (a.code, a.message)
            assert got["sentiment"] is None and got["report_facts"] is None
            continue
        want = present.analysis(a, versions)
        assert got["error_code"] is None
        assert got["sentiment"] == want["sentiment"]["label"] and got["mixed"] == want["sentiment"]["mixed"]
        assert got["probabilities"] == want["sentiment"]["probabilities"]
        for key in ("keywords", "aspects", "root_causes", "model"):
            assert got[key] == want[key], (a.id, key)
        facts = ReviewScorer.facts(a)
        assert set(got["report_facts"]["terms"]) == facts.terms
        assert got["report_facts"]["causes"] == list(facts.causes)
    assert [out[r]["row"] for r in ("r1", "r500", "e3")] == [1, 500, 503]
    assert {out[r]["error_code"] for r in ("e1", "e2", "e3")} == {"empty_text", "text_too_long"}
    # every Python worker that scored built its pipeline once, whatever the number of batches
    probes = df.repartition(8).mapInPandas(worker_state, "pid BIGINT, builds BIGINT").collect()
    assert {p["builds"] for p in probes} == {1}, probes


@needs_shared
def test_report_equals_pingjia_score_summary(spark, reviews_csv, tmp_path, capsys):
    common = ["--text-column", "content", "--id-column", "review_id", "-q"]
    assert main(["score", str(reviews_csv), "-o", str(tmp_path / "o.jsonl"), "--summary", str(tmp_path / "a.json"),
                 "--workers", "1", "--work-dir", str(tmp_path), *common]) == 0  # fmt: skip
    assert main(["spark-score", str(reviews_csv), str(tmp_path / "out"), "--summary", str(tmp_path / "b.json"),
                 "--master", "local[2]", *common]) == 0  # fmt: skip
    job, spark_report = (json.loads((tmp_path / f"{x}.json").read_text(encoding="utf-8")) for x in "ab")
    assert job.pop("generated_at") and spark_report.pop("generated_at")  # when each was made: never equal
    close(spark_report, job)
    # the file exercises every part: a flagged group, a spike, complaint terms with examples, errors
    assert job["groups"]["columns"][0]["flagged"] == ["mini"]
    assert job["daily"]["alerts"] and job["complaint_terms"]["items"][0]["example"]["text"]
    assert job["errors"]["by_code"] == {"empty_text": 2, "text_too_long": 1}
    # the written table: one row per input row, ids in place, same findings as the job's rows
    scored = {r["id"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        got = scored[row["id"]]
        assert got["row"] == row["row"]
        if "error" in row:
            assert got["error_code"] == row["error"]["code"]
        else:
            assert got["sentiment"] == row["sentiment"]["label"]
            assert [c["cause"] for c in got["root_causes"]] == [c["cause"] for c in row["root_causes"]]


def test_bad_rows_get_their_error_in_their_slot(spark, tmp_path):
    rows = [("a", "发货太慢了，客服也不耐烦"), ("b", None), ("c", ""), ("d", "  \t"), ("e", TOO_LONG), ("f", "\u200b")]
    rows.append(("", "质量很好"))  # an empty id: the row number stands in
    df = spark.createDataFrame(rows, "id string, text string")
    out = {r["row"]: r for r in score(df).collect()}
    assert [out[i]["id"] for i in range(1, 8)] == ["a", "b", "c", "d", "e", "f", "7"]
    codes = [out[i]["error_code"] for i in range(1, 8)]
    assert codes == [None, "invalid_input", "empty_text", "empty_text", "text_too_long", "empty_text", None]
    assert out[6]["error_message"] == "text: has no visible characters"  # a zero-width space only
    assert out[2]["error_message"] == "text: is missing" and out[1]["root_causes"][0]["cause"] == "logistics"
    # a CSV row with the wrong number of fields is that row's error; the rows around it are scored
    bad = tmp_path / "bad.csv"
    bad.write_text(
        'id,text,channel\n1,物流很快,app\n2,"太差了",web,extra\n3,"客服很耐心\n下次还来",app\n', encoding="utf-8"
    )
    assert main(["spark-score", str(bad), str(tmp_path / "out"), "-q"]) == 0
    got = {r["id"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    assert got["2"]["error_code"] == "invalid_row" and "header" in got["2"]["error_message"]
    assert got["1"]["error_code"] is None and got["3"]["error_code"] is None
    assert got["3"]["text"] == "客服很耐心\n下次还来"  # a quoted line break stays in its field


def chat_lines() -> list[str]:
    lines = [
        json.dumps(json.loads(p.read_text(encoding="utf-8")), ensure_ascii=False) for p in sorted(CHATS.glob("*.json"))
    ]
    return [*lines, '{"id": "no-turns", "channel": "app"}', "[1, 2]"]


def test_conversations_equal_pingjia_score(spark, tmp_path):
    src = tmp_path / "chats.jsonl"
    src.write_text("\n".join(chat_lines()) + "\n", encoding="utf-8")
    common = ["--kind", "conversations", "-q"]
    assert main(["score", str(src), "-o", str(tmp_path / "o.jsonl"), "--summary", str(tmp_path / "a.json"),
                 "--workers", "1", "--work-dir", str(tmp_path), *common]) == 0  # fmt: skip
    assert main(["spark-score", str(src), str(tmp_path / "out"), "--summary", str(tmp_path / "b.json"), *common]) == 0
    job, spark_report = (json.loads((tmp_path / f"{x}.json").read_text(encoding="utf-8")) for x in "ab")
    job.pop("generated_at"), spark_report.pop("generated_at")
    close(spark_report, job)
    assert job["qa"]["conversations"] > 25 and job["errors"]["by_code"]["invalid_row"] == 1
    scored = {r["id"]: r for r in spark.read.parquet(str(tmp_path / "out")).collect()}
    for line in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        got = scored[row["id"]]
        if "error" in row:
            assert (got["error_code"], got["error_message"]) == (row["error"]["code"], row["error"]["message"])
        else:
            assert json.loads(got["result_json"]) == row  # the whole inspection, as the job wrote it
            assert (got["qa_score"], got["qa_grade"]) == (row["qa"]["score"], row["qa"]["grade"])
            names = ("turn", "rule", "rule_zh", "text", "severity", "severity_zh")  # the API's, in Chinese too
            assert [tuple(v[k] for k in names) for v in got["violations"]] == [
                tuple(v[k] for k in names) for v in row["violations"]
            ]


def test_conversations_from_a_column_of_turn_structs(spark):
    convs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(CHATS.glob("0*.json"))[:4]]
    as_json = spark.createDataFrame(
        [(c["id"], json.dumps(c, ensure_ascii=False)) for c in convs], "id string, t string"
    )
    turns = "ARRAY<STRUCT<role: STRING, text: STRING, time: STRING, agent_id: STRING>>"
    keys = ("role", "text", "time", "agent_id")
    structs = spark.createDataFrame(
        [(c["id"], [tuple(t.get(k) for k in keys) for t in c["turns"]]) for c in convs], f"id STRING, turns {turns}"
    )
    a = {r["id"]: r for r in score(as_json, text_col="t", kind="conversations").collect()}
    b = {r["id"]: r for r in score(structs, text_col="turns", kind="conversations").collect()}
    assert set(a) == set(b) == {c["id"] for c in convs}
    for cid in a:
        assert a[cid]["error_code"] is None and a[cid]["qa_score"] == b[cid]["qa_score"]
        assert a[cid]["violations"] == b[cid]["violations"] and a[cid]["agent_id"] == b[cid]["agent_id"]


def test_models_reach_executors_as_a_shipped_archive(spark):
    df = spark.createDataFrame([("1", "物流太慢了"), ("2", "质量很好")], "id string, text string")
    archive = ship_assets(spark)
    assert archive.archive and archive.models_dir is None  # nothing read from this machine's folders
    shipped = {r["id"]: (r["sentiment"], r["model"]) for r in score(df, assets=archive).collect()}
    local = {r["id"]: (r["sentiment"], r["model"]) for r in score(df).collect()}
    assert shipped == local


def test_report_of_a_dataframe_with_chosen_columns(spark):
    texts = ("质量很好，很满意", "物流太慢了，客服也不耐烦", "物流太慢了，客服也不耐烦")
    rows = [(str(i), texts[i % 3], "ab"[i % 2], f"2026-11-{1 + i % 4:02d}") for i in range(60)]
    scored = score(spark.createDataFrame(rows, "id string, text string, shop string, day string")).cache()
    summary = report(scored, group_cols=["shop"], date_col="day")
    assert summary["totals"] == {"rows": 60, "analysed": 60, "errors": 0}
    assert [c["column"] for c in summary["groups"]["columns"]] == ["shop"] and summary["daily"]["column"] == "day"
    assert len(summary["daily"]["series"]) == 4 and summary["job_id"] is None
    with pytest.raises(Exception, match="not found"):
        report(scored, group_cols=["nope"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["in.xlsx", "out"], "cannot tell the format"),
        (["in.csv", "out", "--text-column", "content"], "column 'content' not found"),
        (["in.csv", "out", "--kind", "conversations"], "JSONL or Parquet only"),
        (["missing.csv", "out"], "no such file"),
        (["in.jsonl", "out"], "line 2, column"),
        (["in.csv", "out", "--group-columns", "shop"], "column 'shop' not found"),
        (["in.parquet", "out"], "Spark cannot read it"),
    ],
)
def test_command_line_refuses_bad_input_with_exit_code_2(spark, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "in.csv").write_text("id,text\n1,好\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text('{"text": "好"}\n{"text": \n', encoding="utf-8")
    (tmp_path / "in.parquet").write_bytes(b"not parquet at all")
    assert main(["spark-score", *args, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_the_cli_reads_options_into_one_input_spec():
    """``spark-score`` takes ``score``'s InputSpec; conversations default to "turns" (Parquet's
    transcript column) unless a text column is given, even "text"."""
    from app.cli import build_parser, input_spec
    from app.integrations.spark_io import SparkScoreOptions, _text_col
    from app.jobs.ingest import InputSpec

    args = build_parser().parse_args(["spark-score", "in.pq", "out", "--kind", "conversations", "--group-columns", "a"])
    spec = input_spec(args, args.format)
    assert spec == InputSpec(kind="conversations", group_columns=("a",))
    assert _text_col(SparkScoreOptions("in.pq", "out", spec=spec, text_column_given=False)) == "turns"
    assert _text_col(SparkScoreOptions("in.pq", "out", spec=spec, text_column_given=True)) == "text"
    assert _text_col(SparkScoreOptions("in.pq", "out")) == "text"  # reviews
