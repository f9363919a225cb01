"""One error catalogue: every code the code raises is catalogued, and docs/errors.md, the README
and the OpenAPI error schema list exactly the catalogue."""

from __future__ import annotations

import ast
import pickle
import re

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.errors import CATALOGUE, InvalidUpload, PingjiaError, status_of
from app.main import create_app
from tests.conftest import ROOT

CODE = re.compile(r"^[a-z]+(?:_[a-z]+)*$")


def codes_in_source() -> dict[str, str]:
    """Error codes written in app/: ``code="..."`` keywords, ``code = "..."`` class attributes,
    the code of ``ItemError(id, "code", ...)``, ``fail_job(jid, "code", ...)`` and
    ``("code", "message")`` pairs of work rows."""
    found: dict[str, str] = {}
    for path in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            literals = []
            if isinstance(node, ast.keyword) and node.arg == "code":
                literals.append(node.value)
            elif isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["code"]:
                literals.append(node.value)
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in ("ItemError", "fail_job", "_fail") and len(node.args) >= 2:
                    literals.append(node.args[1] if name != "_fail" else node.args[2])
            elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and isinstance(node.elts[1], ast.JoinedStr):
                literals.append(node.elts[0])
            for lit in literals:
                if isinstance(lit, ast.Constant) and isinstance(lit.value, str) and CODE.match(lit.value):
                    found.setdefault(lit.value, f"{where}:{lit.lineno}")
    return found


def test_every_code_in_the_source_is_catalogued():
    found = codes_in_source()
    assert len(found) > 30, "the scan finds the codes"
    missing = {c: at for c, at in found.items() if c not in CATALOGUE}
    assert not missing, missing


def test_the_scan_sees_the_usual_spellings():
    assert {
        "invalid_multipart",
        "empty_batch",
        "scoring_failed",
        "worker_crashed",
        "invalid_row",
        "busy",
        "model_rejected",
        "invalid_item",
    } <= set(codes_in_source())


def test_an_uncatalogued_code_cannot_be_raised():
    with pytest.raises(ValueError, match="not in the catalogue"):
        PingjiaError("x", code="made_up")


def test_status_comes_from_the_catalogue_and_survives_pickling():
    err = InvalidUpload("truncated", code="invalid_multipart")
    assert err.status == 400 == status_of("invalid_multipart")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.code, back.status, back.message) == (InvalidUpload, "invalid_multipart", 400, "truncated")


def table_codes(text: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\| `([a-z_]+)` \| ([0-9–]+) \|", text, re.M)}


def test_docs_list_exactly_the_catalogue_with_its_statuses():
    table = table_codes((ROOT / "docs" / "errors.md").read_text(encoding="utf-8"))
    assert table == {c: str(e.status or "–") for c, e in CATALOGUE.items()}


def test_the_readme_lists_exactly_the_catalogue():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- error codes -->")[1].split("<!-- end error codes -->")[0]
    assert set(re.findall(r"`([a-z_]+)`", section)) == set(CATALOGUE)


def test_the_openapi_error_schema_lists_exactly_the_catalogue(tmp_path, fake_pipeline):
    with TestClient(create_app(Settings(data_dir=tmp_path), pipeline=fake_pipeline)) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ErrorBody"]
    assert set(schema["properties"]["code"]["enum"]) == set(CATALOGUE)
