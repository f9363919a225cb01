"""One taxonomy (issue 10): the codes in ``app.core.taxonomy`` are consistent with each other,
with the models shipped in models/, with the QA profile schema and with ``GET /v1/taxonomy``;
and no other module of app/ spells a list of them out again."""

from __future__ import annotations

import ast
import json

import pytest
from fastapi.testclient import TestClient

from app.conversations.profiles import Points, QAProfile, ResolutionRules, Weights
from app.core import taxonomy as T
from app.core.config import Settings
from app.main import create_app
from app.pipeline import aspect_model as AM
from tests.conftest import ROOT, needs_models

APP = ROOT / "app"
CODE_TUPLES = {
    name: value
    for name, value in vars(T).items()
    if name.isupper() and isinstance(value, tuple) and value and all(isinstance(v, str) for v in value)
}


@pytest.mark.parametrize("name", sorted(CODE_TUPLES))
def test_codes_are_distinct_identifiers(name):
    codes = CODE_TUPLES[name]
    assert len(set(codes)) == len(codes), name
    assert all(c.replace("_", "").replace(":", "").isalpha() and c == c.lower() for c in codes), name


def test_pairs_are_aspects_by_polarities_in_model_order():
    assert T.POLARITIES == ("positive", "negative")  # combine() reads positive, negative alternately
    assert T.PAIRS == tuple((a, p) for a in T.ASPECTS for p in T.POLARITIES)
    assert T.PAIR_CODES == tuple(f"{a}:{p}" for a, p in T.PAIRS)
    assert [T.PAIRS[j] for j in T.NEGATIVE_PAIRS] == [(a, "negative") for a in T.ASPECTS]
    assert (len(T.ASPECTS), T.N_PAIRS, len(T.NEGATIVE_PAIRS)) == (9, 18, 9)
    assert T.KEYWORD_DIMENSIONS == (*T.ASPECTS, T.GENERAL)


def test_aspect_model_layout_follows_the_taxonomy():
    """Direct scores per pair, then presence and polarity per aspect: 18 + 9 + 9 = 36 columns."""
    spans = [AM.DIRECT_SCORES, AM.PRESENCE_SCORES, AM.POLARITY_SCORES]
    assert [(s.start, s.stop) for s in spans] == [(0, 18), (18, 27), (27, 36)] and AM.N_LINEAR == 36
    assert AM.DIRECT_SCORES.stop - AM.DIRECT_SCORES.start == T.N_PAIRS


@needs_models
def test_the_shipped_aspect_model_was_trained_on_these_pairs():
    version = json.loads((ROOT / "models" / "current.json").read_text())["aspects"]
    metrics = json.loads((ROOT / "models" / "aspects" / version / "metrics.json").read_text(encoding="utf-8"))
    assert tuple(metrics["data"]["labels_per_pair"]) == T.PAIR_CODES


def test_every_code_a_person_reads_has_a_chinese_name():
    for codes, names in (
        (T.ASPECTS, T.ASPECT_NAMES_ZH),
        (T.QA_DIMENSIONS, T.QA_DIMENSION_NAMES_ZH),
        (T.EMOTIONS, T.EMOTIONS_ZH),
    ):
        assert tuple(names) == codes
        assert all(names.values()) and len(set(names.values())) == len(names)
    assert len(T.GRADE_NAMES_ZH) == len(T.GRADE_CODES) == len(T.GRADES)


def test_grade_floors_descend_to_zero():
    floors = [floor for floor, _, _ in T.GRADES]
    assert floors == sorted(floors, reverse=True) and len(set(floors)) == len(floors) and floors[-1] == 0
    assert (T.GRADE_CODES, T.GRADE_NAMES_ZH) == (tuple(c for _, c, _ in T.GRADES), tuple(z for _, _, z in T.GRADES))


def test_subsets_are_subsets():
    assert T.EMOTIONS[: len(T.CUE_EMOTIONS)] == T.CUE_EMOTIONS and "neutral" in T.EMOTIONS
    assert T.RESOLUTION_STATUSES[: len(T.CUE_RESOLUTION_STATUSES)] == T.CUE_RESOLUTION_STATUSES
    assert T.ESCALATION_KINDS == (*T.THREAT_KINDS, *T.PRESSING_KINDS)
    assert T.ESCALATION_LEVELS[1:] == T.SEVERITIES  # a risk above none is charged by severity points
    assert {"greeting", "closing"} <= set(T.POLITE_KINDS)


def test_qa_profiles_have_a_field_per_code():
    """Profiles name dimensions, severities and statuses as fields: they must be the taxonomy's."""
    assert tuple(Weights.model_fields) == T.QA_DIMENSIONS
    assert set(T.QA_DIMENSIONS) <= set(QAProfile.model_fields)  # one rules section per dimension
    assert tuple(Points.model_fields) == T.SEVERITIES
    assert set(T.RESOLUTION_STATUSES) <= set(ResolutionRules.model_fields)


def test_taxonomy_endpoint_lists_exactly_the_taxonomy(fake_pipeline, tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path), pipeline=fake_pipeline)) as client:
        body = client.get("/v1/taxonomy").json()
    assert body == {
        "aspects": [{"code": c, "name_zh": T.ASPECT_NAMES_ZH[c]} for c in T.ASPECTS],
        "sentiment_labels": list(T.SENTIMENT_LABELS),
        "polarities": list(T.POLARITIES),
        "grades": [{"code": c, "name_zh": zh, "min_score": floor} for floor, c, zh in T.GRADES],
        "qa_dimensions": [{"code": c, "name_zh": T.QA_DIMENSION_NAMES_ZH[c]} for c in T.QA_DIMENSIONS],
        "violation_rules": list(T.VIOLATION_RULES),
        "severities": list(T.SEVERITIES),
        "forbidden_categories": list(T.FORBIDDEN_CATEGORIES),
        "violation_codes": [{"code": c, "name_zh": T.VIOLATION_NAMES_ZH[c]} for c in T.VIOLATION_CODES],
        "satisfaction": [{"code": c, "name_zh": T.SATISFACTION_ZH[c]} for c in T.SATISFACTION_LEVELS],
        "emotions": [{"code": c, "name_zh": T.EMOTIONS_ZH[c]} for c in T.EMOTIONS],
        "escalation_levels": list(T.ESCALATION_LEVELS),
        "resolution_statuses": list(T.RESOLUTION_STATUSES),
        "names_zh": T.NAMES_ZH,
        "model": fake_pipeline.versions,
    }
    assert body["names_zh"]["cause"]["logistics"] == "物流配送" and body["names_zh"]["grade"]["excellent"] == "优秀"
    # the fields clients had before the taxonomy module, unchanged
    assert body["grades"][0] == {"code": "excellent", "name_zh": "优秀", "min_score": 90}
    assert [a["code"] for a in body["aspects"]] == [
        "logistics",
        "quality",
        "description",
        "attitude",
        "responsiveness",
        "competence",
        "after_sales",
        "price",
        "other",
    ]


# ---------------------------------------------------------------- no restatements

# Lists still spelled out in a file this change could not edit: (path under app/, taxonomy name).
STILL_SPELLED_OUT: set[tuple[str, str]] = set()  # (file, taxonomy list) pairs allowed to restate it


def restated_lists(source: str) -> list[tuple[int, str]]:
    """(line, taxonomy name) of each literal tuple, list or set that holds every code of a
    taxonomy list of three or more, and of each dict literal keyed by every aspect code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts, names = node.elts, [n for n, v in CODE_TUPLES.items() if len(v) >= 3]
        elif isinstance(node, ast.Dict):
            elts, names = node.keys, ["ASPECTS"]
        else:
            continue
        strings = {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        found += [(node.lineno, n) for n in names if set(CODE_TUPLES[n]) <= strings]
    return found


def test_restated_lists_are_found():
    assert restated_lists(
        'A = ("logistics", "quality", "description", "attitude", "responsiveness", '
        '"competence", "after_sales", "price", "other")'
    ) == [(1, "ASPECTS")]
    assert restated_lists('x: Literal["low", "medium", "high"]') == [(1, "SEVERITIES")]
    assert restated_lists("N = {" + ", ".join(f'"{a}": 1' for a in T.ASPECTS) + "}") == [(1, "ASPECTS")]
    assert restated_lists('if label in ("positive", "negative"): pass') == []


def test_no_module_but_the_taxonomy_spells_out_its_lists():
    """The aspect codes above all, but every list of codes: a module imports it from
    ``app.core.taxonomy`` (``Literal[*SEVERITIES]`` for a schema) instead of restating it."""
    problems = []
    for path in sorted(APP.rglob("*.py")):
        rel = path.relative_to(APP).as_posix()
        if rel == "core/taxonomy.py":
            continue
        problems += [
            f"app/{rel}:{line}: spells out taxonomy.{name}"
            for line, name in restated_lists(path.read_text(encoding="utf-8"))
            if (rel, name) not in STILL_SPELLED_OUT
        ]
    assert problems == []
