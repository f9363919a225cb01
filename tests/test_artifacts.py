"""Versioned model artifacts: round trip, pointer handling, and every failure is an ArtifactError
with a message that says what is wrong. Tiny in-memory objects only; no shared data needed."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from app.pipeline import artifacts as A
from app.pipeline.artifacts import ArtifactError, load_artifact, pointer, save_artifact


def tiny_state() -> dict:
    return {
        "schema": 1,
        "coef": np.arange(5, dtype=np.float32),
        "vocab": np.frombuffer(b"a\x00b", np.uint8).copy(),
        "name": "tiny",
        "threshold": 0.25,
    }


class Widget:
    """A custom type: not in any trusted list, so its artifacts must not load."""

    def __init__(self):
        self.x = 1


WIDGET_TYPE = f"{Widget.__module__}.{Widget.__qualname__}"


@pytest.fixture
def saved(tmp_path):
    path = save_artifact(tmp_path, "sentiment", tiny_state(), {"f1": 0.9}, "# card\n")
    return tmp_path, path


def test_round_trip(saved):
    models, path = saved
    today = dt.date.today().isoformat()
    assert path == models / "sentiment" / f"{today}-1"
    assert {p.name for p in path.iterdir()} == {"model.skops", "metrics.json", "MODEL_CARD.md"}
    obj, metrics, version = load_artifact(models, "sentiment")
    assert version == f"{today}-1"
    assert np.array_equal(obj["coef"], tiny_state()["coef"]) and obj["coef"].dtype == np.float32
    assert obj["name"] == "tiny" and obj["threshold"] == 0.25
    assert metrics["format"] == A.FORMAT and metrics["kind"] == "sentiment" and metrics["f1"] == 0.9
    assert metrics["version"] == version and len(metrics["model_sha256"]) == 64
    assert (path / "MODEL_CARD.md").read_text(encoding="utf-8") == "# card\n"
    assert pointer(models) == {"sentiment": version}


def test_versions_count_up_and_pointer_keeps_other_kinds(saved):
    models, first = saved
    (models / "current.json").write_text(json.dumps({**pointer(models), "aspects": "2026-01-01-1"}))
    second = save_artifact(models, "sentiment", tiny_state(), {}, "")
    assert second.name.endswith("-2")
    assert pointer(models) == {"sentiment": second.name, "aspects": "2026-01-01-1"}
    third = save_artifact(models, "sentiment", tiny_state(), {}, "", make_current=False)
    assert pointer(models)["sentiment"] == second.name
    assert load_artifact(models, "sentiment", third.name)[2] == third.name
    assert A.list_versions(models, "sentiment") == [first.name, second.name, third.name]
    assert not [p for p in (models / "sentiment").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_explicit_version_is_never_overwritten(saved):
    models, path = saved
    with pytest.raises(ArtifactError, match="already exists"):
        save_artifact(models, "sentiment", tiny_state(), {}, "", version=path.name)
    with pytest.raises(ArtifactError, match="invalid version"):
        save_artifact(models, "sentiment", tiny_state(), {}, "", version="latest")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "pointer .* is missing"),
        ("{not json", "not valid JSON"),
        ('["sentiment"]', "JSON object"),
        ('{"aspects": "2026-01-01-1"}', "names no 'sentiment' version"),
    ],
)
def test_bad_pointer(saved, content, message):
    models, _ = saved
    if content is None:
        (models / "current.json").unlink()
    else:
        (models / "current.json").write_text(content)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(models, "sentiment")


def test_missing_version_dir(saved):
    models, _ = saved
    (models / "current.json").write_text('{"sentiment": "2020-01-01-7"}')
    with pytest.raises(ArtifactError, match="2020-01-01-7 not found"):
        load_artifact(models, "sentiment")


def test_missing_model_file(saved):
    models, path = saved
    (path / "model.skops").unlink()
    with pytest.raises(ArtifactError, match="model file .* is missing"):
        load_artifact(models, "sentiment")


def test_corrupt_model_file(saved):
    models, path = saved
    (path / "model.skops").write_bytes(b"definitely not a zip file")
    with pytest.raises(ArtifactError, match="corrupt.*sha256"):
        load_artifact(models, "sentiment")
    # without a recorded checksum, skops itself finds the damage
    metrics = json.loads((path / "metrics.json").read_text())
    del metrics["model_sha256"]
    (path / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ArtifactError, match="corrupt or not a skops file"):
        load_artifact(models, "sentiment")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": 99}, r"format 99; this code reads format\(s\) \[1\]"),
        ({"format": None}, "format None"),
        ({"kind": "aspects"}, "holds a 'aspects' artifact, not 'sentiment'"),
    ],
)
def test_incompatible_format(saved, change, message):
    models, path = saved
    metrics = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**metrics, **change}))
    with pytest.raises(ArtifactError, match=message):
        load_artifact(models, "sentiment")


def test_broken_metrics(saved):
    models, path = saved
    (path / "metrics.json").write_text("{")
    with pytest.raises(ArtifactError, match="metrics.json is not valid JSON"):
        load_artifact(models, "sentiment")
    (path / "metrics.json").unlink()
    with pytest.raises(ArtifactError, match="metrics.json is missing"):
        load_artifact(models, "sentiment")


def test_untrusted_types_are_refused(tmp_path, monkeypatch):
    # Saving is refused up front when the kind does not trust the type: nothing is written.
    with pytest.raises(ArtifactError, match="refusing to save"):
        save_artifact(tmp_path, "widget", {"w": Widget()}, {}, "")
    assert not list((tmp_path / "widget").iterdir()) and not (tmp_path / "current.json").exists()
    # Written by a process that trusted it, then loaded by one that does not: refused.
    monkeypatch.setitem(A.TRUSTED_TYPES, "widget", (WIDGET_TYPE,))
    save_artifact(tmp_path, "widget", {"w": Widget()}, {}, "")
    assert load_artifact(tmp_path, "widget")[0]["w"].x == 1
    monkeypatch.setitem(A.TRUSTED_TYPES, "widget", ())
    with pytest.raises(ArtifactError, match=f"untrusted types \\['{WIDGET_TYPE}'\\]"):
        load_artifact(tmp_path, "widget")


def test_bad_kind_and_unservable_pointer(tmp_path):
    with pytest.raises(ArtifactError, match="invalid artifact kind"):
        save_artifact(tmp_path, "../evil", {}, {}, "")
    tmp_path.joinpath("sentiment").mkdir()
    with pytest.raises(ArtifactError, match="has no model.skops"):
        A.set_current(tmp_path, "sentiment", "2026-01-01-1")
