"""Shared fixtures: the real lexicons and segmenter (built once), a fake sentiment model
so engine and API tests run in milliseconds, and the repo/shared-data paths.

Tests never touch the repository or the developer's environment: no ``PINGJIA_*`` variable
reaches a test (or a process it starts: use :func:`clean_env`), and the data dir (job
database, uploads) is a temporary directory, per test and, for module-scoped fixtures, per
session."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from app.core.config import get_settings
from app.pipeline.aspects import LexiconAspectScorer
from app.pipeline.engine import Pipeline, build_segmenter
from app.pipeline.findings import SentimentFinding
from app.pipeline.lexicon import load_lexicon

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent (training data is not in the repo)"
)
needs_models = pytest.mark.skipif(
    not (ROOT / "models" / "current.json").is_file(), reason="no trained models in models/ (run `make train`)"
)
CONVERSATIONS = sorted((ROOT / "tests" / "fixtures" / "conversations").glob("*.json"))
"""The conversation fixtures (tests/fixtures/conversations), in name order."""


def conversation(path: Path, keys=("id", "turns", "profile", "channel")) -> dict:
    """A conversation fixture as a request carries it: its ``keys`` present in the file (not the
    fixture's description and expectations)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {k: raw[k] for k in keys if k in raw}


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a subprocess of a test: this one without any ``PINGJIA_*`` setting
    except ``overrides`` (give ``PINGJIA_DATA_DIR`` a temporary directory)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PINGJIA_")}, **overrides}


def _unset_pingjia(mp: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("PINGJIA_")]:
        mp.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def _no_developer_settings(tmp_path_factory):
    """Module- and session-scoped fixtures build settings too, before any per-test fixture:
    they also see no ``PINGJIA_*`` variable, and a data dir outside the repository."""
    with pytest.MonkeyPatch.context() as mp:
        _unset_pingjia(mp)
        mp.setenv("PINGJIA_DATA_DIR", str(tmp_path_factory.mktemp("session-data")))
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """Each test: default settings (nothing from the environment, nothing cached from another
    test) and its own data dir, ``tmp_path / "data"`` (created when the app first needs it)."""
    _unset_pingjia(monkeypatch)
    monkeypatch.setenv("PINGJIA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class FakeSentiment:
    """Positive when the lexicon found more positive than negative hits: fast and predictable."""

    version = "fake-1"

    def predict(self, docs):
        out = []
        for d in docs:
            score = sum(1 if h.polarity == "positive" else -1 for h in d.hits)
            label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
            probs = {k: (0.8 if k == label else 0.1) for k in ("positive", "neutral", "negative")}
            out.append(SentimentFinding(label, probs))
        return out


@pytest.fixture(scope="session")
def lexicon():
    return load_lexicon(ROOT / "lexicons")


@pytest.fixture(scope="session")
def segmenter(lexicon):
    return build_segmenter(lexicon)


@pytest.fixture(scope="session")
def fake_pipeline(lexicon, segmenter):
    return Pipeline(
        lexicon=lexicon,
        segmenter=segmenter,
        sentiment=FakeSentiment(),
        aspects=LexiconAspectScorer(lexicon.version),
        max_text_chars=5000,
    )


@pytest.fixture(scope="session")
def conversation_rules():
    from app.conversations import load_conversation_rules

    return load_conversation_rules(ROOT / "lexicons")


@pytest.fixture(scope="session")
def fake_scorers(fake_pipeline, conversation_rules):
    """``fake_scorers()``: new job-worker scorers over the fake pipeline and the real
    conversation rules (what ``local.load_scorers`` or a ``ThreadRunner`` is given)."""
    from app.conversations import Limits
    from app.jobs.scoring import ConversationScorer, Scorers

    def make():
        return Scorers(fake_pipeline, lambda: ConversationScorer(fake_pipeline, conversation_rules, Limits()))

    return make


def wait(client, job_id, until=("done", "failed", "cancelled"), timeout=30.0) -> dict:
    """Poll ``GET /v1/jobs/{job_id}`` until its status is one of ``until``; its last status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.get(f"/v1/jobs/{job_id}").json()
        if st["status"] in until:
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {st['status']} after {timeout}s")


@pytest.fixture
def make_job_client(tmp_path, fake_pipeline, conversation_rules, fake_scorers):
    """``make(workers=2, inline=False, chunk_rows=16, **settings)``: a TestClient of the whole app
    (fake sentiment) with in-thread job workers on a fresh data dir; ``workers=0`` leaves jobs
    queued (for cancel/409). Uploads are ingested in the app's ingest process; ``inline=True``:
    in the app's threads, so that a test can monkeypatch ingest."""
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.jobs import service
    from app.jobs.store import open_store
    from app.jobs.worker import ThreadRunner
    from app.main import create_app

    clients = []

    def make(workers=2, inline=False, **overrides):
        settings = Settings(data_dir=tmp_path, job_chunk_rows=overrides.pop("chunk_rows", 16), **overrides)
        app = create_app(settings, pipeline=fake_pipeline)
        app.state.conversation_rules = conversation_rules
        if inline:
            app.state.ingest_pool = None
        store = app.state.job_store = open_store(service.db_url(settings))
        app.state.job_runner = ThreadRunner(store, fake_scorers(), workers=workers)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def assert_spans(original: str, result: dict) -> None:
    """The contract's invariant: every span indexes the caller's original text exactly."""
    for k in result.get("keywords", []):
        assert original[k["start"] : k["end"]] == k["text"], k
    for group in ("aspects", "root_causes"):
        for a in result.get(group, []):
            assert a["evidence"], a
            for ev in a["evidence"]:
                assert original[ev["start"] : ev["end"]] == ev["text"], ev
