"""The trained aspect scorer: shipped-model behaviour, offsets, loading, data validation, and a
held-out check of the targets on the shared data (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.pipeline import aspect_model as AM
from app.pipeline import present
from app.pipeline.artifacts import ArtifactError, pointer
from app.pipeline.aspects import LexiconAspectScorer
from app.pipeline.engine import Pipeline
from tests.conftest import FakeSentiment, assert_spans
from training import aspects as AT
from training.aspects_run import AspectsConfig, AspectsTraining
from training.data import LabelledDataError, annotation_files, read_annotations, read_binary_csv
from training.metrics import label_matrix, pair_metrics
from training.splits import near_duplicate_groups

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
has_aspects = (MODELS / "current.json").is_file() and "aspects" in json.loads(
    (MODELS / "current.json").read_text(encoding="utf-8")
)
needs_aspects = pytest.mark.skipif(not has_aspects, reason="no aspects model in models/ (run `pingjia train`)")
needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "aspects_train.jsonl").is_file(),
    reason=f"{SHARED_DATA} is absent (training data is not in the repo)",
)


@pytest.fixture(scope="module")
def model(lexicon):
    return AM.load_aspect_model(MODELS, lexicon)


@pytest.fixture(scope="module")
def pipe(lexicon, segmenter, model):
    return Pipeline(lexicon=lexicon, segmenter=segmenter, sentiment=FakeSentiment(), aspects=model)


def _analyse(pipe, text: str) -> dict:
    result = present.analysis(pipe.analyze(text), pipe.versions)
    assert_spans(text, result)
    return result


@needs_aspects
def test_shipped_model_is_the_trained_one(model):
    assert isinstance(model, AM.AspectModel)
    assert model.version == pointer(MODELS)["aspects"]


@needs_aspects
@pytest.mark.parametrize(
    "text",
    [
        "发货太慢了，客服也不耐烦",
        "發貨太慢了，客服也不耐煩",  # traditional characters
        "  發貨\u200b太慢了，ＡＢＣ客服也不耐煩！！",  # zero-width space, full-width letters, leading blanks
    ],
)
def test_root_causes_with_evidence_offsets(pipe, text):
    result = _analyse(pipe, text)
    causes = {c["cause"]: c for c in result["root_causes"]}
    assert {"logistics", "attitude"} <= set(causes)
    assert any("慢" in ev["text"] for ev in causes["logistics"]["evidence"])
    assert any("耐" in ev["text"] for ev in causes["attitude"]["evidence"])
    for c in result["root_causes"]:
        assert 0.0 <= c["score"] <= 1.0


@needs_aspects
def test_praise_is_a_positive_aspect_not_a_root_cause(pipe):
    result = _analyse(pipe, "客服很耐心")
    assert ("attitude", "positive") in {(a["aspect"], a["polarity"]) for a in result["aspects"]}
    assert "attitude" not in {c["cause"] for c in result["root_causes"]}


@needs_aspects
@pytest.mark.parametrize(
    "text, aspect",
    [
        ("客服回复很及时", "responsiveness"),  # the slip issue 12 names: was responsiveness/negative 0.80
        ("客服回复很及时，态度也好", "responsiveness"),
        ("快递很快，第二天就到了", "logistics"),
    ],
)
def test_praised_service_is_never_its_root_cause(pipe, text, aspect):
    result = _analyse(pipe, text)
    assert aspect not in {c["cause"] for c in result["root_causes"]}, result["aspects"]


def test_a_finding_takes_the_polarity_of_its_clause(lexicon, segmenter):
    """Fallback evidence decides: the aspect's own hits there flip the polarity; only other
    dimensions' hits, all of the other polarity, drop the finding; no hits leave it alone."""
    p = Pipeline(lexicon=lexicon, segmenter=segmenter, sentiment=FakeSentiment(), aspects=LexiconAspectScorer("x"))
    resp_neg, resp_pos = AM.PAIRS.index(("responsiveness", "negative")), AM.PAIRS.index(("responsiveness", "positive"))
    att_neg = AM.PAIRS.index(("attitude", "negative"))
    praise, complaint = p.make_doc("客服回复很及时"), p.make_doc("客服回复太慢了")
    assert AM._polarity_of_clauses(praise, resp_neg, [0]) == resp_pos
    assert AM._polarity_of_clauses(complaint, resp_neg, [0]) == resp_neg
    assert AM._polarity_of_clauses(praise, att_neg, [0]) is None  # a root cause on a praising clause
    assert AM._polarity_of_clauses(complaint, att_neg, [0]) == att_neg
    bare = p.make_doc("我买了一个杯子")
    assert not bare.hits and AM._polarity_of_clauses(bare, att_neg, [0]) == att_neg


@needs_aspects
def test_batch_is_one_matrix_call_and_matches_single_texts(pipe, model, monkeypatch):
    """A batch: its documents, then (if needed) the clauses of those that need them. One text:
    the document and all its clauses in one product. The findings are the same."""
    # 味道不错，就是分量有点少: its negative finding's evidence comes from the clause scores
    texts = ["物流很快，包装完好", "质量太差了，用了两天就坏了", "味道不错，就是分量有点少", "价格实惠，性价比高"]
    texts += ["买了三个，第二天到的，孩子说穿着不舒服"]
    calls = []
    original = model.linear_parts
    monkeypatch.setattr(model, "linear_parts", lambda parts: calls.append(len(parts)) or original(parts))
    singles = []
    for t in texts:
        doc = pipe.make_doc(t)
        singles += model.score([doc])
        assert calls.pop() == 1 + (len(doc.clauses) if len(doc.clauses) > 1 else 0) and not calls
    batch = model.score([pipe.make_doc(t) for t in texts])
    assert batch == singles
    assert calls[0] == len(texts) and len(calls) <= 2
    monkeypatch.setattr(AM, "CLAUSES_AHEAD_BELOW", 0)  # one text scored as a batch is
    assert [model.score([pipe.make_doc(t)])[0] for t in texts] == singles


@needs_aspects
def test_clause_scores_cover_every_clause(pipe, model):
    doc = pipe.make_doc("房间很干净，但是位置很难找，前台态度也一般")
    (scores,) = model.clause_scores([doc])
    assert len(scores) == len(doc.clauses) and all(len(row) == 18 for row in scores)


def test_no_artifact_falls_back_to_lexicon(tmp_path, lexicon):
    scorer = AM.load_aspect_model(tmp_path, lexicon)
    assert isinstance(scorer, LexiconAspectScorer)
    assert scorer.version == f"lexicon-{lexicon.version}"


@needs_aspects
def test_saved_versions_without_pointer_are_refused(tmp_path, lexicon):
    version = pointer(MODELS)["aspects"]
    shutil.copytree(MODELS / "aspects" / version, tmp_path / "aspects" / version)
    with pytest.raises(ArtifactError, match="names none"):
        AM.load_aspect_model(tmp_path, lexicon)
    assert isinstance(AM.load_aspect_model(tmp_path, lexicon, version=version), AM.AspectModel)


@needs_aspects
def test_inconsistent_state_is_refused(model):
    state = dict(model.state())
    with pytest.raises(ArtifactError, match="schema"):
        AM.AspectModel({**state, "schema": 99}, "x")
    with pytest.raises(ArtifactError, match="inconsistent"):
        AM.AspectModel({**state, "idf": state["idf"][:-1]}, "x")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "好", "aspects": []', ":2: not valid JSON"),
        ('{"text": "", "aspects": []}', ":2: 'text' must be a non-empty string"),
        ('{"text": "好", "aspects": [{"aspect": "speed", "polarity": "neg"}]}', ":2: aspects[0]"),
        ('{"text": "好", "aspects": [{"aspect": "price", "polarity": "bad"}]}', ":2: aspects[0]"),
        ('{"text": "好"}', ":2: 'aspects' must be a list"),
        ('{"text": "好", "aspects": [], "sentiment": "happy"}', ":2: 'sentiment'"),
        ("[1, 2]", ":2: expected a JSON object"),
    ],
)
def test_malformed_annotation_rows_name_their_line(tmp_path, line, message):
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"text": "发货太慢", "aspects": [{"aspect": "logistics", "polarity": "neg"}]}\n' + line + "\n",
        encoding="utf-8",
    )
    with pytest.raises(LabelledDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_annotations(path)


@pytest.mark.slow
def test_training_stops_on_a_bad_row_before_writing(tmp_path):
    data = tmp_path / "labels.jsonl"
    data.write_text('{"text": "发货太慢", "aspects": []}\n{"text": "好", "aspects": "none"}\n', encoding="utf-8")
    out = tmp_path / "models"
    with pytest.raises(LabelledDataError, match="labels.jsonl:2:"):
        AspectsTraining(AspectsConfig(data=data, out=out)).run()
    assert not out.exists()


def test_threshold_search():
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    t = np.array([1, 1, 0, 1, 0])
    thr, f1 = AT.best_threshold(p, t)
    assert 0.2 < thr <= 0.8 or 0.1 < thr <= 0.2
    assert f1 == pytest.approx(max(2 * 2 / (2 + 3), 2 * 3 / (4 + 3)))
    assert AT.best_threshold(p, np.zeros(5, int)) == (AM.NEVER, 0.0)
    assert 0.05 <= AT.shared_threshold(p.reshape(-1, 1), t.reshape(-1, 1)) <= 0.9


# ------------------------------------------------------------ the targets, on held-out data


@pytest.fixture(scope="module")
def heldout(lexicon, segmenter):
    """Train on 80% of the shared labelled texts (both rounds; a text and its near-duplicates on
    one side; inner 3-fold, with the corpus block learnt from reviews_train.csv), score the other
    20%: model and lexicon."""
    rows = [r for f in annotation_files(SHARED_DATA) for r in read_annotations(f)]
    p = Pipeline(
        lexicon=lexicon, segmenter=segmenter, sentiment=FakeSentiment(), aspects=LexiconAspectScorer(lexicon.version)
    )
    docs = [p.make_doc(r.text) for r in rows]
    y = label_matrix(r.pairs for r in rows)
    test = near_duplicate_groups([r.text for r in rows]) % 5 == 0
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    corpus, _ = AT.corpus_block(read_binary_csv(SHARED_DATA / "reviews_train.csv"), segmenter, {d.text for d in docs})
    state, _ = AT.fit_state([docs[i] for i in train_idx], y[train_idx], lexicon.targets, inner_folds=3, corpus=corpus)
    m = AM.AspectModel(state, "heldout")
    test_docs = [docs[i] for i in test_idx]
    pred = label_matrix([(f.aspect, f.polarity) for f in found] for found in m.score(test_docs))
    lex = AM.lexicon_pairs(test_docs)
    return pair_metrics(y[test_idx], pred), pair_metrics(y[test_idx], lex)


@pytest.mark.slow
@needs_data
def test_heldout_model_beats_lexicon_and_holds_its_level(heldout):
    model, lexicon = heldout
    # Floors a little under this split's figures (HELDOUT_FIGURES; 5-fold grouped CV over all 3,499
    # texts 0.779 / 0.762 / 0.646): catches regressions, e.g. a corpus block that stopped contributing.
    assert model["aspect_polarity"]["micro_f1"] >= 0.75
    assert model["root_causes"]["micro_f1"] >= 0.73
    assert model["root_causes"]["macro_f1"] >= 0.60
    assert model["root_causes"]["micro_f1"] >= lexicon["root_causes"]["micro_f1"] + 0.2


@pytest.mark.slow
@needs_data
@pytest.mark.xfail(
    strict=False,
    reason="known shortfall: aspect-polarity 5-fold CV micro-F1 0.779 (target 0.85); see docs/models.md",
)
def test_target_aspect_polarity_micro(heldout):
    assert heldout[0]["aspect_polarity"]["micro_f1"] >= 0.85


@pytest.mark.slow
@needs_data
@pytest.mark.xfail(
    strict=False,
    reason="known shortfall: root-cause 5-fold CV micro-F1 0.762 (target 0.85): attitude, "
    "responsiveness and after_sales are confused with each other; see docs/models.md",
)
def test_target_root_cause_micro(heldout):
    assert heldout[0]["root_causes"]["micro_f1"] >= 0.85


@pytest.mark.slow
@needs_data
@pytest.mark.xfail(
    strict=False,
    reason="known shortfall: root-cause 5-fold CV macro-F1 0.646 (target 0.75); competence (66) "
    "and other (65) stay under 0.4; see docs/models.md",
)
def test_target_root_cause_macro(heldout):
    assert heldout[0]["root_causes"]["macro_f1"] >= 0.75


@pytest.mark.slow
def test_eval_command_stops_on_a_bad_row(tmp_path, capfd):
    from app.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n好,1\n坏,maybe\n", encoding="utf-8")
    assert main(["eval", "--data", str(bad)]) == 2
    assert "bad.csv:3: label must be" in capfd.readouterr().err


def test_combine_and_platt_are_the_documented_formulas():
    """combine() and platt() are written for few numpy calls; they must stay these formulas
    bit for bit (the shipped models' thresholds were fitted on them)."""
    rng = np.random.default_rng(3)
    lin = rng.normal(0, 3, size=(7, AM.N_LINEAR))
    raw = AM.combine(lin)
    for i in range(len(lin)):
        for j, (aspect, polarity) in enumerate(AM.PAIRS):
            k = AM.ASPECTS.index(aspect)
            presence = lin[i, AM.PRESENCE_SCORES.start + k]
            lean = lin[i, AM.POLARITY_SCORES.start + k]
            expected = lin[i, j] + min(presence, -lean if polarity == "positive" else lean)
            assert raw[i, j] == expected
    x = np.concatenate([raw.ravel(), [-1e9, -36.0, -35.0, 0.0, 35.0, 36.0, 1e9]])
    a, c = rng.normal(1, 0.5, size=len(x)), rng.normal(0, 1, size=len(x))
    assert np.array_equal(AM.platt(x, a, c), 1.0 / (1.0 + np.exp(-np.clip(x * a + c, -35, 35))))


def test_pair_scores_kernel_is_combine_platt_and_decide():
    """``AspectModel.score`` reads its pairs from one compiled call: combine()'s raw scores bit
    for bit, platt()'s probabilities but for the last bit (the C library's exp, not numpy's),
    decide()'s decisions, the lexicon-union path included."""
    from app.pipeline import _native

    rng = np.random.default_rng(5)
    n_docs = 3
    lin = rng.normal(0, 3, size=(8, AM.N_LINEAR))
    lin[1] *= 40  # past the clip at +-35
    p = AM.N_PAIRS
    a, c = rng.normal(1, 0.5, p), rng.normal(0, 1, p)
    thr, union = rng.uniform(0.2, 0.8, p), rng.integers(0, 2, p).astype(np.uint8)
    lex = rng.integers(0, 2, (n_docs, p)).astype(np.uint8)
    tables = (
        np.arange(p, dtype=np.int32),
        AM._PRESENCE_OF_PAIR.astype(np.int32),
        AM._POLARITY_OF_PAIR.astype(np.int32),
        AM._POLARITY_SIGN,
        a,
        c,
        thr,
        union,
    )
    probs, decided, clause_raw = _native.pair_scores(lin, AM.N_LINEAR, n_docs, *tables, lex.tobytes())
    raw = AM.combine(lin)
    assert np.array_equal(np.array(clause_raw), raw[n_docs:])
    expected = AM.platt(raw[:n_docs], a, c)
    np.testing.assert_allclose(probs, expected, rtol=1e-15, atol=0)
    want = (expected >= thr) | (union.astype(bool) & lex.astype(bool))
    assert decided == [np.flatnonzero(row).tolist() for row in want]
    assert any(decided) and not all(map(all, want))
    assert _native.pair_scores(lin[:0], AM.N_LINEAR, 0, *tables, b"") == ([], [], [])
    bad_index = (np.full(p, AM.N_LINEAR, dtype=np.int32), *tables[1:])
    for args in (
        (lin, AM.N_LINEAR, n_docs + 99, *tables, lex.tobytes()),  # more documents than rows
        (lin, AM.N_LINEAR, n_docs, *tables, b"\x00"),  # lexicon of the wrong size
        (lin, AM.N_LINEAR + 1, n_docs, *tables, lex.tobytes()),  # rows of the wrong width
        (lin, AM.N_LINEAR, n_docs, *bad_index, lex.tobytes()),
    ):
        with pytest.raises(ValueError):
            _native.pair_scores(*args)


@needs_aspects
def test_score_single_and_batched_agree(model, pipe):
    texts = [
        "物流很快，质量不错",
        "客服态度很差，一直不回复",
        "包装破损了，但是东西还行",
        "一般",
        "发货太慢了，等了一周",
    ]
    docs = [pipe.make_doc(t) for t in texts]
    assert model.score(docs) == [model.score([d])[0] for d in docs]


def test_add_lex_kernel_sums_the_block_and_refuses_bad_arguments():
    """The lexicon block's kernel (``linear_parts`` against ``linear`` in test_features checks it
    on real documents): entries summed per cell, the size columns set, scaled, times weights."""
    from app.pipeline import _native

    m = len(AM.LEX_FEATURES)
    w = np.arange(m * 2, dtype=np.float32).reshape(m, 2)
    out = np.zeros((2, 2), dtype=np.float32)
    args = ([1, 1, 0], [0, 0, 3], [0.5, 0.25, 1.0], [3, 10], [1, 2], AM._LEX_LEN, AM._LEX_CLAUSES, 2.0, w, out)
    _native.add_lex(*args)
    for i, x in enumerate(
        [{3: 2.0}, {0: 1.5}],
    ):
        x |= {AM._LEX_LEN: math.log1p([3, 10][i]) / 5 * 2.0, AM._LEX_CLAUSES: math.log1p([1, 2][i]) / 2 * 2.0}
        expected = np.zeros(2, dtype=np.float32)
        for j in sorted(x):
            expected += np.float32(x[j]) * w[j]
        assert out[i].tolist() == expected.tolist()
    for bad in (
        ([2], [0], [1.0]),  # a row past the rows
        ([0], [m], [1.0]),  # a column past the block
        ([0], [0], ["x"]),  # not a number
        ([0, 1], [0], [1.0]),  # lists of different lengths
    ):
        with pytest.raises((ValueError, TypeError)):
            _native.add_lex(*bad, *args[3:])
    with pytest.raises(ValueError):
        _native.add_lex(*args[:-1], np.zeros((2, 3), dtype=np.float32))  # out of the wrong width
