"""The layers of app/ point one way: ``main, cli, serve -> api -> jobs, conversations,
integrations -> pipeline -> core`` (DESIGN.md). A module may import its own layer and the
layers below it, never one above — not even inside a function, where an import that dodges
a cycle hides the cycle instead of removing it. The serving code never imports ``training``;
only the command line does, for ``pingjia train`` and ``pingjia eval``.

``integrations`` (engines such as Spark that call the pipeline from outside) may use the jobs'
report and scoring code and the conversation engine, and only the command line imports it;
``pyspark`` is imported there and nowhere else, so the service runs without the spark extra.

The check reads the source with ``ast`` (nothing is imported), so it also catches imports
that only run on some code path; one more test imports the service in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"

# The rank of each layer: a module imports only from its own rank or lower ones.
LAYERS = {
    "core": 0,
    "pipeline": 1,
    "jobs": 2,
    "conversations": 2,
    "integrations": 2,
    "api": 3,
    "main": 4,
    "cli": 4,
    "serve": 4,
}
# Peers of one rank stay apart, except these (importer, imported): batch jobs score
# conversations; integrations reuse the jobs' report and the conversation engine;
# ``pingjia serve`` runs the server.
PEER_EDGES = {("jobs", "conversations"), ("integrations", "jobs"), ("integrations", "conversations"), ("cli", "serve")}
INTEGRATION_CALLERS = {"cli", "integrations"}  # ``pingjia spark-score``; nothing else imports them
SPARK_ROOTS = {"pyspark", "py4j"}  # the spark extra: imported by integrations only
FORBIDDEN_ROOTS = {"training"}  # the training library and notebooks: never imported by the service,
TRAINING_CALLERS = {"app.cli"}  # only by `pingjia train` / `pingjia eval` (nothing imports app.cli)
# The web framework stays at the edge: these layers take plain settings and values, never a
# request or ``app.state``, so batch jobs, the CLI and tests can call them as they are.
WEB_FREE = {"pipeline", "jobs", "conversations", "integrations"}
WEB_ROOTS = {"fastapi", "starlette", "uvicorn"}


def module_name(path: Path, root: Path = APP) -> str:
    """``app/jobs/worker.py`` -> ``app.jobs.worker``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of an ``app.*`` module (``app.api.routes.jobs`` -> ``api``); None for ``app`` itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "app" else None


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module the source imports, at any depth, as absolute names with line numbers;
    ``importlib.import_module("...")`` with a literal name counts too."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from app.conversations import present`` may name a submodule: check both.
            out += [(node.lineno, f"{target}.{a.name}") for a in node.names if a.name != "*"]
            out.append((node.lineno, target))
        elif (
            isinstance(node, ast.Call)
            and _is_import_call(node.func)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def _is_import_call(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id in {"__import__", "import_module"}) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What is wrong with the imports of one module of app/ (empty: nothing)."""
    here = layer_of(module)
    if here is not None and here not in LAYERS:
        return [f"{module}: layer {here!r} has no rank in LAYERS; give it one"]
    problems, seen = [], set()
    for line, target in imported_modules(source, module, is_package):
        root = target.split(".")[0]
        if (line, root, layer_of(target)) in seen:  # ``from app.api import present``: once, not twice
            continue
        seen.add((line, root, layer_of(target)))
        if root in FORBIDDEN_ROOTS and module not in TRAINING_CALLERS:
            problems.append(f"{module}:{line} imports {target} (the service never imports {root})")
            continue
        if root in WEB_ROOTS and here in WEB_FREE:
            problems.append(f"{module}:{line} imports {target}: {here} knows nothing of the web framework")
            continue
        if root in SPARK_ROOTS and here != "integrations":
            problems.append(f"{module}:{line} imports {target}: only app.integrations imports Spark (an extra)")
            continue
        there = layer_of(target)
        if there == "integrations" and here is not None and here not in INTEGRATION_CALLERS:
            problems.append(f"{module}:{line} imports {target}: only the command line imports integrations")
            continue
        if root != "app" or here is None or there is None or there == here:
            continue
        if there not in LAYERS:
            problems.append(f"{module}:{line} imports {target}, which is in no layer")
        elif LAYERS[there] > LAYERS[here]:
            problems.append(
                f"{module}:{line} imports {target}: {here} (rank {LAYERS[here]}) may not "
                f"import {there} (rank {LAYERS[there]})"
            )
        elif LAYERS[there] == LAYERS[here] and (here, there) not in PEER_EDGES:
            problems.append(f"{module}:{line} imports {target}: peers {here} and {there} stay apart")
    return problems


def app_modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def test_every_package_of_app_has_a_layer():
    packages = {p.name for p in APP.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in APP.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYERS), sorted((packages | modules) - set(LAYERS))


def test_no_module_of_app_imports_a_higher_layer_or_training():
    problems = [
        p
        for path in app_modules()
        for p in violations(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("app.jobs.scoring", "from app.api import present\n", "jobs (rank 2) may not import api"),
        ("app.pipeline.engine", "def f():\n    from app.jobs.store import open_store\n", "pipeline (rank 1)"),
        ("app.core.config", "import app.pipeline.engine as e\n", "core (rank 0) may not import pipeline"),
        ("app.conversations.present", "from ..api import present\n", "imports app.api"),
        ("app.conversations.engine", "from app.jobs import scoring\n", "peers conversations and jobs"),
        ("app.pipeline.engine", "import importlib\nimportlib.import_module('app.main')\n", "imports app.main"),
        ("app.main", "def train():\n    from training.fit import fit\n", "never imports training"),
        ("app.api.routes.jobs", "import training\n", "never imports training"),
        ("app.serve", "from app.cli import cmd_train\n", "peers serve and cli"),
        ("app.widgets.x", "import os\n", "no rank"),
        ("app.jobs.worker", "from fastapi import FastAPI\n", "knows nothing of the web framework"),
        ("app.api.routes.jobs", "from app.integrations.spark import score\n", "only the command line imports"),
        ("app.main", "def f():\n    import app.integrations.spark\n", "only the command line imports"),
        ("app.jobs.report", "import pyspark.sql\n", "only app.integrations imports Spark"),
        ("app.pipeline.engine", "from py4j.java_gateway import JavaGateway\n", "only app.integrations imports Spark"),
        ("app.integrations.spark", "from app.api import schemas\n", "integrations (rank 2) may not import api"),
    ],
)
def test_the_checker_catches(module, source, expected):
    found = violations(source, module)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    "module, source",
    [
        ("app.main", "from app.api.routes import jobs\nfrom app.jobs.worker import start_jobs\n"),
        ("app.jobs.scoring", "from app.conversations import present\nfrom app.pipeline import present\n"),
        ("app.api.routes.admin", "from .. import deps\nfrom app.pipeline.reload import reload_candidate\n"),
        ("app.pipeline.engine", "from app.core.errors import EmptyText\nimport numpy\n"),
        ("app.cli", "def cmd_train(args):\n    from training.sentiment_run import train_sentiment\n"),
        ("app.cli", "def cmd_spark_score(args):\n    from app.integrations.spark_io import spark_score\n"),
        ("app.integrations.spark", "import pyspark\nfrom app.jobs.service import summary_of\n"),
        ("app.integrations.spark_rows", "from app.conversations import analyze_conversations\n"),
    ],
)
def test_the_checker_allows(module, source):
    assert violations(source, module) == []


def test_the_service_and_the_command_line_start_without_spark():
    """Importing the app, the CLI and the jobs (in a fresh interpreter) loads no pyspark: the
    service runs where the spark extra is not installed, and ``pingjia --help`` stays quick."""
    code = (
        "import sys, app.main, app.cli, app.jobs.local, app.jobs.worker, app.pipeline.engine\n"
        "app.main.create_app()\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'pyspark', 'py4j'})\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=APP.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout
