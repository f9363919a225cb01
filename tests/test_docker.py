"""The image, checked without a Docker engine (none runs on the build machines): the build
context leaves out the virtualenv, git history, job data, tests and training data; the staging
stage copies only the model versions models/current.json serves; the HEALTHCHECK stays."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT, needs_models

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
STAGE = ROOT / "docker" / "stage_models.py"


def ignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as (negated, regex), in order: Go filepath.Match syntax (``*`` stays within a
    path segment, ``**`` crosses them), paths cleaned of leading and trailing slashes."""
    out = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:] if negated else line
        pattern = pattern.strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        out.append((negated, re.compile(regex)))
    return out


def in_context(path: str) -> bool:
    """Whether docker sends ``path`` to the daemon: the last pattern matching it or one of its
    parent directories decides (moby's patternmatcher)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in ignore_patterns():
        if any(regex.fullmatch(c) for c in candidates):
            included = negated
    return included


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv/lib/python3.11/site-packages/numpy/__init__.py",
        ".git/HEAD",
        ".git/objects/ab/cdef",
        "var/jobs.db",
        "var/jobs/0123/work.jsonl",
        "tests/test_api.py",
        "bench/bench_pipeline.py",
        "training/data/chat_extra/x.jsonl",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/x",
        ".bench/out.json",
        "pingjia.egg-info/PKG-INFO",
        "app/__pycache__/main.cpython-311.pyc",
        "app/api/__pycache__/x.pyc",
        "build/lib/app/main.py",
        "app/pipeline/_native.cpython-311-x86_64-linux-gnu.so",  # built in place by `make install`
        "Dockerfile",
        ".env",
    ],
)
def test_the_build_context_leaves_out(path):
    assert not in_context(path), path


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "setup.py",
        "README.md",
        "app/main.py",
        "app/pipeline/_native.c",
        "app/api/examples/analyze.json",
        "app/static/ui/index.html",
        "lexicons/service_keywords.csv",
        "models/current.json",
        "models/aspects/2026-12-05-2/model.skops",
        "docker/stage_models.py",
    ],
)
def test_the_build_context_keeps(path):
    assert in_context(path), path


def test_every_file_the_dockerfile_copies_is_in_the_context():
    sources = []
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    assert {"app", "lexicons", "models", "pyproject.toml", "setup.py", "docker/stage_models.py"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), src
        assert in_context(src), src


def test_the_image_keeps_its_healthcheck_and_takes_models_from_the_staging_stage():
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*/healthz", DOCKERFILE, re.M)
    assert "FROM python:3.11-slim AS models" in DOCKERFILE
    assert "COPY --from=models /staged/models ./models" in DOCKERFILE
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "COPY models" not in final  # the final stage never copies the whole models/ folder
    assert 'CMD ["pingjia", "serve"' in final and "USER pingjia" in final


def test_the_service_stage_installs_the_compiled_wheel_and_no_source_tree():
    wheel = DOCKERFILE.split("AS wheel", 1)[1].split("\nFROM ", 1)[0]
    assert "gcc" in wheel and "pip wheel" in wheel  # the C extension is compiled in the build stage
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=wheel" in final
    assert "COPY app" not in final  # a source tree in the working directory would shadow the wheel


@pytest.mark.slow
def test_the_wheel_builds_from_the_build_context_with_its_extension(tmp_path):
    """What the wheel stage runs, on a copy of the files it copies (no editable install, no .so)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("pingjia-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("app/pipeline/_native") and n.endswith(".so") for n in names)
    assert "app/static/ui/index.html" in names and not any(n.startswith("tests/") for n in names)


def fake_models(tmp_path, current: dict[str, str], versions: dict[str, list[str]]):
    models = tmp_path / "models"
    for kind, names in versions.items():
        for v in names:
            (models / kind / v).mkdir(parents=True)
            (models / kind / v / "model.skops").write_bytes(b"x" * 10)
    (models / "current.json").write_text(json.dumps(current), encoding="utf-8")
    return models


def stage(models, out) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STAGE), str(models), str(out)], capture_output=True, text=True, timeout=60
    )


def test_staging_copies_only_the_served_versions(tmp_path):
    models = fake_models(
        tmp_path,
        {"sentiment": "2026-12-05-2", "aspects": "2026-11-22-1"},
        {"sentiment": ["2026-11-22-8", "2026-12-05-1", "2026-12-05-2"], "aspects": ["2026-11-22-1", "2026-12-05-1"]},
    )
    out = tmp_path / "staged"
    done = stage(models, out)
    assert done.returncode == 0, done.stderr
    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert copied == [
        "aspects/2026-11-22-1/model.skops",
        "current.json",
        "sentiment/2026-12-05-2/model.skops",
    ]


@pytest.mark.parametrize(
    "current", [{"sentiment": "2026-12-05-9"}, {"sentiment": "../../etc"}, {}], ids=["missing", "escape", "empty"]
)
def test_staging_refuses_a_pointer_it_cannot_honour(tmp_path, current):
    models = fake_models(tmp_path, current, {"sentiment": ["2026-12-05-2"]})
    done = stage(models, tmp_path / "staged")
    assert done.returncode != 0 and done.stderr.strip()


@needs_models
def test_staging_the_repository_models_keeps_exactly_current_json(tmp_path):
    out = tmp_path / "staged"
    done = stage(ROOT / "models", out)
    assert done.returncode == 0, done.stderr
    current = json.loads((ROOT / "models" / "current.json").read_text(encoding="utf-8"))
    staged = {(p.parent.name, p.name) for p in out.glob("*/*") if p.is_dir()}
    assert staged == {(k, v) for k, v in current.items()}
    in_repo = {(p.parent.name, p.name) for p in (ROOT / "models").glob("*/*") if p.is_dir()}
    assert staged <= in_repo


@pytest.mark.slow
@needs_models
def test_the_staged_models_load(tmp_path):
    from app.pipeline.engine import build_pipeline

    out = tmp_path / "staged"
    assert stage(ROOT / "models", out).returncode == 0
    pipeline = build_pipeline(ROOT / "lexicons", out)
    current = json.loads((out / "current.json").read_text(encoding="utf-8"))
    assert {k: pipeline.versions[k] for k in current} == current
