"""Uploads -> work files: validation at submit time, per-row errors, chunks, column profiling."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from app.core.errors import InvalidUpload
from app.jobs import columns, readers
from app.jobs.ingest import InputSpec, ingest_file, ingest_items
from app.jobs.readers import guess_format
from app.jobs.workfile import WorkRow, read_chunk


def ingest(data: bytes, fmt="csv", chunk_rows=3, **spec):
    out = io.BytesIO()
    result = ingest_file(io.BytesIO(data), out, InputSpec(**spec), fmt=fmt, chunk_rows=chunk_rows)
    return result, out.getvalue()


def refused(data: bytes, fmt="csv", **spec) -> InvalidUpload:
    with pytest.raises(InvalidUpload) as e:
        ingest(data, fmt, **spec)
    assert e.value.status == 422
    return e.value


def rows_of(work: bytes) -> list[list]:
    return [json.loads(line) for line in work.splitlines()]


def test_csv_rows_become_work_rows_and_chunks_point_at_them(tmp_path):
    data = (
        '\ufeffid,text,channel\nr1,"发货太慢了，\n客服也不耐烦",app\nr2,很好,web\n\nr3,,web\nr4,一般,app\n'
    ).encode()
    result, work = ingest(data)
    assert result.total == 4 and result.chunks == [(0, 3, 0), (3, 1, result.chunks[1][2])]
    rows = rows_of(work)
    assert rows[0] == ["r1", "发货太慢了，\n客服也不耐烦", {"channel": "app"}]
    assert rows[2][:2] == ["r3", ""]  # empty text: the pipeline reports it in the row
    path = tmp_path / "work.jsonl"
    path.write_bytes(work)
    assert read_chunk(path, result.chunks[1][2], 1) == [WorkRow(*rows[3])]


def test_ids_fall_back_to_the_row_number():
    _, work = ingest("text\n好\n差\n".encode())
    assert [r[0] for r in rows_of(work)] == ["1", "2"]


@pytest.mark.parametrize(
    "data, spec, words",
    [
        (b"id,content\n1,x\n", {}, ["'text'", "content", "line 1"]),
        (b"id,text\n1,x\n", {"id_column": "review_id"}, ["'review_id'"]),
    ],
)
def test_a_missing_column_is_refused_naming_it(data, spec, words):
    err = refused(data, **spec)
    assert err.code == "missing_column" and all(w in err.message for w in words)


def test_bad_encoding_is_refused_naming_the_line():
    data = "id,text\n1,很好\n".encode() + "2,发货慢\n".encode("gbk")
    err = refused(data)
    assert err.code == "bad_encoding" and err.message.startswith("line 3")


def test_a_declared_encoding_is_honoured():
    data = "id,text\n1,发货慢\n".encode("gb18030")
    _, work = ingest(data, encoding="gb18030")
    assert rows_of(work)[0][1] == "发货慢"


def test_a_bad_json_line_is_refused_naming_it():
    data = b'{"id": 1, "text": "\xe5\xa5\xbd"}\n\n{"id": 2, "text": oops}\n'
    err = refused(data, "jsonl")
    assert err.code == "invalid_jsonl" and err.message.startswith("line 3, column")


def test_jsonl_without_the_text_field_anywhere_is_refused():
    err = refused(b'{"id": 1, "content": "x"}\n', "jsonl")
    assert err.code == "missing_column" and "'text'" in err.message


def test_individually_bad_rows_are_kept_as_row_errors():
    result, work = ingest(b'{"id": "a", "text": "x"}\n[1, 2]\n{"id": "c", "text": 5}\n', "jsonl")
    rows = rows_of(work)
    assert result.total == 3 and result.bad_rows == 1
    assert rows[1][3][0] == "invalid_row" and "line 2" in rows[1][3][1]
    assert rows[2][1] == 5  # not a string: the pipeline reports invalid_input in its slot
    result, work = ingest(b"id,text\n1,x\n2,y,extra\n")
    assert rows_of(work)[1][3] == ["invalid_row", "line 3: 3 fields, the header has 2"]


def test_empty_inputs_are_refused():
    assert refused(b"").code == "empty_file"
    assert refused(b"id,text\n").code == "empty_file"


def test_group_and_date_columns_are_detected():
    lines = ["id,text,channel,date,order_no,note"]
    for i in range(120):
        lines.append(f"{i},好,{'app' if i % 3 else 'web'},2026-11-{1 + i % 9:02d} 10:00,SO{i:06d},备注{i}")
    result, work = ingest("\n".join(lines).encode(), chunk_rows=50)
    plan = result.plan
    assert plan["group_columns"] == ["channel"] and plan["date_column"] == "date"
    assert plan["columns"]["order_no"]["role"] == "ignored"
    assert set(rows_of(work)[-1][2]) == {"channel", "date"}  # high-cardinality columns stop being copied


def test_explicit_columns_must_exist_and_fit():
    err = refused(b"id,text,channel\n1,x,app\n", date_column="day")
    assert err.code == "missing_column" and "'day'" in err.message
    err = refused(b"id,text,channel\n1,x,app\n", date_column="channel")
    assert err.code == "invalid_column" and "dates" in err.message
    many = "id,text,order\n" + "".join(f"{i},x,o{i}\n" for i in range(60))
    err = refused(many.encode(), group_columns=("order",))
    assert err.code == "invalid_column" and "distinct" in err.message
    result, _ = ingest(b"id,text,stamp\n1,x,1763604000\n", date_column="stamp")
    assert result.plan["date_column"] == "stamp" and result.plan["date_epoch"]


def test_json_items_and_meta_fields():
    out = io.BytesIO()
    result = ingest_items(
        [{"id": "a", "text": "好", "meta": {"channel": "app"}}, "oops", {"text": "差", "meta": {"channel": "web"}}],
        out,
        InputSpec(),
        chunk_rows=10,
    )
    rows = rows_of(out.getvalue())
    assert result.total == 3 and rows[0] == ["a", "好", {"channel": "app"}]
    assert rows[1][3][0] == "invalid_row" and rows[2][0] == "3"
    assert result.plan["group_columns"] == ["channel"]


def test_conversations_are_jsonl_only_and_need_turns():
    with pytest.raises(InvalidUpload, match="JSONL"):
        ingest(b"id,text\n1,x\n", kind="conversations")
    conv = {
        "id": "c1",
        "turns": [
            {"role": "customer", "text": "在吗", "time": "2026-11-20T10:00:00+08:00"},
            {"role": "agent", "text": "您好", "agent_id": "a17"},
        ],
    }
    data = (json.dumps(conv, ensure_ascii=False) + "\n" + json.dumps({"id": "c2"}) + "\n").encode()
    result, work = ingest(data, "jsonl", kind="conversations")
    rows = rows_of(work)
    assert rows[0][2] == {"agent_id": "a17", "started_at": "2026-11-20T10:00:00+08:00"}
    assert rows[1][3][0] == "invalid_conversation"


def test_format_is_guessed_from_name_then_content():
    assert guess_format("a.JSONL", b"") == "jsonl" and guess_format("a.csv", b"{") == "csv"
    assert guess_format(None, b'\xef\xbb\xbf  {"a": 1}') == "jsonl" and guess_format("", b"id,text") == "csv"


# --- hostile inputs (an audit's reproducers) -------------------------------------------
@pytest.mark.parametrize(
    "encoding",
    [
        "rot13",
        "base64",
        "zlib",
        "punycode",
        "hex",
        "bz2",
        "uu",
        "quopri",
        "idna",
        "undefined",
        "no-such-codec",
        "utf\x008",
    ],
)
def test_only_text_encodings_are_accepted(encoding):
    err = refused(b"id,text\n1,x\n", encoding=encoding)
    assert err.code == "bad_encoding" and "utf-8" in err.message


def test_a_quoted_field_may_span_lines_and_the_line_numbers_stay_right():
    data = 'id,text\n1,"第一行\n第二行, 还有 ""引号"""\n2,好\n3,"x\n"\n4,y,extra\n'.encode()
    result, work = ingest(data)
    rows = rows_of(work)
    assert result.total == 4 and rows[0][1] == '第一行\n第二行, 还有 "引号"' and rows[1][1] == "好"
    assert rows[3][3] == ["invalid_row", "line 7: 3 fields, the header has 2"]


@pytest.mark.parametrize(
    "data, line",
    [
        (b'id,text\n1,"never closed\n2,fine\n', 2),  # was: 1 row, holding the rest of the file
        (b'id,text\n1,ok\n2,"never closed', 3),
        (b'id,"text\n1,x\n', 1),
    ],
)
def test_a_quote_open_at_the_end_of_the_file_is_refused_naming_its_line(data, line):
    err = refused(data)
    assert err.code == "invalid_csv" and err.message.startswith(f"line {line}:") and "never closed" in err.message


def test_a_stray_quote_is_refused_naming_the_line_it_opened_on():
    err = refused(b'id,text\n1,"oops\n2,fine\n3,"quoted"\n4,x\n')
    assert err.code == "invalid_csv" and err.message.startswith("line 2:")


def test_csv_fields_and_rows_are_bounded(monkeypatch):
    err = refused(b"id,text\n1,ok\n2," + b'"' + b"x" * (1024 * 1024 + 1) + b'"\n')
    assert err.code == "field_too_long" and err.message.startswith("line 3:")
    monkeypatch.setattr(readers, "MAX_CSV_ROW_CHARS", 100)
    err = refused(b'id,text\n1,ok\n2,"' + b"a\n" * 30 + b'","' + b"b\n" * 30 + b'"\n')
    assert err.code == "line_too_long" and err.message.startswith("line 3:")
    assert csv.field_size_limit() < sys.maxsize


@pytest.mark.parametrize(
    "line, words",
    [
        (b'{"text": ' + b"1" * 5000 + b"}", ["line 2", "digits"]),  # ValueError, was a 500
        (b"[" * 200_000, ["line 2", "nested too deeply"]),  # RecursionError, was a 500
    ],
)
def test_jsonl_numbers_and_nesting_beyond_the_parser_are_refused(line, words):
    err = refused(b'{"text": "ok"}\n' + line + b"\n", "jsonl")
    assert err.code == "invalid_jsonl" and all(w in err.message for w in words), err.message


def test_an_empty_column_name_is_refused_not_a_key_error():
    with pytest.raises(InvalidUpload) as e:
        ingest_items([{"text": "好"}], io.BytesIO(), InputSpec(group_columns=("",)), chunk_rows=10)
    assert e.value.code == "missing_column" and "''" in e.value.message


def test_long_values_are_never_parsed_as_dates(monkeypatch):
    seen = []
    monkeypatch.setattr(columns, "parse_day", lambda v, **kw: seen.append(v))
    ingest(("id,text,date\n1,y,2026-11-20\n2,x,2026-11-20" + " " * 100 + "x\n").encode())
    assert seen == ["2026-11-20"]


# --- the work file's layout on disk ----------------------------------------------------
OLD_WORK_FILE = (
    '["r1","发货太慢了",{"channel":"app"}]\n'
    '["2",null,{},["invalid_row","line 3: 4 fields, the header has 3"]]\n'
    '["c1",{"id":"c1","shop":"s1"},{"shop":"s1"},["invalid_conversation","a conversation needs a \'turns\' list"]]\n'
).encode()


def test_the_work_file_layout_is_unchanged():
    """Workers read work files of jobs submitted before an upgrade: the bytes must not move."""
    _, work = ingest("id,text,channel\nr1,发货太慢了,app\n2,y,z,extra\n".encode())
    assert work == OLD_WORK_FILE[: OLD_WORK_FILE.rindex(b'["c1"')]
    _, work = ingest(b'{"id": "c1", "shop": "s1"}\n', "jsonl", kind="conversations")
    assert work == OLD_WORK_FILE[OLD_WORK_FILE.rindex(b'["c1"') :]


def test_an_old_work_file_reads_as_work_rows(tmp_path):
    path = tmp_path / "work.jsonl"
    path.write_bytes(OLD_WORK_FILE)
    rows = read_chunk(path, 0, 3)
    assert rows[0] == WorkRow("r1", "发货太慢了", {"channel": "app"}) and rows[0].error is None
    assert rows[1] == WorkRow("2", None, {}, ("invalid_row", "line 3: 4 fields, the header has 3"))
    assert rows[2].payload == {"id": "c1", "shop": "s1"} and rows[2].error[0] == "invalid_conversation"
    assert b"".join(r.encode() for r in rows) == OLD_WORK_FILE
    assert read_chunk(path, OLD_WORK_FILE.index(b"\n") + 1, 2) == rows[1:]


def test_the_uploads_own_columns_are_recorded_for_the_readable_csv(monkeypatch):
    """A CSV's columns are its header, even when every row is bad; a JSONL's the union of its
    objects' keys, first seen first, up to MAX_ORIGINAL_COLUMNS; conversation extras are not the upload's."""
    from app.jobs import ingest as ingest_module

    assert ingest(b"id,text,note\n1,x\n2,y,z,w\n")[0].columns == ["id", "text", "note"]
    data = b'{"id": "a", "text": "x", "b": 1}\n[1]\n{"c": 2, "text": "y", "meta": {"k": 1}}\n'
    assert ingest(data, "jsonl")[0].columns == ["id", "text", "b", "c", "meta"]
    monkeypatch.setattr(ingest_module, "MAX_ORIGINAL_COLUMNS", 4)
    assert ingest(data, "jsonl")[0].columns == ["id", "text", "b", "c"]
    chat = b'{"id": "c1", "turns": [{"role": "agent", "text": "hi", "agent_id": "a7"}]}\n'
    assert ingest(chat, "jsonl", kind="conversations")[0].columns == ["id", "turns"]
    items = ingest_items([{"text": "x", "z": 1}, 5, {"id": "2", "text": "y"}], io.BytesIO(), InputSpec(), chunk_rows=3)
    assert items.columns == ["text", "z", "id"]
