"""The predict function under functions-framework's test client, with its model in fake-gcs-server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from functions_framework import create_app
from openapi_spec_validator import validate

from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.panel import read_panel
from pharmaseg.model.registry import ModelRegistry
from tests.unit.conftest import DATA

pytestmark = pytest.mark.integration
SOURCE = str(Path(__file__).resolve().parents[2] / "functions/predict/main.py")


@pytest.fixture(scope="module")
def panel():
    return read_panel(DATA)


@pytest.fixture(scope="module")
def trained(panel):
    from tests.models import trained

    return trained(n_bootstrap=2)


def features_of(table, country):
    return dict(zip(FEATURE_NAMES, table.values[table.countries.index(country)].tolist()))


def series_of(panel, country, years=range(2011, 2021)):
    rows = panel.rows[(panel.rows["LOCATION"] == country) & panel.rows["TIME"].isin(list(years))]
    return [
        {"year": int(r.TIME), "PC_HEALTHXP": r.PC_HEALTHXP, "PC_GDP": r.PC_GDP, "USD_CAP": r.USD_CAP}
        for r in rows.itertuples()
    ]


@pytest.fixture
def bucket(gcs, trained, monkeypatch):
    client = gcs.client()
    name = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}").name
    registry = ModelRegistry(name, client=client)
    version = registry.register(copy.deepcopy(trained[1]))
    registry.promote(version)
    monkeypatch.setenv("PHARMASEG_MODELS_BUCKET", name)
    return registry


@pytest.fixture
def client(bucket):
    return create_app("predict", SOURCE).test_client()


def post(client, body, path="/", **kw):
    return client.post(path, data=json.dumps(body), content_type="application/json", **kw)


@pytest.mark.parametrize(
    "country, segment",
    [("DEU", "High-Value Pharma Markets"), ("FRA", "Stable Moderate Markets"), ("CRI", "Declining Markets")],
)
def test_features_predict_the_original_segment(client, trained, country, segment):
    response = post(client, {"country": country, **features_of(trained[0], country)})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["cluster_name"] == segment and body["country"] == country
    assert body["model_version"] == "1.0.0" and body["variant"] == "production"
    assert set(body["distances"]) == {"Declining Markets", "Stable Moderate Markets", "High-Value Pharma Markets"}
    assert min(body["distances"], key=body["distances"].get) == segment
    assert 0 <= body["confidence"] <= 1
    assert {"recommendation", "timestamp", "cluster", "processing_time_seconds"} <= set(body)
    assert body["runner_up"]["cluster_name"] != segment and len(body["reasons"]) == 3
    assert body["borderline"] == (body["confidence"] < 0.2)  # the default PHARMASEG_BORDERLINE_CONFIDENCE
    margin = sum(
        r["contribution"]
        for r in post(client, {"country": country, **features_of(trained[0], country)}, "/predict?reasons=all").json[
            "reasons"
        ]
    )
    assert margin == pytest.approx(body["margin"], abs=1e-5)  # the reasons split the margin exactly


def test_series_goes_through_the_training_feature_code(client, trained, panel):
    by_features = post(client, {"country": "DEU", **features_of(trained[0], "DEU")}, "/predict").json
    by_series = post(client, {"country": "DEU", "series": series_of(panel, "DEU", range(2000, 2023))}).json
    assert by_series["input_kind"] == "series" and by_series["cluster_name"] == "High-Value Pharma Markets"
    assert by_series["distances"] == pytest.approx(by_features["distances"], abs=1e-6)


def test_instances_answer_in_order(client, trained, panel):
    body = {
        "instances": [
            {"country": "CRI", **features_of(trained[0], "CRI")},
            {"country": "DEU", "series": series_of(panel, "DEU")},
            {"country": "FRA", **features_of(trained[0], "FRA")},
        ]
    }
    response = post(client, body)
    assert response.status_code == 200
    names = [(p["country"], p["cluster_name"]) for p in response.json["predictions"]]
    assert names == [
        ("CRI", "Declining Markets"),
        ("DEU", "High-Value Pharma Markets"),
        ("FRA", "Stable Moderate Markets"),
    ]


def test_every_prediction_is_one_structured_log_line(client, trained, capfd):
    capfd.readouterr()
    post(client, {"instances": [{"country": c, **features_of(trained[0], c)} for c in ("DEU", "FRA")]})
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    predictions = [line for line in lines if line.get("event") == "prediction"]
    assert [p["country"] for p in predictions] == ["DEU", "FRA"]
    first = predictions[0]
    assert first["severity"] == "INFO" and first["model_version"] == "1.0.0"
    assert first["features"] == pytest.approx(features_of(trained[0], "DEU"))
    assert first["cluster_name"] == "High-Value Pharma Markets" and first["latency_ms"] >= 0
    assert first["runner_up"] == "Stable Moderate Markets" and len(first["reasons"]) == 3
    assert first["features_used"] == list(FEATURE_NAMES) and first["borderline"] is False


def _fields(response):
    return {d["field"] for d in response.json["details"]}


def test_bad_fields_are_all_named(client, trained):
    body = {"country": "DEU", **features_of(trained[0], "DEU"), "colour": "red"}
    body["PC_GDP_avg"] = "high"
    body["USD_CAP_avg"] = -5
    body["PC_HEALTHXP_growth"] = -250
    del body["PC_HEALTHXP_avg"]
    response = post(client, body)
    assert response.status_code == 400
    problems = {d["field"]: d["problem"] for d in response.json["details"]}
    assert set(problems) == {"colour", "PC_GDP_avg", "USD_CAP_avg", "PC_HEALTHXP_growth", "PC_HEALTHXP_avg"}
    assert problems["USD_CAP_avg"] == "Expected `float` > 0.0, got -5" and problems["PC_HEALTHXP_avg"] == "missing"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(client, trained, literal):
    """NaN and Infinity are not JSON: the body is refused, never scored, naming the field (issue #20)."""
    text = json.dumps({"country": "DEU", **features_of(trained[0], "DEU")})
    text = text.replace(str(features_of(trained[0], "DEU")["PC_GDP_avg"]), literal)
    response = client.post("/", data=text, content_type="application/json")
    assert response.status_code == 400 and _fields(response) == {"PC_GDP_avg"}
    assert response.json["details"][0]["problem"] == f"must be a finite number, got {literal}"


def test_envelope_errors(client, trained, monkeypatch):
    good = {"country": "DEU", **features_of(trained[0], "DEU")}
    assert client.post("/", data=json.dumps(good), content_type="text/plain").status_code == 415
    assert client.post("/", data="{not json", content_type="application/json").status_code == 400
    assert post(client, ["a list"]).status_code == 400
    assert post(client, {"instances": []}).status_code == 400
    monkeypatch.setenv("PHARMASEG_MAX_INSTANCES", "2")
    too_many = post(create_app("predict", SOURCE).test_client(), {"instances": [good] * 3})
    assert too_many.status_code == 400 and too_many.json["details"] == [
        {"field": "instances", "problem": "at most 2 per request, got 3"}
    ]
    monkeypatch.setenv("PHARMASEG_MAX_BODY_BYTES", "100")
    response = post(create_app("predict", SOURCE).test_client(), good)
    assert response.status_code == 413 and response.json["error"] == "request body too large"
    assert client.get("/").status_code == 200 and client.get("/").json["message"]
    wrong = client.delete("/predict")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert client.get("/nowhere").status_code == 404
    for response in (wrong, client.get("/nowhere")):
        assert response.is_json and "Traceback" not in response.get_data(as_text=True)


def test_series_errors_name_the_record(client, panel):
    series = series_of(panel, "DEU")
    series[3]["PC_GDP"] = "x"
    response = post(client, {"instances": [{"country": "DEU", "series": series}]})
    assert response.status_code == 400 and _fields(response) == {"instances[0].series[3].PC_GDP"}
    gap = series_of(panel, "DEU")
    del gap[5]
    twice = series_of(panel, "DEU") + [series_of(panel, "DEU")[0]]
    response = post(client, {"instances": [{"country": "DEU", "series": gap}, {"country": "DEU", "series": twice}]})
    problems = {d["field"]: d["problem"] for d in response.json["details"]}
    assert problems["instances[0].series"] == "years 2016 of the model's window 2011-2020 are missing"
    assert problems["instances[1].series[10].year"] == "2011 appears twice (also at [0])"


def test_version_pinning(client, bucket, trained):
    v2 = bucket.register(copy.deepcopy(trained[1]))
    good = {"country": "DEU", **features_of(trained[0], "DEU")}
    assert post(client, good, f"/?version={v2}").json["model_version"] == v2
    assert post(client, good).json["model_version"] == "1.0.0"
    missing = post(client, good, "/predict?version=8.0.0")
    assert missing.status_code == 404 and _fields(missing) == {"version"}
    assert client.get("/model?version=8.0.0").status_code == 404
    assert client.get(f"/model/info?version={v2}").json["version"] == v2


def test_health_model_and_openapi(client, trained):
    health = client.get("/health").json
    assert health == {"status": "healthy", "model_loaded": True, "model_version": "1.0.0"}
    model = client.get("/model").json
    sizes = {s["name"]: s["size"] for s in model["segments"]}
    assert sizes == {"Declining Markets": 5, "Stable Moderate Markets": 23, "High-Value Pharma Markets": 8}
    high = next(s for s in model["segments"] if s["name"] == "High-Value Pharma Markets")
    deu_usd = features_of(trained[0], "DEU")["USD_CAP_avg"]
    assert 100 < high["centroid"]["USD_CAP_avg"] < 2 * deu_usd  # original units, not z-scores
    assert model["lineage"]["window"] == "2011-2020"
    spec = client.get("/openapi.json").json
    validate(spec)
    assert {"/", "/predict", "/predict/batch", "/health", "/model", "/model/info", "/openapi.json"} <= set(
        spec["paths"]
    )
    years = spec["components"]["schemas"]["SeriesInput"]["properties"]["series"]["allOf"]
    assert [c["contains"]["properties"]["year"]["const"] for c in years] == list(range(2011, 2021))
    info = client.get("/model/info").json
    assert info["n_clusters"] == 3 and info["silhouette_score"] == pytest.approx(0.289, abs=5e-4)


def test_model_unavailable_is_503_with_reason(gcs, monkeypatch):
    name = gcs.client().create_bucket(f"empty-{uuid.uuid4().hex[:12]}").name
    monkeypatch.setenv("PHARMASEG_MODELS_BUCKET", name)
    client = create_app("predict", SOURCE).test_client()
    health = client.get("/health")
    assert health.status_code == 503 and "alias production is not set" in health.json["reason"]
    response = post(client, {"country": "X", **{f: 1.0 for f in FEATURE_NAMES}})
    assert response.status_code == 503 and response.json["error"] == "model unavailable"


def test_candidate_traffic_split_is_deterministic_per_country(client, bucket, trained, monkeypatch):
    candidate = bucket.register(copy.deepcopy(trained[1]))
    bucket.promote(candidate, "candidate")
    monkeypatch.setenv("PHARMASEG_CANDIDATE_TRAFFIC", "0.5")
    app = create_app("predict", SOURCE).test_client()
    body = {"instances": [{"country": c, **features_of(trained[0], c)} for c in trained[0].countries]}
    first = [p["variant"] for p in post(app, body).json["predictions"]]
    again = [p["variant"] for p in post(app, body).json["predictions"]]
    assert first == again and {"production", "candidate"} == set(first)
    share = first.count("candidate") / len(first)
    assert 0.2 < share < 0.8
    by_variant = {p["variant"]: p["model_version"] for p in post(app, body).json["predictions"]}
    assert by_variant == {"production": "1.0.0", "candidate": candidate}


def test_cold_path_imports_no_sklearn_pandas_or_bigquery(bucket, trained, gcs):
    script = f"""
import json, sys
from functions_framework import create_app
client = create_app("predict", {SOURCE!r}).test_client()
body = {json.dumps({"country": "DEU", **features_of(trained[0], "DEU")})}
assert client.post("/", json=body).status_code == 200
heavy = [m for m in ("sklearn", "pandas", "scipy", "google.cloud.bigquery", "google.cloud.storage", "matplotlib",
                      "pharmaseg.predict.page") if m in sys.modules]
print(json.dumps(heavy))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_series_values_are_numbers_in_plausible_units(client, panel):
    series = series_of(panel, "DEU")
    as_text = [dict(r, PC_GDP=str(r["PC_GDP"])) for r in series]
    response = post(client, {"country": "DEU", "series": as_text})
    assert response.status_code == 400 and "series[0].PC_GDP" in _fields(response)
    in_cents = [dict(r, USD_CAP=r["USD_CAP"] * 1000) for r in series]
    response = post(client, {"country": "DEU", "series": in_cents})
    assert response.status_code == 400 and len(_fields(response)) == 10  # every year's USD_CAP is named
    huge = [dict(r, PC_GDP=1e300 if r["year"] == 2020 else 1e-300) for r in series]
    assert _fields(post(client, {"country": "DEU", "series": huge})) == {f"series[{i}].PC_GDP" for i in range(10)}


@pytest.mark.parametrize("year", ["NaN", "Infinity", "1e999"])
def test_non_finite_years_are_400_not_500(client, panel, year):
    text = json.dumps({"country": "DEU", "series": series_of(panel, "DEU")}).replace('"year": 2011', f'"year": {year}')
    response = client.post("/", data=text, content_type="application/json")
    # NaN and Infinity are not JSON, and 1e999 is JSON beyond a float's range: each is named by its field
    assert response.status_code == 400 and _fields(response) == {"series[0].year"}


def test_malformed_version_is_400_not_503(client, trained):
    good = {"country": "DEU", **features_of(trained[0], "DEU")}
    assert client.get("/model?version=latest").status_code == 400
    response = post(client, good, "/?version=production")
    assert response.status_code == 400 and _fields(response) == {"version"}
    response = post(client, {**good, "version": "1.0.0"})  # pinned by the query only
    assert response.status_code == 400 and _fields(response) == {"version"}


def test_huge_integers_and_deep_nesting_are_400_not_500(client, trained, panel):
    huge = "1" + "0" * 400
    text = json.dumps({"country": "DEU", **features_of(trained[0], "DEU"), "PC_GDP_avg": 0}).replace(
        '"PC_GDP_avg": 0', f'"PC_GDP_avg": {huge}'
    )
    response = client.post("/", data=text, content_type="application/json")
    assert response.status_code == 400 and _fields(response) == {"PC_GDP_avg"}
    assert response.json["details"][0]["problem"].startswith("Number out of range")
    series = json.dumps({"country": "DEU", "series": series_of(panel, "DEU")})
    for needle in ('"year": 2011', '"USD_CAP": ' + json.dumps(series_of(panel, "DEU")[0]["USD_CAP"])):
        bad = series.replace(needle, needle.split(":")[0] + ": " + huge, 1)
        assert client.post("/", data=bad, content_type="application/json").status_code == 400
    deep = client.post("/", data="[" * 100_000, content_type="application/json")
    assert deep.status_code == 400 and deep.json["details"][0]["problem"] == "nested too deeply"
    assert client.get("/model?version=1.0.0%0A").status_code == 400


def test_a_non_finite_number_from_python_json_is_named_by_its_field(client, trained):
    """json.dumps writes Infinity and NaN; the answer names the field, not a byte offset."""
    deu = {"country": "DEU", **features_of(trained[0], "DEU")}
    response = post(client, {"instances": [{**deu, "PC_GDP_avg": float("inf")}]}, path="/predict")
    assert response.status_code == 400 and response.json["details"] == [
        {"field": "instances[0].PC_GDP_avg", "problem": "must be a finite number, got Infinity"}
    ]
    response = post(client, {"countries": [deu, {**deu, "USD_CAP_growth": float("nan")}]}, path="/predict/batch")
    assert response.status_code == 400 and _fields(response) == {"countries[1].USD_CAP_growth"}
    assert post(client, deu).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/reports/../x",
        "/reports/%2e%2e/",
        "/reports/models/nope.html",
        "/reports/models/1.0.0/report.html/",
        "/reports/a%0a",
        "/reports/" + "a" * 4000,
        "/robots.txt",
        "/favicon.ico",
        "/health/x",
    ],
)
def test_every_error_is_json_even_on_paths_flask_refuses_itself(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.content_type == "application/json", response.data[:200]
    assert response.json["error"] == "not found" and len(response.data) < 1000
    assert client.post(path, data="{}", content_type="application/json").content_type == "application/json"
