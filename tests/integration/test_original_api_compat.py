"""The original project's API, as its README and its own API tests call it, answered by pharmaseg.

Requests and checked keys are those the original FastAPI service documents (README "Example API
Request", tests/test_api.py, src/api/schemas.py): a migration is a change of URL, not a rewrite of
every client. Run against the predict function under functions-framework, its model in
fake-gcs-server.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest
from functions_framework import create_app

from pharmaseg.model.registry import ModelRegistry

SOURCE = str(Path(__file__).resolve().parents[2] / "functions/predict/main.py")
PREDICTION_KEYS = {
    "country",
    "cluster",
    "cluster_name",
    "recommendation",
    "confidence",
    "model_version",
    "timestamp",
    "processing_time_seconds",
}
SEGMENTS = {"Declining Markets", "Stable Moderate Markets", "High-Value Pharma Markets"}
# The original's PredictionRequest examples (src/api/schemas.py and tests/test_api.py).
GERMANY = {
    "country": "Germany",
    "PC_HEALTHXP_growth": -0.51,
    "PC_GDP_growth": 1.31,
    "USD_CAP_growth": 4.24,
    "PC_HEALTHXP_avg": 14.14,
    "PC_GDP_avg": 1.60,
    "USD_CAP_avg": 790.71,
    "PC_HEALTHXP_volatility": 0.27,
    "PC_GDP_volatility": 0.06,
    "USD_CAP_volatility": 102.02,
}
FRANCE = {
    "country": "France",
    "PC_HEALTHXP_growth": -2.5,
    "PC_GDP_growth": 0.8,
    "USD_CAP_growth": 2.1,
    "PC_HEALTHXP_avg": 15.2,
    "PC_GDP_avg": 1.9,
    "USD_CAP_avg": 650.5,
    "PC_HEALTHXP_volatility": 0.9,
    "PC_GDP_volatility": 0.05,
    "USD_CAP_volatility": 45.3,
}
# The original README's curl example.
README_BODY = {
    "country": "Germany",
    "pharma_per_capita": 659,
    "pharma_pct_health": 18,
    "pharma_pct_gdp": 1.8,
    "growth_rate": 4.0,
    "volatility": 2.5,
}


@pytest.fixture(scope="module")
def client(original_production):
    return create_app("predict", SOURCE).test_client()


@pytest.fixture(scope="module")
def original_production(gcs_server, oecd_model):
    """Model 1.0.0, the original procedure on 2011-2020, promoted in a bucket of its own."""
    import os

    storage = gcs_server.client()
    name = storage.create_bucket(f"compat-{uuid.uuid4().hex[:12]}").name
    registry = ModelRegistry(name, client=storage)
    registry.promote(registry.register(copy.deepcopy(oecd_model)), reason="compat tests")
    saved = {k: os.environ.get(k) for k in ("STORAGE_EMULATOR_HOST", "PHARMASEG_MODELS_BUCKET")}
    os.environ.update(STORAGE_EMULATOR_HOST=gcs_server.url, PHARMASEG_MODELS_BUCKET=name)
    yield registry
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def oecd_model():
    from tests.models import trained

    return trained()[1]


def test_readme_request_answers_with_the_documented_keys_and_segment(client):
    """README: POST /predict with the five headline figures -> High-Value Pharma Markets."""
    response = client.post("/predict", json=README_BODY)
    assert response.status_code == 200, response.json
    data = response.json
    assert PREDICTION_KEYS <= set(data)
    assert data["country"] == "Germany" and data["cluster_name"] == "High-Value Pharma Markets"
    assert data["cluster"] in (0, 1, 2) and 0 <= data["confidence"] <= 1


def test_predict_endpoint(client):
    """tests/test_api.py::test_predict_endpoint."""
    response = client.post("/predict", json=GERMANY)
    assert response.status_code == 200
    data = response.json
    assert PREDICTION_KEYS <= set(data)
    assert data["country"] == "Germany"
    assert data["cluster"] in [0, 1, 2]
    assert data["cluster_name"] in SEGMENTS


def test_batch_predict_endpoint(client):
    """tests/test_api.py::test_batch_predict_endpoint: {"countries": [...]} on /predict/batch."""
    response = client.post("/predict/batch", json={"countries": [GERMANY, FRANCE]})
    assert response.status_code == 200
    data = response.json
    assert data["total_countries"] == 2
    assert len(data["predictions"]) == 2
    assert "processing_time_seconds" in data
    assert all(PREDICTION_KEYS <= set(p) for p in data["predictions"])
    assert [p["country"] for p in data["predictions"]] == ["Germany", "France"]


def test_health_endpoint(client):
    """tests/test_api.py::test_health_endpoint (the original's own version number aside)."""
    response = client.get("/health")
    assert response.status_code == 200
    data = response.json
    assert data["status"] == "healthy"
    assert data["model_loaded"] is True
    assert data["model_version"] == "1.0.0"


def test_model_info_endpoint(client):
    """tests/test_api.py::test_model_info_endpoint."""
    response = client.get("/model/info")
    assert response.status_code == 200
    data = response.json
    assert data["version"] == "1.0.0"
    assert data["n_clusters"] == 3
    assert {"created_at", "silhouette_score"} <= set(data)
    assert data["silhouette_score"] == pytest.approx(0.289, abs=5e-4)


def test_root_endpoint(client):
    """tests/test_api.py::test_root_endpoint: a client that is not a browser gets the service's name."""
    response = client.get("/")
    assert response.status_code == 200
    data = response.json
    assert data["message"] == "Pharmaceutical Market Segmentation API"
    assert "version" in data
