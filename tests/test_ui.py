"""The report page and /docs without a browser: both are served from packaged files, reference
no outside host, every asset they name answers 200, the page's JavaScript calls only /v1 paths
the OpenAPI contract has, and the pages stay open when API keys guard /v1.

The browser test (tests/test_ui_browser.py) checks what the page draws."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.routes.ui import STATIC_DIR
from app.core.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
UI = STATIC_DIR / "ui"
OUTSIDE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"'#]+)["']""", re.I)


@pytest.fixture(scope="module")
def client():
    # No lifespan (no `with`): these routes need no models.
    return TestClient(create_app(Settings()))


def assets(html: str) -> list[str]:
    return [u for u in ASSET.findall(html) if u.startswith("/")]


@pytest.mark.parametrize("path", ["/ui/", "/ui/jobs/0123abcd", "/ui/jobs/%E4%B8%AD%E6%96%87"])
def test_report_page_is_served_offline(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "pj-errors" in r.text and "/static/vendor/echarts/echarts.min.js" in r.text
    assert not OUTSIDE.search(r.text), "the page must not load anything from another host"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    names = assets(r.text)
    assert len(names) >= 5
    for url in names:
        assert client.get(url).status_code == 200, url


def test_ui_without_slash_redirects(client):
    r = client.get("/ui", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/"


def test_docs_are_offline(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert not re.search(r"https?://", r.text), "the /docs page names an outside host"
    names = assets(r.text)
    assert {u.rsplit("/", 1)[1] for u in names} == {"swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js"}
    for url in names:
        got = client.get(url)
        assert got.status_code == 200 and len(got.content) > 500, url
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/redoc").status_code == 404  # redoc would load from a CDN: off


def test_page_scripts_reference_no_outside_host():
    for path in UI.iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{path.name} names an outside host"


def test_vendored_files_carry_version_and_license():
    for name, bundle, marker in [
        ("echarts", "echarts.min.js", 'version="{}"'),
        ("swagger-ui", "swagger-ui-bundle.js", '"{}"'),
    ]:
        folder = STATIC_DIR / "vendor" / name
        assert (folder / "LICENSE").stat().st_size > 1000
        version = (folder / "VERSION").read_text().split()[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", version)
        assert marker.format(version) in (folder / bundle).read_text(encoding="utf-8"), (
            "VERSION disagrees with the file"
        )


def test_static_files_are_package_data():
    """``pip install .`` (the Dockerfile) copies only what package-data names: every file
    under app/static must match one of its patterns, and be found as a package resource."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    shipped = [p for p in STATIC_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(shipped) >= 12
    for path in shipped:
        rel = path.relative_to(STATIC_DIR.parent).as_posix()
        assert any(fnmatch(rel, pat) and rel.count("/") == pat.count("/") for pat in patterns), rel
        assert files("app").joinpath(rel).is_file()


def test_page_calls_only_documented_endpoints(client):
    """Every /v1 path literal in the page's JavaScript is a path of the OpenAPI contract (or
    the fixed prefix of a templated one, like ``"/v1/jobs/" + id``)."""
    source = (UI / "app.js").read_text(encoding="utf-8")
    literals = set(re.findall(r"""["'](/v1/[^"'?]*)""", source))
    assert {"/v1/analyze", "/v1/conversations/analyze", "/v1/jobs", "/v1/jobs/", "/v1/taxonomy"} <= literals
    paths = list(client.app.openapi()["paths"])
    for lit in literals:
        ok = lit in paths or (lit.endswith("/") and any(p.startswith(lit + "{") for p in paths))
        assert ok, f"{lit} is not an endpoint of the OpenAPI contract"


def test_pages_stay_open_when_keys_guard_v1():
    app = create_app(Settings(api_keys="ui-test:" + "k" * 24))
    c = TestClient(app)
    for path in ["/ui/", "/ui/jobs/x", "/docs", "/static/ui/app.js", "/static/vendor/echarts/echarts.min.js"]:
        assert c.get(path).status_code == 200, path
    r = c.get("/v1/taxonomy")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert c.get("/v1/taxonomy", headers={"Authorization": "Bearer " + "k" * 24}).status_code == 200


def test_unknown_static_file_is_404(client):
    assert client.get("/static/ui/nope.js").status_code == 404
    assert client.get("/static/../app/main.py").status_code == 404


# --- the statistical rules in the page's two languages ------------------------------------------
RULE = re.compile(r"^\s*(rule_\w+): \[\"([^\"]*)\",\s*\"([^\"]*)\"\],", re.M)


def rule_templates() -> dict[str, tuple[str, str]]:
    source = (UI / "i18n.js").read_text(encoding="utf-8")
    return {key: (zh, en) for key, zh, en in RULE.findall(source)}


def fill(template: str, thresholds: dict) -> str:
    """What the page's ``ruleText`` does: ``{name}`` is the threshold, ``{name_pt}`` the same
    in percentage points, both printed like Python's ``:g``."""
    values = {}
    for k, v in thresholds.items():
        if isinstance(v, int | float):
            values[k], values[f"{k}_pt"] = f"{v:g}", f"{v * 100:g}"
    return re.sub(r"\{(\w+)\}", lambda m: values[m[1]], template)


def test_rule_templates_use_only_the_reports_thresholds_in_both_languages():
    from dataclasses import asdict

    from app.jobs.report import DEFAULT_CONFIG

    templates = rule_templates()
    assert set(templates) == {"rule_spikes", "rule_groups", "rule_qa_rates", "rule_terms"}
    thresholds = asdict(DEFAULT_CONFIG)
    for key, (zh, en) in templates.items():
        names = sorted(re.findall(r"\{(\w+)\}", zh))
        assert names == sorted(re.findall(r"\{(\w+)\}", en)) and (names or key == "rule_qa_rates"), key
        assert all(name.removesuffix("_pt") in thresholds for name in names), (key, names)
        prose = re.sub(r"Bonferroni|Dirichlet|Monroe, Colaresi & Quinn", "", fill(zh, thresholds))
        assert not re.search(r"[A-Za-z]{4,}", prose), key  # Chinese, but for the names of methods
        assert not re.search(r"[\u4e00-\u9fff]", en), key


@pytest.mark.parametrize("spike_alpha, group_min_rows", [(0.01, 30), (0.001, 50)])
def test_english_rule_templates_say_what_the_report_says(spike_alpha, group_min_rows):
    """Filled with the report's thresholds, the English templates are the report's own sentences:
    the page's Chinese and English say the rule the service applied, not a copy that drifted."""
    from dataclasses import asdict

    from app.jobs.qa_report import build_chat_report
    from app.jobs.report import Accumulator, MemorySource, ReportConfig

    cfg = ReportConfig(spike_alpha=spike_alpha, group_min_rows=group_min_rows)
    report = build_chat_report(MemorySource(Accumulator()), {"date_column": "date"}, config=cfg)
    assert report["thresholds"] == asdict(cfg)
    templates = {k: en for k, (_, en) in rule_templates().items()}
    assert fill(templates["rule_spikes"], report["thresholds"]) == report["daily"]["rule"]
    assert fill(templates["rule_groups"], report["thresholds"]) == report["groups"]["test"]
    assert fill(templates["rule_groups"] + templates["rule_qa_rates"], report["thresholds"]) == report["qa"]["test"]
