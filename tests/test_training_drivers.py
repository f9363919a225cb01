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


def test_pingjia_train_re_records_the_examples_only_when_it_trains_the_served_models(tmp_path, monkeypatch):
    from app.core.config import get_settings
    from training import aspects_run, chat_run, record_examples, sentiment_run

    for module, name in ((sentiment_run, "train_sentiment"), (aspects_run, "train_aspects"), (chat_run, "train_chat")):
        monkeypatch.setattr(module, name, lambda config: None)
    recorded = []
    monkeypatch.setattr(record_examples, "answers", lambda models, lexicons: {"analyze": {"from": models}})
    monkeypatch.setattr(record_examples, "write", recorded.append)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "d", "--out", "m"]) == 0
    assert recorded == []  # models elsewhere: what is served has not changed
    served = get_settings().models_dir.resolve()
    assert main(["train", "--data", "d", "--out", str(served)]) == 0
    assert recorded == [{"analyze": {"from": served}}]


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


# --- pingjia eval over a folder, --by-domain, and the "trained on" note (fake pipeline: fast) -------
EVAL_ROWS = {
    "aspects_train.jsonl": [
        ("shopping", "neg", "质量很差，做工粗糙", [("quality", "neg")]),
        ("shopping", "neg", "东西很好，就是物流太慢了", [("quality", "pos"), ("logistics", "neg")]),
        ("waimai", "neg", "送餐太慢了，饭都凉了", [("logistics", "neg"), ("quality", "neg")]),
    ],
    "aspects_train_2.jsonl": [
        ("shopping", "neg", "客服态度很差", [("attitude", "neg")]),
        ("waimai", "pos", "味道不错，价格实惠", [("quality", "pos"), ("price", "pos")]),
        ("waimai", None, "还没吃", []),
    ],
}


def write_eval_data(folder: Path) -> Path:
    folder.mkdir()
    for name, rows in EVAL_ROWS.items():
        lines = [
            json.dumps(
                {"domain": dom, "text": text, "aspects": [{"aspect": a, "polarity": p} for a, p in aspects]}
                | ({"sentiment": sentiment} if sentiment else {}),
                ensure_ascii=False,
            )
            for dom, sentiment, text, aspects in rows
        ]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "notes.jsonl").write_text("not an annotation file\n", encoding="utf-8")  # not aspects_train*
    return folder


@pytest.fixture
def served_fake(fake_pipeline, tmp_path, monkeypatch):
    """``pingjia eval`` on the fake pipeline; returns the models folder its note reads."""
    from training import evaluation

    models = tmp_path / "models"
    monkeypatch.setattr(evaluation, "served_pipeline", lambda config: (fake_pipeline, models))
    return models


def test_pingjia_eval_by_domain_reads_every_aspects_file_of_a_folder(served_fake, tmp_path, capsys):
    data = write_eval_data(tmp_path / "labels")
    assert main(["eval", "--data", str(data), "--by-domain", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "read aspects_train.jsonl (3 rows), aspects_train_2.jsonl (3 rows): 6 rows" in printed
    assert "root cause (negative)" in printed  # the overall per-cause table
    assert "domain shopping (3 rows)" in printed and "domain waimai (3 rows)" in printed

    report = json.loads((tmp_path / "out" / "eval-labels.json").read_text(encoding="utf-8"))
    assert [f["rows"] for f in report["files"]] == [3, 3] and report["rows"] == 6
    assert [Path(f["file"]).name for f in report["files"]] == ["aspects_train.jsonl", "aspects_train_2.jsonl"]
    by_domain = report["by_domain"]
    assert set(by_domain) == {"shopping", "waimai"}
    for dom, fig in by_domain.items():
        rows = [r for rs in EVAL_ROWS.values() for r in rs if r[0] == dom]
        assert fig["rows"] == len(rows)
        for pair, v in fig["aspects"]["pairs"].items():
            aspect, polarity = pair.split(":")
            assert v["support"] == sum((aspect, polarity[:3]) in r[3] for r in rows), (dom, pair)
        assert fig["sentiment"]["n"] == sum(r[1] is not None for r in rows)
        assert {"micro_f1", "macro_f1"} <= set(fig["aspects"]["root_causes"]) & set(fig["aspects"]["aspect_polarity"])
    assert by_domain["shopping"]["aspects"]["pairs"]["quality:negative"]["support"] == 1
    assert by_domain["waimai"]["aspects"]["pairs"]["logistics:negative"]["support"] == 1
    assert report["aspects"]["pairs"]["quality:negative"]["support"] == 2  # overall: both domains


def test_pingjia_eval_without_by_domain_has_no_domain_section(served_fake, tmp_path, capsys):
    data = write_eval_data(tmp_path / "labels")
    assert main(["eval", "--data", str(data / "aspects_train.jsonl"), "--out", str(tmp_path)]) == 0
    assert "domain shopping" not in capsys.readouterr().out
    report = json.loads((tmp_path / "eval-aspects_train.jsonl.json").read_text(encoding="utf-8"))
    assert "by_domain" not in report and report["rows"] == 3 and report["file"].endswith("aspects_train.jsonl")


@pytest.mark.parametrize("recorded", ["sha256", "files"])
def test_pingjia_eval_notes_the_files_the_aspects_model_was_trained_on(
    served_fake, fake_pipeline, tmp_path, capsys, recorded
):
    import hashlib

    from app.pipeline.artifacts import METRICS_FILE

    data = write_eval_data(tmp_path / "labels")
    sha = hashlib.sha256((data / "aspects_train_2.jsonl").read_bytes()).hexdigest()
    record = {"sha256": sha} if recorded == "sha256" else {"files": [{"file": "aspects_train_2.jsonl", "sha256": sha}]}
    version = served_fake / "aspects" / fake_pipeline.versions["aspects"]
    version.mkdir(parents=True)
    (version / METRICS_FILE).write_text(json.dumps({"format": 1, "kind": "aspects", "data": record}), encoding="utf-8")

    assert main(["eval", "--data", str(data)]) == 0
    assert "note: the aspects model was trained on aspects_train_2.jsonl;" in capsys.readouterr().out
    assert main(["eval", "--data", str(data / "aspects_train_2.jsonl")]) == 0
    assert "note: this is the file the aspects model was trained on" in capsys.readouterr().out
    assert main(["eval", "--data", str(data / "aspects_train.jsonl")]) == 0
    assert "note:" not in capsys.readouterr().out


def test_pingjia_eval_names_a_folder_without_aspects_files(tmp_path, capsys):
    assert main(["eval", "--data", str(tmp_path)]) == 2
    assert "no aspects_train*.jsonl in this folder" in capsys.readouterr().err
