"""POST /v1/admin/reload: auth, a successful swap, and the three ways an artifact can be bad
(missing, corrupt, incompatible) — each refused with 409 while the old model keeps serving.
Every test works on a temporary copy of models/; the real one is never touched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.pipeline.artifacts import pointer
from app.pipeline.engine import build_pipeline
from tests.conftest import assert_spans

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = [
    pytest.mark.slow,  # every reload builds a pipeline from the real models
    pytest.mark.skipif(
        not (MODELS / "current.json").is_file() or "aspects" not in pointer(MODELS),
        reason="no aspects model in models/ (run `pingjia train`)",
    ),
]


@pytest.fixture(scope="module")
def models_copy(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("models-src") / "models"
    shutil.copytree(MODELS, src)
    return src


@pytest.fixture(scope="module")
def base_pipeline(models_copy):
    return build_pipeline(ROOT / "lexicons", models_copy)


@pytest.fixture()
def env(tmp_path, models_copy, base_pipeline):
    """A fresh models dir copy, an app serving ``base_pipeline`` from it, and a client."""
    models = tmp_path / "models"
    shutil.copytree(models_copy, models)
    settings = Settings(models_dir=models, lexicon_dir=ROOT / "lexicons", data_dir=tmp_path / "var", admin_token=TOKEN)
    app = create_app(settings, pipeline=base_pipeline)
    with TestClient(app) as client:
        yield app, client, models


def _aspect_version(models: Path) -> str:
    return pointer(models)["aspects"]


def _copy_version(models: Path, new: str) -> Path:
    dst = models / "aspects" / new
    shutil.copytree(models / "aspects" / _aspect_version(models), dst)
    meta = json.loads((dst / "metrics.json").read_text(encoding="utf-8"))
    meta["version"] = new
    (dst / "metrics.json").write_text(json.dumps(meta), encoding="utf-8")
    return dst


def _rejected(resp, *words: str) -> str:
    assert resp.status_code == 409, resp.text
    err = resp.json()["error"]
    assert err["code"] == "model_rejected"
    for w in words:
        assert w in err["message"], err["message"]
    return err["message"]


def _still_serving(app, client, pipeline, models: Path, aspects_version: str) -> None:
    assert app.state.pipeline is pipeline
    assert _aspect_version(models) == aspects_version
    body = client.post("/v1/analyze", json={"text": "发货太慢了"}).json()
    assert body["model"] == pipeline.versions


def test_disabled_without_a_token(tmp_path, base_pipeline):
    settings = Settings(models_dir=tmp_path, data_dir=tmp_path / "var", admin_token=None)
    with TestClient(create_app(settings, pipeline=base_pipeline)) as client:
        r = client.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}]
)
def test_missing_or_wrong_token_is_401(env, headers):
    app, client, _ = env
    before = app.state.pipeline
    r = client.post("/v1/admin/reload", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert app.state.pipeline is before


def test_success_swaps_a_new_pipeline_and_old_one_still_works(env):
    app, client, models = env
    old = app.state.pipeline
    r = client.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "reloaded" and body["segmenter_reused"] is True
    assert body["model"] == body["previous"] == old.versions
    assert app.state.pipeline is not old
    # a request that started before the swap holds `old`: it still answers
    assert {a.aspect for a in old.analyze("发货太慢了").root_causes} == {"logistics"}
    text = "發貨太慢了，客服也不耐煩"
    served = client.post("/v1/analyze", json={"text": text}).json()
    assert_spans(text, served)
    assert {"logistics", "attitude"} <= {c["cause"] for c in served["root_causes"]}


def test_body_picks_a_version_and_pointer_moves_only_after_success(env):
    app, client, models = env
    _copy_version(models, "2099-01-01-1")
    r = client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-01-01-1"})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["aspects"] == "2099-01-01-1"
    assert app.state.pipeline.versions["aspects"] == "2099-01-01-1"
    assert _aspect_version(models) == "2099-01-01-1"
    assert client.get("/v1/taxonomy").json()["model"]["aspects"] == "2099-01-01-1"


def test_missing_version_dir_is_rejected(env):
    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    _rejected(
        client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-12-31-7"}), "2099-12-31-7", "not found"
    )
    _still_serving(app, client, old, models, version)
    # the same through the pointer: current.json names a version whose directory is gone
    shutil.rmtree(models / "aspects" / version)
    _rejected(client.post("/v1/admin/reload", headers=AUTH), version, "not found")
    assert app.state.pipeline is old


def test_corrupt_model_file_is_rejected(env):
    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    bad = _copy_version(models, "2099-01-01-2")
    (bad / "model.skops").write_bytes(b"PK\x03\x04 this is not a model")
    _rejected(client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-01-01-2"}), "model.skops", "corrupt")
    _still_serving(app, client, old, models, version)


def test_corrupt_file_without_checksum_is_rejected_too(env):
    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    bad = _copy_version(models, "2099-01-01-3")
    meta = json.loads((bad / "metrics.json").read_text(encoding="utf-8"))
    meta.pop("model_sha256", None)
    (bad / "metrics.json").write_text(json.dumps(meta), encoding="utf-8")
    (bad / "model.skops").write_bytes(b"garbage")
    _rejected(client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-01-01-3"}), "model.skops")
    _still_serving(app, client, old, models, version)


def test_incompatible_format_is_rejected(env):
    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    bad = _copy_version(models, "2099-01-01-4")
    meta = json.loads((bad / "metrics.json").read_text(encoding="utf-8"))
    meta["format"] = 999
    (bad / "metrics.json").write_text(json.dumps(meta), encoding="utf-8")
    _rejected(client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-01-01-4"}), "format", "999")
    _still_serving(app, client, old, models, version)
    # the pointer route to the same bad artifact is refused as well
    (models / "current.json").write_text(json.dumps({**pointer(models), "aspects": "2099-01-01-4"}))
    _rejected(client.post("/v1/admin/reload", headers=AUTH), "format")
    assert app.state.pipeline is old


@pytest.mark.parametrize("body", [{"aspects": "latest"}, {"colour": "blue"}, {"aspects": 3}])
def test_bad_body_is_422(env, body):
    app, client, _ = env
    old = app.state.pipeline
    r = client.post("/v1/admin/reload", headers=AUTH, json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    assert app.state.pipeline is old


def test_missing_sentiment_version_is_rejected(env):
    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    _rejected(
        client.post("/v1/admin/reload", headers=AUTH, json={"sentiment": "2099-01-01-1"}), "sentiment", "2099-01-01-1"
    )
    _still_serving(app, client, old, models, version)


def test_a_model_failing_the_smoke_texts_is_rejected(env):
    """A loadable, well-formed artifact that asserts nothing: the smoke check catches it."""
    from app.pipeline.artifacts import load_artifact, save_artifact

    app, client, models = env
    old, version = app.state.pipeline, _aspect_version(models)
    state, metrics, _ = load_artifact(models, "aspects")
    mute = {**state, "threshold": state["threshold"] * 0 + 2.0, "lexicon_union": state["lexicon_union"] * 0}
    save_artifact(
        models, "aspects", mute, {"note": "asserts nothing"}, "# test", version="2099-01-01-5", make_current=False
    )
    _rejected(client.post("/v1/admin/reload", headers=AUTH, json={"aspects": "2099-01-01-5"}), "smoke", "logistics")
    _still_serving(app, client, old, models, version)


def test_body_can_name_both_versions(env):
    app, client, models = env
    current = pointer(models)
    if "sentiment" not in current:
        pytest.skip("no sentiment artifact in models/")
    wanted = {"sentiment": current["sentiment"], "aspects": current["aspects"]}
    r = client.post("/v1/admin/reload", headers=AUTH, json=wanted)
    assert r.status_code == 200, r.text
    assert {k: r.json()["model"][k] for k in wanted} == wanted
    assert pointer(models) == current


@pytest.mark.slow
def test_repeated_reloads_do_not_grow_memory(tmp_path, models_copy):
    """Before: each reload kept (part of) the replaced pipeline until a later collection;
    six reloads took a served process from 378 to 581 MB."""
    from tests.test_hostile_api import rss_mb

    settings = Settings(
        models_dir=models_copy, lexicon_dir=ROOT / "lexicons", data_dir=tmp_path / "var", admin_token=TOKEN
    )
    with TestClient(create_app(settings, pipeline=build_pipeline(ROOT / "lexicons", models_copy))) as client:
        assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200  # warm: caches, first swap
        start = rss_mb()
        for _ in range(4):
            assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
        grown = rss_mb() - start
    assert grown < 40, f"RSS grew {grown:.0f} MB over 4 reloads"


def test_a_chat_model_version_reloads_and_a_corrupt_one_is_refused(env):
    app, client, models = env
    current = pointer(models).get("chat")
    if current is None:
        pytest.skip("no chat model in models/")
    dst = models / "chat" / "2099-01-01-3"
    shutil.copytree(models / "chat" / current, dst)
    r = client.post("/v1/admin/reload", headers=AUTH, json={"chat": "2099-01-01-3"})
    assert r.status_code == 200, r.text
    assert r.json()["model"]["chat"] == "2099-01-01-3" and pointer(models)["chat"] == "2099-01-01-3"
    served = app.state.pipeline
    turns = [{"role": "customer", "text": "发错货了"}, {"role": "agent", "text": "这个你得去问快递"}]
    body = client.post("/v1/conversations/analyze", json={"turns": turns}).json()
    assert body["model"]["chat"] == "2099-01-01-3"
    bad = models / "chat" / "2099-01-01-4"
    shutil.copytree(dst, bad)
    (bad / "model.skops").write_bytes(b"PK\x03\x04 this is not a model")
    _rejected(client.post("/v1/admin/reload", headers=AUTH, json={"chat": "2099-01-01-4"}), "corrupt")
    assert app.state.pipeline is served and pointer(models)["chat"] == "2099-01-01-3"


def test_reload_takes_new_qa_profiles_and_refuses_broken_ones(tmp_path, models_copy, base_pipeline):
    lexicons = tmp_path / "lexicons"
    shutil.copytree(ROOT / "lexicons", lexicons)
    settings = Settings(models_dir=models_copy, lexicon_dir=lexicons, data_dir=tmp_path / "var", admin_token=TOKEN)
    app = create_app(settings, pipeline=base_pipeline)
    with TestClient(app) as client:
        before = app.state.conversation_rules
        profile = lexicons / "qa_profiles" / "default.json"
        data = json.loads(profile.read_text(encoding="utf-8"))
        data["version"] = "2099-01-01.test"
        profile.write_text(json.dumps(data), encoding="utf-8")
        assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
        taken = app.state.conversation_rules
        assert taken is not before and taken.profiles["default"].version == "2099-01-01.test"
        profile.write_text("{not json", encoding="utf-8")
        _rejected(client.post("/v1/admin/reload", headers=AUTH), "default.json")
        assert app.state.conversation_rules is taken
