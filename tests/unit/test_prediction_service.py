"""The prediction service without HTTP: routes, bodies, model choice, answers and log lines.

The model source is an in-memory stand-in for ``model.cache.ModelCache`` (the real one, on
fake-gcs-server, is exercised in tests/integration/test_predict_function.py).
"""

from __future__ import annotations

import copy
import json

import msgspec
import pytest

from pharmaseg.config import PredictSettings
from pharmaseg.errors import VersionNotFoundError
from pharmaseg.gcp.resources import table_schema
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.predict import contract, logline
from pharmaseg.predict.service import HttpRequest, PredictionService, traffic_bucket


class Models:
    """Versions by number and aliases by name, as ModelCache answers them."""

    def __init__(self, **aliases):
        self.aliases = aliases
        self.versions = {m.version: m for m in aliases.values()}

    def alias(self, name="production"):
        if name not in self.aliases:
            raise VersionNotFoundError(f"alias {name} is not set")
        return self.aliases[name]

    def version(self, version):
        if version not in self.versions:
            raise VersionNotFoundError(f"model version {version} is not registered")
        return self.versions[version]


@pytest.fixture(scope="module")
def model(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


@pytest.fixture
def service(model):
    return PredictionService(PredictSettings(max_instances=5, max_body_bytes=4096), Models(production=model))


def call(service, method="POST", path="/predict", body=None, query=b"", content_type="application/json", **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": content_type, **headers}
    response = service.handle(HttpRequest(method, path, query, headers, len(data), lambda: data))
    return response.status, json.loads(response.body) if response.content_type == "application/json" else response


def features(table, country):
    return {"country": country, **dict(zip(FEATURE_NAMES, table.values[table.countries.index(country)].tolist()))}


def test_every_answer_decodes_strictly_as_the_declared_prediction(service, original_model, capsys):
    table, _ = original_model
    status, body = call(service, body=features(table, "DEU"))
    assert status == 200
    answer = msgspec.convert(body, contract.Prediction)  # no key missing, none extra, types right
    assert answer.cluster_name == "High-Value Pharma Markets" and answer.input_kind == "features"
    assert answer.runner_up.cluster_name != answer.cluster_name and len(answer.reasons) == 3
    assert answer.features_missing == [] and answer.processing_time_seconds >= 0
    line = msgspec.json.decode(capsys.readouterr().out.strip().splitlines()[-1], type=logline.PredictionLogLine)
    assert line.cluster_name == answer.cluster_name and line.borderline == answer.borderline
    assert [r.feature for r in line.reasons] == [r.feature for r in answer.reasons]


def test_reasons_all_gives_every_feature_used(service, original_model):
    table, _ = original_model
    _, top = call(service, body=features(table, "FRA"))
    _, every = call(service, body=features(table, "FRA"), query=b"reasons=all")
    assert len(every["reasons"]) == 9 and every["reasons"][:3] == top["reasons"]
    assert call(service, body=features(table, "FRA"), query=b"reasons=some")[0] == 400


def test_partial_summary_and_stored_inputs(service, original_model):
    table, model = original_model
    full = features(table, "DEU")
    levels = {k: full[k] for k in ("country", *contract.MINIMUM_FEATURES)}
    _, partial = call(service, body=levels)
    assert partial["input_kind"] == "partial" and partial["features_used"] == list(contract.MINIMUM_FEATURES)
    assert len(partial["features_missing"]) == 6 and {r["feature"] for r in partial["reasons"]} <= set(levels)
    _, summary = call(
        service,
        body={
            "country": "Germany",
            "pharma_per_capita": 659,
            "pharma_pct_health": 18,
            "pharma_pct_gdp": 1.8,
            "growth_rate": 4.0,
            "volatility": 2.5,
        },
    )
    assert summary["input_kind"] == "summary" and summary["cluster_name"] == "High-Value Pharma Markets"
    assert set(summary["ignored_fields"]) == {"volatility"}
    assert sorted(summary["features_used"]) == sorted(contract.SUMMARY_FIELDS.values())
    _, stored = call(service, body={"country": "deu"})
    _, sent = call(service, body=full)
    assert stored["input_kind"] == "stored" and stored["window"] == "2011-2020"
    assert stored["distances"] == sent["distances"]  # the artifact's own training row of Germany
    status, missing = call(service, body={"country": "XXX"})
    assert status == 404 and missing["details"][0]["field"] == "country" and "'XXX'" in missing["details"][0]["problem"]


def test_every_bad_field_of_every_instance_is_named(service, original_model):
    table, _ = original_model
    bad = {**features(table, "DEU"), "PC_GDP_avg": "high", "USD_CAP_avg": -5, "colour": "red"}
    status, body = call(service, body={"instances": [features(table, "FRA"), bad, {"country": " "}, 7]})
    assert status == 400
    fields = {d["field"]: d["problem"] for d in body["details"]}
    assert set(fields) == {
        "instances[1].PC_GDP_avg",
        "instances[1].USD_CAP_avg",
        "instances[1].colour",
        "instances[2].country",
        "instances[3]",
    }
    assert fields["instances[1].USD_CAP_avg"].endswith("got -5") and fields["instances[1].colour"] == "unknown field"


def test_list_limits_and_envelope_errors(service, original_model):
    table, _ = original_model
    deu = features(table, "DEU")
    assert call(service, body={"instances": [deu] * 6})[0] == 400  # limit is 5: a 400 naming instances
    assert call(service, body={"instances": []})[0] == 400
    assert call(service, body=b"{not json")[0] == 400
    assert call(service, body=deu, content_type="text/plain")[0] == 415
    assert call(service, body={**deu, "country": "x" * 5000})[0] == 413  # over max_body_bytes
    status, batch = call(service, path="/predict/batch", body={"countries": [deu, {"country": "CRI"}]})
    assert status == 200 and batch["total_countries"] == 2
    assert [p["cluster_name"] for p in batch["predictions"]] == ["High-Value Pharma Markets", "Declining Markets"]
    assert call(service, path="/predict/batch", body={"instances": [deu]})[0] == 400


def test_routes_methods_and_allow_header(service):
    response = service.handle(HttpRequest("DELETE", "/predict"))
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert service.handle(HttpRequest("PUT", "/")).headers["Allow"] == "GET, POST"
    assert call(service, "GET", "/nowhere")[0] == 404
    status, index = call(service, "GET", "/")
    assert status == 200 and index["message"] == "Pharmaceutical Market Segmentation API"
    assert call(service, "GET", "/health")[1] == {"status": "healthy", "model_loaded": True, "model_version": "1.0.0"}
    status, info = call(service, "GET", "/model/info")
    assert status == 200 and info["n_clusters"] == 3 and info["version"] == "1.0.0"
    assert call(service, "GET", "/model", query=b"version=9.9.9")[0] == 404
    assert call(service, "GET", "/model", query=b"version=latest")[0] == 400


def test_the_page_at_app_slash_is_sent_to_app_where_its_relative_links_resolve(service):
    response = service.handle(HttpRequest("GET", "/app/"))
    assert response.status == 308 and response.headers["Location"] == "../app"
    response = service.handle(HttpRequest("GET", "/monitoring/"))
    assert response.status == 308 and response.headers["Location"] == "../monitoring"


class Reports:
    """The reports bucket as the lean GCS reader streams it: chunks of an object, or None."""

    def __init__(self, **objects: bytes):
        self.objects = objects
        self.asked: list[str] = []

    def stream(self, name):
        self.asked.append(name)
        body = self.objects.get(name)
        return None if body is None else iter([body[:5], body[5:]])


def test_the_monitoring_page_is_streamed_from_the_reports_bucket_and_is_a_json_404_until_built(model):
    page = b"<!DOCTYPE html><title>pharmaseg monitoring</title>"
    reports = Reports(**{"monitoring/index.html": page})
    service = PredictionService(PredictSettings(), Models(production=model), reports=reports)
    response = service.handle(HttpRequest("GET", "/monitoring"))
    assert response.status == 200 and response.content_type == "text/html; charset=utf-8"
    assert b"".join(response.body) == page and reports.asked == ["monitoring/index.html"]
    status, error = call(
        PredictionService(PredictSettings(), Models(production=model), reports=Reports()), "GET", "/monitoring"
    )
    assert status == 404 and "the next drift check builds it" in error["details"][0]["problem"]
    status, error = call(PredictionService(PredictSettings(), Models(production=model)), "GET", "/monitoring")
    assert status == 404 and error["details"][0]["problem"] == "this function has no reports bucket"
    assert call(service, "POST", "/monitoring", body={})[0] == 405
    status, _ = call(service, "GET", "/reports/monitoring/index.html")  # its links are relative to /monitoring
    assert status == 404


def test_no_model_is_503_with_the_reason(model):
    service = PredictionService(PredictSettings(), Models())
    status, health = call(service, "GET", "/health")
    assert status == 503 and health["model_loaded"] is False and "alias production is not set" in health["reason"]
    assert call(service, body={"country": "DEU"})[0] == 503


def test_a_candidate_serves_its_share_of_countries_always_the_same(model, original_model):
    table, _ = original_model
    candidate = copy.deepcopy(model)
    candidate.version = "1.1.0"
    service = PredictionService(PredictSettings(candidate_traffic=0.5), Models(production=model, candidate=candidate))
    body = {"instances": [features(table, c) for c in table.countries[:30]]}
    variants = [p["variant"] for p in call(service, body=body)[1]["predictions"]]
    assert variants == [p["variant"] for p in call(service, body=body)[1]["predictions"]]
    assert variants == ["candidate" if traffic_bucket(c) < 0.5 else "production" for c in table.countries[:30]]
    pinned = call(service, body=body, query=b"version=1.0.0")[1]["predictions"]
    assert {p["variant"] for p in pinned} == {"production"}  # a pinned version is never split


class BrokenCandidate(Models):
    """The candidate alias cannot be read (GCS down, a corrupt artifact): production must serve, loudly."""

    calls = 0

    def alias(self, name="production"):
        if name == "candidate":
            BrokenCandidate.calls += 1
            raise RuntimeError("checksum mismatch")
        return super().alias(name)


def test_a_broken_candidate_is_reported_once_and_not_asked_again_within_the_ttl(model, original_model, capsys):
    table, _ = original_model
    service = PredictionService(PredictSettings(candidate_traffic=1.0), BrokenCandidate(production=model))
    body = {"instances": [features(table, c) for c in table.countries[:5]]}
    for _ in range(2):
        assert {p["variant"] for p in call(service, body=body)[1]["predictions"]} == {"production"}
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"candidate_down"' in line]
    assert len(warnings) == 1 and "checksum mismatch" in warnings[0]["message"]
    assert BrokenCandidate.calls == 1


def test_the_log_line_is_the_predictions_log_schema(service):
    """The Struct written to stdout and the BigQuery schema of the sink's table agree field by field."""
    payload = next(f for f in table_schema("predictions_log") if f["name"] == "jsonPayload")
    lifted = {"severity", "time"}  # Cloud Logging lifts these out of jsonPayload
    struct_fields = [f.name for f in msgspec.structs.fields(logline.PredictionLogLine) if f.name not in lifted]
    assert struct_fields == [f["name"] for f in payload["fields"]]
    features = next(f for f in payload["fields"] if f["name"] == "features")
    assert [f["name"] for f in features["fields"]] == list(FEATURE_NAMES)
    reasons = next(f for f in payload["fields"] if f["name"] == "reasons")
    assert [f["name"] for f in reasons["fields"]] == [f.name for f in msgspec.structs.fields(logline.LoggedReason)]


def test_every_route_is_declared_once_and_both_dispatched_and_documented(service):
    """contract.ROUTES is the one declaration: the service dispatches it and /openapi.json lists it."""
    from openapi_spec_validator import validate

    spec = call(service, "GET", "/openapi.json")[1]
    validate(spec)
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == {(r.method, r.path) for r in contract.ROUTES}
    for route in contract.ROUTES:
        table = service.prefixes[route.prefix] if route.prefix else service.routes[route.path]
        assert table[route.method].__name__ == route.handler
        assert "200" in spec["paths"][route.path][route.method.lower()]["responses"]
    assert {int(s) for s in spec["paths"]["/reports/{object}"]["get"]["responses"]} == {200, 404}


def test_a_series_is_checked_against_its_window_in_the_one_validation_pass(model, original_model, monkeypatch):
    """validation.parse is the only call into validation, and it finishes before a model is chosen."""
    from pharmaseg.predict import service as service_module
    from pharmaseg.predict import validation

    calls = []
    monkeypatch.setattr(service_module, "parse", lambda *a, **k: calls.append("parse") or validation.parse(*a, **k))
    service = PredictionService(PredictSettings(max_instances=5), Models(production=model))
    table, _ = original_model
    deu = features(table, "DEU")
    complete = [{"year": y, "PC_HEALTHXP": 15.0, "PC_GDP": 1.5, "USD_CAP": 600.0 + y} for y in range(2011, 2021)]
    status, answer = call(service, body={"country": "DEU", "series": complete})
    assert status == 200 and answer["input_kind"] == "series" and calls == ["parse"]
    gap = [r for r in complete if r["year"] != 2016]
    body = {"instances": [{**deu, "PC_GDP_avg": -1}, {"country": "FRA", "series": gap}]}
    status, error = call(service, body=body)  # the fast path fails on item 0: the exhaustive pass names both
    assert status == 400 and {d["field"] for d in error["details"]} == {
        "instances[0].PC_GDP_avg",
        "instances[1].series",
    }


def test_a_non_finite_number_is_named_by_its_field(service, original_model):
    table, _ = original_model
    deu = features(table, "DEU")
    body = json.dumps({"instances": [deu, {**deu, "PC_GDP_avg": float("inf"), "USD_CAP_growth": float("nan")}]})
    assert "Infinity" in body and "NaN" in body  # what Python's json.dumps writes
    status, error = call(service, body=body.encode())
    assert status == 400 and error["details"] == [
        {"field": "instances[1].PC_GDP_avg", "problem": "must be a finite number, got Infinity"},
        {"field": "instances[1].USD_CAP_growth", "problem": "must be a finite number, got NaN"},
    ]
    status, error = call(service, body=b'{"country": "DEU", "series": -Infinity}')
    assert status == 400 and error["details"][0]["field"] == "series"
    status, error = call(service, body=b'{"country": "DEU", "PC_GDP_avg": Infinity')  # still not JSON
    assert status == 400 and error["details"][0]["problem"].startswith("not valid JSON")


@pytest.mark.parametrize(
    "path",
    [
        "/reports/../x",
        "/reports/%2e%2e/",
        "/reports/models/nope.html",
        "/reports/",
        "/reports/drift/latest.json/",
        "/reports/" + "a" * 5000,
        "/predict/batch/x",
        "/robots.txt",
    ],
)
def test_unknown_paths_are_json_404s(service, path):
    status, error = call(service, "GET", path)
    assert status == 404 and error["error"] == "not found" and len(error["details"][0]["problem"]) < 200


def test_a_series_is_checked_against_the_window_of_the_model_that_answers_its_country(model, original_model):
    candidate = copy.deepcopy(model)
    candidate.version, candidate.window = "1.1.0", "2012-2021"
    service = PredictionService(PredictSettings(candidate_traffic=0.5), Models(production=model, candidate=candidate))
    table, _ = original_model
    to_candidate = next(c for c in table.countries if traffic_bucket(c) < 0.5)
    to_production = next(c for c in table.countries if traffic_bucket(c) >= 0.5)
    series = [{"year": y, "PC_HEALTHXP": 15.0, "PC_GDP": 1.5, "USD_CAP": 600.0 + y} for y in range(2011, 2021)]
    status, answer = call(service, body={"country": to_production, "series": series})
    assert status == 200 and answer["variant"] == "production"
    status, error = call(service, body={"instances": [{"country": to_candidate, "series": series}]})
    assert status == 400 and error["details"] == [
        {"field": "instances[0].series", "problem": "years 2021 of the model's window 2012-2021 are missing"}
    ]
    status, answer = call(service, body={"country": to_candidate, "series": series}, query=b"version=1.0.0")
    assert status == 200 and answer["model_version"] == "1.0.0"  # a pinned version's window


def test_a_bad_body_is_400_whatever_the_models(model):
    """The models are read before validation, but what they refuse (404, 503) waits for a valid body."""
    series = [{"year": y, "PC_HEALTHXP": 15.0, "PC_GDP": 1.5, "USD_CAP": 600.0} for y in range(2011, 2021)]
    empty = PredictionService(PredictSettings(), Models())
    assert call(empty, body={"country": "DEU", "PC_GDP_avg": "x"})[0] == 400
    assert call(empty, body={"country": "DEU", "series": series})[0] == 503
    served = PredictionService(PredictSettings(), Models(production=model))
    assert call(served, body={"country": "DEU", "PC_GDP_avg": "x"}, query=b"version=9.9.9")[0] == 400
    assert call(served, body={"country": "DEU", "series": series}, query=b"version=9.9.9")[0] == 404
