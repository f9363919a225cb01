"""The training notebooks as users open and run them: headless from any directory, and in a
notebook kernel started in the repository root or in training/; and ``pingjia train`` /
``pingjia eval`` calling the training library in-process (no training/*.py subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import ROOT, needs_models

DRIVERS = ("train_sentiment.py", "train_aspects.py", "evaluate.py")
TRAINING = ROOT / "training"


def first_code_cell(name: str) -> str:
    """The driver's set-up cell (imports, arguments), as a notebook kernel would run it."""
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(TRAINING / name)
    return next(c.source for c in nb.cells if c.cell_type == "code")


def run_as_kernel(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` executed the way a Jupyter kernel does: no ``__file__``, the kernel's own
    arguments in sys.argv, the working directory wherever the notebook server started."""
    wrapper = (
        "import sys\nsys.argv = ['ipykernel_launcher.py', '-f', '/tmp/kernel-1.json']\n"
        f"exec(compile({code!r}, '<cell>', 'exec'), {{'__name__': '__main__'}})\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PINGJIA_") and k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", wrapper], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.mark.slow  # a Python process per notebook and working directory
@pytest.mark.slow
@pytest.mark.parametrize("cwd", [ROOT, TRAINING], ids=["repo-root", "training"])
@pytest.mark.parametrize("name", DRIVERS)
def test_notebook_set_up_cell_finds_the_library_and_the_data(name, cwd):
    probe = (
        "\nimport json\nimport training\nprint(json.dumps({'repo': str(REPO), 'library': training.__file__, "
        "'data': str(args.data)}))\n"
    )
    proc = run_as_kernel(first_code_cell(name) + probe, cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(seen["repo"]) == ROOT
    assert Path(seen["library"]) == TRAINING / "__init__.py"
    assert Path(seen["data"]) == ROOT.parent / "shared" / "data"  # not relative to the kernel's cwd


@pytest.mark.parametrize("name", DRIVERS)
def test_drivers_are_percent_notebooks(name):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(TRAINING / name)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and "code" in kinds
    assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"


@pytest.mark.parametrize("name", DRIVERS)
def test_drivers_run_headless_from_another_directory(name, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(TRAINING / name), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: ") and "--data" in proc.stdout


@pytest.mark.slow
def test_sentiment_driver_stops_on_a_bad_row_with_exit_2(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews_train.csv").write_text(
        "domain,category,label,review\nshopping,书籍,1,好书\nhotel,酒店,1,不错\n", encoding="utf-8"
    )
    (data / "aspects_train.jsonl").write_text('{"text": "好", "sentiment": "pos", "aspects": []}\n', encoding="utf-8")
    out = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, str(TRAINING / "train_sentiment.py"), "--data", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "error: " in proc.stderr and "reviews_train.csv:3: domain must be" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_aspects_driver_stops_on_a_bad_row_with_exit_2(tmp_path):
    data = tmp_path / "labels.jsonl"
    data.write_text('{"text": "发货太慢", "aspects": []}\n{"text": "好", "aspects": "none"}\n', encoding="utf-8")
    out = tmp_path / "models"
    proc = subprocess.run(
        [sys.executable, str(TRAINING / "train_aspects.py"), "--data", str(data), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert "labels.jsonl:2:" in proc.stderr
    assert not out.exists()


@pytest.mark.slow
@needs_models
def test_evaluate_notebook_runs_in_a_kernel_started_in_training(tmp_path):
    """Every code cell of evaluate.py, as Jupyter runs them from training/, on a small file."""
    jupytext = pytest.importorskip("jupytext")
    labels = tmp_path / "few.jsonl"
    labels.write_text(
        '{"text": "发货太慢了，客服也不耐烦", "sentiment": "neg", "aspects": ['
        '{"aspect": "logistics", "polarity": "neg"}, {"aspect": "attitude", "polarity": "neg"}]}\n'
        '{"text": "质量很好", "sentiment": "pos", "aspects": [{"aspect": "quality", "polarity": "pos"}]}\n',
        encoding="utf-8",
    )
    cells = [c.source for c in jupytext.read(TRAINING / "evaluate.py").cells if c.cell_type == "code"]
    code = (
        cells[0]
        + f"\nconfig = E.EvalConfig(data=Path({str(labels)!r}), out=Path({str(tmp_path)!r}))\n"
        + "\n".join(cells[1:])
    )
    proc = run_as_kernel(code, TRAINING)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "eval-few.jsonl.json").read_text(encoding="utf-8"))
    assert report["rows"] == 2 and report["aspects"]["pairs"]["logistics:negative"]["support"] == 1


def test_pingjia_train_calls_the_library_in_process(tmp_path, monkeypatch):
    from training import aspects_run, chat_run, sentiment_run

    seen = []
    monkeypatch.setattr(sentiment_run, "train_sentiment", lambda config: seen.append(config))
    monkeypatch.setattr(aspects_run, "train_aspects", lambda config: seen.append(config))
    monkeypatch.setattr(chat_run, "train_chat", lambda config: seen.append(config))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "d", "--out", "m", "--corpus", "none"]) == 0
    sentiment, aspects, chat = seen
    assert isinstance(chat, chat_run.ChatConfig) and chat.out == (tmp_path / "m").resolve()
    assert isinstance(sentiment, sentiment_run.SentimentConfig) and isinstance(aspects, aspects_run.AspectsConfig)
    assert sentiment.data == aspects.data == (tmp_path / "d").resolve()
    assert sentiment.out == aspects.out == (tmp_path / "m").resolve()
    assert aspects.corpus == "none" and not sentiment.dry_run


def test_pingjia_train_stops_on_a_bad_row_before_writing(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews_train.csv").write_text("text,label\n好,maybe\n", encoding="utf-8")
    (data / "aspects_train.jsonl").write_text('{"text": "好", "sentiment": "pos", "aspects": []}\n', encoding="utf-8")
    out = tmp_path / "models"
    assert main(["train", "--only", "sentiment", "--data", str(data), "--out", str(out)]) == 2
    assert "reviews_train.csv:2: label must be" in capsys.readouterr().err
    assert not out.exists()


def test_pingjia_eval_names_a_missing_file(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path / "nowhere.jsonl")]) == 2
    assert "nowhere.jsonl: file not found" in capsys.readouterr().err
