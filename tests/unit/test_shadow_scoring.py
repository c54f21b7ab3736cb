"""Shadow scoring in the prediction service: production answers, the version under review is logged beside it."""

from __future__ import annotations

import copy
import json

import pytest

from pharmaseg.config import PredictSettings
from pharmaseg.model.segments import HIGH_VALUE, STABLE
from pharmaseg.predict.service import PredictionService
from tests.models import trained
from tests.unit.test_prediction_service import Models, call


@pytest.fixture(scope="module")
def production(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


@pytest.fixture(scope="module")
def held():
    """The 2012-2021 candidate the demo's gate holds: the USA and Germany move to Stable under it."""
    artifact = trained("2012-2021")[1]
    artifact.version = "1.1.0"
    return artifact


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"event":"prediction"' in line]


def test_production_answers_and_the_held_version_is_logged_beside_it(production, held, capsys):
    service = PredictionService(PredictSettings(), Models(production=production, review=held))
    status, answer = call(service, body={"instances": [{"country": "USA"}, {"country": "DEU"}, {"country": "FRA"}]})
    assert status == 200
    assert {p["model_version"] for p in answer["predictions"]} == {"1.0.0"}
    assert [p["cluster_name"] for p in answer["predictions"][:2]] == [HIGH_VALUE, HIGH_VALUE]
    lines = {line["country"]: line for line in log_lines(capsys)}
    for country in ("USA", "DEU"):
        assert lines[country]["shadow_version"] == "1.1.0"
        assert lines[country]["shadow_cluster_name"] == STABLE
        assert lines[country]["shadow_agrees"] is False
    fra = lines["FRA"]
    expected = held.segments[held.assignments["FRA"]].name
    assert fra["shadow_cluster_name"] == expected and fra["shadow_agrees"] == (expected == fra["cluster_name"])


def test_figures_are_scored_by_the_shadow_on_the_same_row(production, held, original_model, capsys):
    table, _ = original_model
    row = table.values[table.countries.index("USA")]
    body = {"country": "USA", **dict(zip(production.feature_names, row.tolist()))}
    service = PredictionService(PredictSettings(), Models(production=production, review=held))
    assert call(service, body=body)[0] == 200
    (line,) = log_lines(capsys)
    assert line["shadow_cluster_name"] == held.segments[int(held.predict([row]).clusters[0])].name


def test_a_review_alias_not_newer_than_production_is_no_shadow(production, held, capsys):
    older = copy.deepcopy(held)
    older.version = "0.9.0"
    service = PredictionService(PredictSettings(), Models(production=production, review=older))
    assert call(service, body={"country": "USA"})[0] == 200
    (line,) = log_lines(capsys)
    assert "shadow_version" not in line


def test_the_candidate_alias_is_the_shadow_when_it_takes_no_traffic(production, held, capsys):
    service = PredictionService(PredictSettings(candidate_traffic=0.0), Models(production=production, candidate=held))
    assert call(service, body={"country": "DEU"})[0] == 200
    (line,) = log_lines(capsys)
    assert line["variant"] == "production" and line["shadow_version"] == "1.1.0"


def test_a_country_the_shadow_was_not_trained_on_has_no_shadow_segment(production, held, capsys):
    narrowed = copy.deepcopy(held)
    narrowed.training_features.pop("USA")
    service = PredictionService(PredictSettings(), Models(production=production, review=narrowed))
    assert call(service, body={"country": "USA"})[0] == 200
    (line,) = log_lines(capsys)
    assert "shadow_version" not in line
