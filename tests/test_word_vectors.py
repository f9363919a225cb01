"""The corpus block (word vectors + word polarity), the labelled-data readers, and the analysts'
loop end to end on tiny files: aspect training with a corpus, then the service loads the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.pipeline import aspect_model as AM
from app.pipeline.artifacts import ArtifactError
from app.pipeline.word_vectors import CorpusWords
from training.aspects_run import AspectsConfig, AspectsTraining
from training.data import LabelledDataError, read_binary_csv
from training.word_vectors import fit_corpus_words

# A toy corpus: delivery words co-occur with each other, food words with each other; 快/香 in
# positive reviews, 慢/难吃 in negative ones.
POS = [
    ["快递", "很", "快", "送货", "及时"],
    ["菜", "很", "香", "味道", "好吃"],
    ["物流", "快", "送货", "快递"],
    ["味道", "香", "菜", "好吃"],
]
NEG = [
    ["快递", "太", "慢", "送货", "物流"],
    ["菜", "难吃", "味道", "差"],
    ["物流", "慢", "快递", "送货"],
    ["味道", "难吃", "菜", "差"],
]


@pytest.fixture(scope="module")
def words() -> CorpusWords:
    tokens = (POS + NEG) * 6
    return fit_corpus_words(tokens, ([1] * len(POS) + [0] * len(NEG)) * 6, dims=4, min_count=5)


def test_vectors_group_words_that_share_contexts(words):
    v = {w: words.vectors[i] for i, w in enumerate(words.vocab)}
    assert float(v["快递"] @ v["物流"]) > float(v["快递"] @ v["味道"])
    assert float(v["菜"] @ v["味道"]) > float(v["菜"] @ v["送货"])


def test_polarity_and_unknown_words(words):
    out = words.transform([["快递", "快"], ["菜", "难吃"], ["从未见过"], []])
    assert out.shape == (4, words.width) == (4, 5)
    assert out[0, 0] > 0 > out[1, 0]  # learnt polarity, squashed to (-1, 1)
    assert np.allclose(np.linalg.norm(out[:2, 1:], axis=1), 1.0, atol=1e-5)
    assert not out[2:, 1:].any()  # nothing known: no vector,
    assert np.allclose(out[2:, 0], np.tanh(words.intercept))  # and the polarity prior
    assert np.array_equal(words.transform([["快递", "快"]]), words.transform([["快递", "快"]]))


def test_state_round_trip_and_bad_state(words):
    again = CorpusWords.from_state(words.state("c_"), "c_")
    assert again.vocab == words.vocab
    assert np.allclose(again.transform([["物流", "慢"]]), words.transform([["物流", "慢"]]))
    with pytest.raises(ValueError, match="polarity"):
        CorpusWords(words.vocab, words.idf, words.vectors, words.polarity[:-1], 0.0)


@pytest.mark.parametrize(
    "content, message",
    [
        ("text,label\n好,1\n坏,maybe\n", "x.csv:3: label must be"),
        ("text,label\n好,1\n,0\n", "x.csv:3: empty text"),
        ("content,label\n好,1\n", "x.csv:1: header must name a text"),
        ("text,label\n", "x.csv: no rows"),
    ],
)
def test_binary_csv_rows_name_their_line(tmp_path, content, message):
    (tmp_path / "x.csv").write_text(content, encoding="utf-8")
    with pytest.raises(LabelledDataError, match=message):
        read_binary_csv(tmp_path / "x.csv")


def test_binary_csv_accepts_review_column_and_word_labels(tmp_path):
    (tmp_path / "r.csv").write_text("domain,label,review\nwaimai,pos,好吃\nshopping,negative,太慢\n", encoding="utf-8")
    rows = read_binary_csv(tmp_path / "r.csv")
    assert [(r.line, r.text, r.label, r.domain) for r in rows] == [(2, "好吃", 1, "waimai"), (3, "太慢", 0, "shopping")]


def _tiny_training_files(tmp_path: Path) -> tuple[Path, Path]:
    labelled = [
        ("发货太慢了，等了一周", [("logistics", "neg")]),
        ("物流很快，第二天就到", [("logistics", "pos")]),
        ("质量很差，用两天就坏了", [("quality", "neg")]),
        ("质量很好，做工精细", [("quality", "pos")]),
        ("客服态度很差，爱答不理", [("attitude", "neg")]),
        ("客服很耐心，态度很好", [("attitude", "pos")]),
    ]
    lines = []
    for k in range(5):  # five variants of each, so every pair has enough rows for 2-fold calibration
        for text, pairs in labelled:
            lines.append(
                json.dumps(
                    {
                        "id": f"{k}-{text}",
                        "text": text + "！" * (k + 1),
                        "sentiment": pairs[0][1],
                        "aspects": [{"aspect": a, "polarity": p} for a, p in pairs],
                    },
                    ensure_ascii=False,
                )
            )
    data = tmp_path / "labels.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.csv"
    reviews = [
        "物流很快，快递小哥很好",
        "快递很慢，物流太差",
        "质量很好，很满意",
        "质量太差，不满意",
        "客服态度好，很耐心",
        "客服态度差，不耐烦",
    ]
    corpus.write_text(
        "text,label\n" + "".join(f"{t}{'！' * k},{1 - i % 2}\n" for k in range(6) for i, t in enumerate(reviews)),
        encoding="utf-8",
    )
    return data, corpus


@pytest.mark.slow
def test_analyst_loop_trains_with_a_corpus_and_the_service_loads_it(tmp_path, lexicon):
    data, corpus = _tiny_training_files(tmp_path)
    out = tmp_path / "models"
    AspectsTraining(AspectsConfig(data=data, corpus=str(corpus), out=out, folds=0, inner_folds=2)).run()
    pointer = json.loads((out / "current.json").read_text(encoding="utf-8"))
    metrics = json.loads((out / "aspects" / pointer["aspects"] / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["corpus"]["file"] == "corpus.csv" and metrics["corpus"]["rows"] == 36
    model = AM.load_aspect_model(out, lexicon)
    assert isinstance(model, AM.AspectModel) and model.featurizer.corpus is not None
    state = dict(model.state())
    with pytest.raises(ArtifactError, match="inconsistent"):  # corpus block and weights disagree
        AM.AspectModel({**state, "corpus_vectors": state["corpus_vectors"][:, :-1]}, "x")


@pytest.mark.slow
def test_corpus_file_errors_stop_training_before_writing(tmp_path):
    data, corpus = _tiny_training_files(tmp_path)
    corpus.write_text("text,label\n好,1\n坏,maybe\n", encoding="utf-8")
    out = tmp_path / "models"
    with pytest.raises(LabelledDataError, match="corpus.csv:3: label must be"):
        AspectsTraining(AspectsConfig(data=data, corpus=str(corpus), out=out, folds=0)).run()
    assert not out.exists()


@pytest.mark.slow
def test_full_run_reads_every_round_and_reports_curve_previous_data_and_left_out_domains(tmp_path, monkeypatch):
    from training import aspects_run

    data, corpus = _tiny_training_files(tmp_path)
    rows = data.read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "rounds"
    folder.mkdir()
    for k, name in enumerate(("aspects_train.jsonl", "aspects_train_2.jsonl")):
        lines = [json.dumps({**json.loads(r), "domain": ("shopping", "waimai")[i % 2]}) for i, r in enumerate(rows)]
        (folder / name).write_text("\n".join(lines[k::2]) + "\n", encoding="utf-8")
    monkeypatch.setattr(aspects_run, "MIN_LEFT_OUT_ROWS", 5)
    config = AspectsConfig(data=folder, corpus=str(corpus), out=tmp_path / "models", folds=2, inner_folds=2, full=True)
    run = AspectsTraining(config).run()
    m = run.metrics
    assert [f["file"] for f in m["data"]["files"]] == ["aspects_train.jsonl", "aspects_train_2.jsonl"]
    assert m["data"]["rows"] == len(rows) and m["data"]["near_duplicate_groups"] == 6  # "！" variants share one
    assert set(m["learning_curve"]) == {"0.25", "0.5", "1.0"}
    assert m["previous_data"]["train_file"] == "aspects_train.jsonl"
    assert set(m["leave_one_out"]) == {"domain:shopping", "domain:waimai"}
    assert sum(v["rows"] for v in m["leave_one_out"].values()) == len(rows)
    assert set(m["cv_by_domain"]) == {"shopping", "waimai"}
    card = (run.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "Learning curve" in card and "Unseen domains" in card and "previous model's data" in card
