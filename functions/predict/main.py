"""HTTP Cloud Function: real-time market-segment predictions from the registry's model.

Routes: POST / and /predict, GET /health, GET /model, GET /openapi.json. The model is loaded
from GCS on first use and cached per instance; the production alias is re-checked at most every
PHARMASEG_ALIAS_TTL_SECONDS, so a promotion is served without a restart. This module imports
neither scikit-learn nor pandas nor the BigQuery client: predictions are logged as JSON lines
on stdout and a log sink takes them to BigQuery.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import flask
import functions_framework

from pharmaseg import config
from pharmaseg.errors import VersionNotFoundError
from pharmaseg.features import Window
from pharmaseg.gcs_reader import GcsReader
from pharmaseg.logs import log
from pharmaseg.openapi import openapi_document
from pharmaseg.predict_api import (
    ApiError,
    Limits,
    features_of,
    parse_body,
    parse_request,
    traffic_bucket,
    version_problem,
)
from pharmaseg.registry import ModelCache
from pharmaseg.serving import predict_records

_cache: ModelCache | None = None


@dataclass(frozen=True)
class Settings:
    """This instance's configuration, read from the environment once (it cannot change while running)."""

    limits: Limits
    alias: str
    candidate_alias: str
    candidate_traffic: float


@functools.cache
def _settings() -> Settings:
    return Settings(
        limits=Limits(
            max_body_bytes=int(config.setting("PHARMASEG_MAX_BODY_BYTES")),
            max_instances=int(config.setting("PHARMASEG_MAX_INSTANCES")),
        ),
        alias=config.setting("PHARMASEG_MODEL_ALIAS"),
        candidate_alias=config.setting("PHARMASEG_CANDIDATE_ALIAS"),
        candidate_traffic=float(config.setting("PHARMASEG_CANDIDATE_TRAFFIC")),
    )


def _models() -> ModelCache:
    """The per-instance model cache, created on first use (lazy global, as Google's samples do)."""
    global _cache
    if _cache is None:
        reader = GcsReader(config.required("PHARMASEG_MODELS_BUCKET"))
        _cache = ModelCache(reader, ttl_seconds=float(config.setting("PHARMASEG_ALIAS_TTL_SECONDS")))
    return _cache


_window = functools.lru_cache(maxsize=16)(Window.parse)


def _load(version: str | None = None, alias: str | None = None):
    """A model or an ApiError: 404 for an unknown pinned version, 503 when nothing can be served."""
    try:
        if version:
            return _models().version(version)
        return _models().alias(alias or _settings().alias)
    except VersionNotFoundError as exc:
        if version:
            raise ApiError(404, "unknown model version", [{"field": "version", "problem": str(exc)}]) from None
        raise ApiError(503, "model unavailable", [{"field": "model", "problem": str(exc)}]) from None
    except Exception as exc:  # GCS unreachable, checksum mismatch, malformed artifact...
        raise ApiError(503, "model unavailable", [{"field": "model", "problem": str(exc)[:300]}]) from None


def _candidate_for(country: str):
    """The candidate model if this country falls in its traffic share and a candidate exists."""
    settings = _settings()
    if settings.candidate_traffic <= 0 or traffic_bucket(country) >= settings.candidate_traffic:
        return None
    try:
        return _models().alias(settings.candidate_alias)
    except Exception:
        return None


def _predict(request, request_id: str, started: float):
    limits = _settings().limits
    if (request.content_length or 0) > limits.max_body_bytes:  # refuse before reading the body
        raise ApiError(
            413, "request body too large", [{"field": "body", "problem": f"over {limits.max_body_bytes} bytes"}]
        )
    doc = parse_body(request.get_data(cache=False), request.headers.get("Content-Type"), limits)
    parsed = parse_request(doc, request.args.get("version") if request.query_string else None, limits)
    pinned = _load(version=parsed.version) if parsed.version else None
    production = pinned or _load()
    rows = []  # (instance, features, model, variant) in request order
    for i, instance in enumerate(parsed.instances):
        candidate = None if pinned else _candidate_for(instance.country)
        model = candidate or production
        values = features_of(instance, _window(model.window), f"instances[{i}]." if parsed.batch else "")
        rows.append((instance, values, model, "candidate" if candidate else "production"))
    records: list[dict] = [{}] * len(rows)
    for model in {id(row[2]): row[2] for row in rows}.values():  # one vectorised call per model
        positions = [i for i, row in enumerate(rows) if row[2] is model]
        batch = predict_records(model, [rows[i][1] for i in positions])
        for i, record in zip(positions, batch):
            records[i] = record
    now = datetime.now(UTC).isoformat()
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    predictions = []
    for (instance, values, model, variant), record in zip(rows, records):
        predictions.append(
            {"country": instance.country, **record, "variant": variant, "input_kind": instance.kind, "timestamp": now}
        )
        log(
            "INFO",
            f"prediction {instance.country} -> {record['cluster_name']}",
            time=now,
            event="prediction",
            request_id=request_id,
            country=instance.country,
            input_kind=instance.kind,
            features=dict(zip(model.feature_names, values)),
            cluster=record["cluster"],
            cluster_name=record["cluster_name"],
            confidence=record["confidence"],
            model_version=model.version,
            variant=variant,
            latency_ms=latency_ms,
        )
    return ({"predictions": predictions} if parsed.batch else predictions[0]), 200


def _model_info(request):
    version = request.args.get("version")
    if version is not None and version_problem(version):
        raise ApiError(400, "invalid request", [{"field": "version", "problem": version_problem(version)}])
    model = _load(version=version)
    centroids = model.centroids_original_units()
    return {
        "model_version": model.version,
        "window": model.window,
        "feature_names": model.feature_names,
        "metrics": model.metrics,
        "segments": [
            {**s.to_dict(), "centroid": dict(zip(model.feature_names, centroids[s.cluster].tolist()))}
            for s in model.segments
        ],
        "lineage": model.lineage,
    }, 200


def _health():
    try:
        model = _load()
    except ApiError as exc:
        return {"status": "unavailable", "model_loaded": False, "reason": exc.details[0]["problem"]}, 503
    return {"status": "ok", "model_loaded": True, "model_version": model.version}, 200


ROUTES = {
    ("POST", "/"): "predict",
    ("POST", "/predict"): "predict",
    ("GET", "/health"): "health",
    ("GET", "/model"): "model",
    ("GET", "/openapi.json"): "openapi",
}


@functions_framework.http
def predict(request):
    """Route the request; every failure becomes a JSON error, never a stack trace."""
    body, status = _route(request)
    # Serialised here, compact and unsorted: Flask's default sorts keys, a measurable cost per request.
    return flask.Response(json.dumps(body, separators=(",", ":")), status, mimetype="application/json")


def _route(request) -> tuple[dict, int]:
    started = time.perf_counter()
    request_id = (request.headers.get("X-Cloud-Trace-Context") or "").split("/")[0] or uuid.uuid4().hex
    path = request.path.rstrip("/") or "/"
    route = ROUTES.get((request.method, path))
    try:
        if route is None:
            if any(p == path for _, p in ROUTES):
                allowed = sorted(m for m, p in ROUTES if p == path)
                raise ApiError(405, "method not allowed", [{"field": "method", "problem": f"use {', '.join(allowed)}"}])
            raise ApiError(404, "not found", [{"field": "path", "problem": f"no route {path}; see /openapi.json"}])
        if route == "predict":
            return _predict(request, request_id, started)
        if route == "health":
            return _health()
        if route == "model":
            return _model_info(request)
        return openapi_document(_settings().limits), 200
    except ApiError as exc:
        return exc.body(), exc.status
    except Exception as exc:
        log("ERROR", f"unhandled error: {exc!r}", event="error", request_id=request_id, trace=traceback.format_exc())
        return {"error": "internal error", "request_id": request_id}, 500
