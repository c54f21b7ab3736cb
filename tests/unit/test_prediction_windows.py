"""The prediction service's market history: country codes answered in a feature-store window, and
``/countries/{code}/history``, from the snapshot the model cache serves (no BigQuery per request)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import msgspec
import pytest

from pharmaseg.config import PredictSettings
from pharmaseg.model.history import country_history
from pharmaseg.model.panel import read_panel
from pharmaseg.model.snapshot import FeatureSnapshot, Source
from pharmaseg.model.windows import all_windows
from pharmaseg.predict import contract
from pharmaseg.predict.service import PredictionService
from tests.unit.test_prediction_service import Models, call

SOURCE = Source("gs://sources/oecd.csv#7", "cd" * 32, "2026-12-02T00:00:00+00:00", 7)


class WithSnapshot(Models):
    def __init__(self, snapshot, **aliases):
        super().__init__(**aliases)
        self._snapshot = snapshot

    def snapshot(self):
        return self._snapshot


@pytest.fixture(scope="module")
def model(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


@pytest.fixture(scope="module")
def snapshot(oecd_path):
    return FeatureSnapshot.from_table(all_windows(read_panel(oecd_path).rows, 10), SOURCE)


@pytest.fixture
def service(model, snapshot):
    return PredictionService(PredictSettings(), WithSnapshot(snapshot, production=model))


def test_without_a_window_a_code_is_answered_from_the_training_row(service, model):
    status, answer = call(service, body={"country": "DEU"})
    assert status == 200
    origin = answer["features_from"]
    assert origin["kind"] == "training row" and origin["window"] == "2011-2020"
    assert origin["source_sha256"] == model.lineage["data_sha256"]
    assert origin["age_years"] == datetime.now(UTC).year - 2020
    assert answer["stability"] == model.metrics["stability"]["per_country"]["DEU"]


def test_latest_window_is_read_from_the_snapshot(service, snapshot, model):
    status, answer = call(service, body={"country": "IRL", "window": "latest"})
    assert status == 200, answer
    window, row = snapshot.row("IRL", "latest")
    assert answer["features_from"] == {
        "kind": "feature store",
        "window": str(window),
        "source_uri": SOURCE.uri,
        "source_sha256": SOURCE.sha256,
        "age_years": datetime.now(UTC).year - window.end,
    }
    expected = model.predict([row])
    assert answer["cluster"] == int(expected.clusters[0])
    assert answer["stability"] is None  # stability belongs to the training window
    msgspec.convert(answer, contract.Prediction)


def test_a_panel_country_outside_training_is_answered_with_a_window(service, snapshot, model):
    outside = sorted(c for c in snapshot.countries if c not in model.training_features and snapshot.row(c, "latest"))
    assert outside, "the OECD file has countries without a complete 2011-2020"
    status, answer = call(service, body={"country": outside[0]})
    assert status == 404 and "window" in answer["details"][0]["problem"]
    status, answer = call(service, body={"country": outside[0], "window": "latest"})
    assert status == 200 and answer["features_from"]["kind"] == "feature store"


def test_a_named_window_and_its_errors(service):
    status, answer = call(service, body={"country": "USA", "window": "2005-2014"})
    assert status == 200 and answer["features_from"]["window"] == "2005-2014"
    status, answer = call(service, body={"country": "USA", "window": "2013-2020"})
    assert status == 400 and answer["details"][0]["field"] == "window" and "10" in answer["details"][0]["problem"]
    status, answer = call(service, body={"country": "USA", "window": "1950-1959"})
    assert status == 404 and answer["details"][0]["field"] == "window"
    status, answer = call(service, body={"country": "USA", "window": "last"})
    assert status == 400 and answer["details"][0]["field"] == "window"
    status, answer = call(service, body={"instances": [{"country": "USA", "window": "2013-2020"}]})
    assert status == 400 and answer["details"][0]["field"] == "instances[0].window"


def test_without_a_snapshot_a_window_is_a_clear_404(model):
    service = PredictionService(PredictSettings(), WithSnapshot(None, production=model))
    status, answer = call(service, body={"country": "DEU", "window": "latest"})
    assert status == 404 and answer["error"] == "no feature store"
    status, answer = call(service, "GET", "/countries/DEU/history")
    assert status == 404 and answer["error"] == "no feature store"


def test_history_answers_every_complete_window_as_the_model_scores_it(service, snapshot, model):
    status, answer = call(service, "GET", "/countries/irl/history")
    assert status == 200
    msgspec.convert(answer, contract.CountryHistory)
    expected = country_history(model, "IRL", snapshot.windows("IRL"), borderline_below=0.2)
    assert answer["country"] == "IRL" and answer["model_version"] == "1.0.0"
    assert [(w["window"], w["segment"], w["change"]) for w in answer["windows"]] == [
        (w.window, w.segment, w.change) for w in expected.windows
    ]
    assert answer["source_sha256"] == SOURCE.sha256
    assert answer["stability"] == model.metrics["stability"]["per_country"]["IRL"]


@pytest.mark.parametrize("path", ["/countries/XXX/history", "/countries/IRL", "/countries/IRL/future", "/countries/"])
def test_history_paths_that_name_nothing_are_json_404s(service, path):
    status, answer = call(service, "GET", path)
    assert status == 404 and answer["details"]
