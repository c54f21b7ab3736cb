"""The prediction function's service: routes, model choice (pinned, production, A/B), answers, log lines.

``functions/predict/main.py`` turns Flask's request into an ``HttpRequest`` and this service's
``HttpResponse`` back; everything else happens here, where unit tests reach it without HTTP.
Every failure becomes a JSON error naming what is wrong (``validation.RequestError``); an
unexpected one is logged with its trace and answered 500 without it.

Per request the work is a msgspec decode, a dictionary lookup for the model, one explanation per
country in plain Python (``pharmaseg.model.explain``), a msgspec encode of the answer and of the log
lines, and one write to stdout: the budget is a few tens of microseconds over what the framework
itself costs (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec

from pharmaseg import __version__
from pharmaseg.config import PredictSettings
from pharmaseg.errors import VersionNotFoundError
from pharmaseg.logs import log
from pharmaseg.model.cache import REVIEW, SEMVER, ModelCache, parse_version
from pharmaseg.model.explain import explainer_for
from pharmaseg.model.features import FEATURE_NAMES, Window
from pharmaseg.model.history import country_history
from pharmaseg.model.snapshot import LATEST
from pharmaseg.predict import logline
from pharmaseg.predict.contract import ROUTES
from pharmaseg.predict.openapi import VERSION_PATTERN, document
from pharmaseg.predict.validation import Instance, RequestError, parse
from pharmaseg.reports.objects import MONITORING_PAGE, REPORT_PATTERN

JSON = "application/json"
SERVICE_NAME = "Pharmaceutical Market Segmentation API"
_encoder = msgspec.json.Encoder()
_FEATURES = list(FEATURE_NAMES)


@dataclass
class HttpRequest:
    """The parts of an HTTP request the service reads; ``read_body`` is called at most once."""

    method: str
    path: str
    query_string: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_length: int | None = None
    read_body: Callable[[], bytes] = lambda: b""
    started: float = 0.0  # perf_counter when the service took the request


@dataclass
class HttpResponse:
    status: int
    body: bytes | Iterator[bytes]  # an iterator streams (a report from the bucket)
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


REPORT_OBJECT = re.compile(REPORT_PATTERN)
COUNTRY_CODE = re.compile(r"[A-Za-z]{3}")
REPORT_TYPES = {"html": "text/html; charset=utf-8", "json": JSON}


def traffic_bucket(country: str) -> float:
    """A stable number in [0, 1) per country, so a country always sees the same A/B variant."""
    return int.from_bytes(hashlib.sha256(country.encode()).digest()[:8], "big") / 2**64


def _error(exc: RequestError) -> HttpResponse:
    body = {"error": exc.error, "details": [{"field": f, "problem": p} for f, p in exc.problems]}
    return HttpResponse(exc.status, _encoder.encode(body))


def error_answer(status: int, error: str, problems: list[tuple[str, str]]) -> HttpResponse:
    """The contract's JSON error (``ErrorBody``), for an answer the web framework gives on its own."""
    return _error(RequestError(status, error, problems))


class PredictionService:
    """The HTTP prediction API over a model source (``model.cache.ModelCache``)."""

    def __init__(self, settings: PredictSettings, models, *, reports=None):
        self.settings = settings
        self.models = models
        self.reports = reports  # a GcsReader on the reports bucket, or None
        self._candidate_down_until = 0.0
        self._shadow_state: tuple[float, str, Any] | None = None  # (until, production version, model or None)
        self._page: tuple[float, bytes] | None = None
        self._page_lock = threading.Lock()
        self._windows: dict[str, Window] = {}
        # The dispatch of contract.ROUTES (the table openapi.py documents): path -> method -> handler,
        # and for a path with a parameter ("/reports/{object}") its prefix -> method -> handler.
        self.routes: dict[str, dict[str, Callable[[HttpRequest], HttpResponse]]] = {}
        self.prefixes: dict[str, dict[str, Callable[[HttpRequest], HttpResponse]]] = {}
        for route in ROUTES:
            table, key = (self.prefixes, route.prefix) if route.prefix else (self.routes, route.path)
            table.setdefault(key, {})[route.method] = getattr(self, route.handler)

    @classmethod
    def deployed(cls, settings: PredictSettings) -> PredictionService:
        """The service as the function runs it: models and reports read lean from GCS."""
        from pharmaseg.gcp.gcs_reader import GcsReader

        models = ModelCache(GcsReader(settings.models_bucket), ttl_seconds=settings.alias_ttl_seconds)
        reports = GcsReader(settings.reports_bucket) if settings.reports_bucket else None
        return cls(settings, models, reports=reports)

    # -- routing ---------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request; never raises."""
        started = time.perf_counter()
        try:
            if request.path in ("/app/", "/monitoring/"):  # the pages' links are relative to /app, /monitoring
                return HttpResponse(308, b"", headers={"Location": "../" + request.path.strip("/")})
            path = request.path.rstrip("/") or "/"
            methods = self.routes.get(path)
            if methods is None:
                methods = next((m for p, m in self.prefixes.items() if request.path.startswith(p)), None)
            if methods is None:
                shown = path if len(path) <= 100 else path[:97] + "..."
                raise RequestError(404, "not found", [("path", f"no route {shown}; see /openapi.json")])
            handler = methods.get(request.method)
            if handler is None:
                allowed = ", ".join(sorted(methods))
                response = _error(RequestError(405, "method not allowed", [("method", f"use {allowed}")]))
                response.headers["Allow"] = allowed
                return response
            request.started = started
            return handler(request)
        except RequestError as exc:
            return _error(exc)
        except Exception as exc:
            request_id = _request_id(request)
            log(
                "ERROR", f"unhandled error: {exc!r}", event="error", request_id=request_id, trace=traceback.format_exc()
            )
            return HttpResponse(500, _encoder.encode({"error": "internal error", "request_id": request_id}))

    # -- models ----------------------------------------------------------------------------------

    def _load(self, version: str | None = None, alias: str | None = None):
        """A model, or a RequestError: 404 for an unknown pinned version, 503 when nothing can be served."""
        try:
            if version:
                return self.models.version(version)
            return self.models.alias(alias or self.settings.model_alias)
        except VersionNotFoundError as exc:
            if version:
                raise RequestError(404, "unknown model version", [("version", str(exc))]) from None
            raise RequestError(503, "model unavailable", [("model", str(exc))]) from None
        except Exception as exc:  # GCS unreachable, checksum mismatch, malformed artifact...
            raise RequestError(503, "model unavailable", [("model", str(exc)[:300])]) from None

    def _candidate(self):
        """The candidate model, or None: production serves while none exists or it cannot be read."""
        if time.monotonic() < self._candidate_down_until:
            return None
        try:
            return self.models.alias(self.settings.candidate_alias)
        except Exception as exc:  # production serves; the A/B test waits one TTL before asking again
            self._candidate_down_until = time.monotonic() + self.settings.alias_ttl_seconds
            if not isinstance(exc, VersionNotFoundError):  # no candidate at all is normal, anything else is not
                log("WARNING", f"candidate alias unavailable, production serves: {exc!r}"[:500], event="candidate_down")
            return None

    def _shadow(self, production):
        """The version under review, or None: the candidate alias if set, else the newest version the gate
        held (``model.cache.REVIEW``), provided it is newer than production.

        Decided once per alias TTL (and when production changes), so a request pays a clock read.
        """
        now = time.monotonic()
        state = self._shadow_state
        if state is not None and now < state[0] and state[1] == production.version:
            return state[2]
        found = self._candidate()  # None while unset or down (then not asked again within the TTL)
        if found is None:
            try:
                found = self.models.alias(REVIEW)
            except VersionNotFoundError:
                pass
            except Exception as exc:  # the shadow is evidence, never a reason to fail an answer
                log("WARNING", f"alias {REVIEW} unavailable for shadow scoring: {exc!r}"[:500], event="shadow_down")
        if found is not None and (
            found.feature_names != _FEATURES or parse_version(found.version) <= parse_version(production.version)
        ):
            found = None
        self._shadow_state = (now + self.settings.alias_ttl_seconds, production.version, found)
        return found

    def _shadow_segment(self, shadow, instance: Instance, row, used) -> str | None:
        """What the version under review would have answered: a code alone is scored on the shadow's own
        training row, as it would be if that version served; None when it would not know the country."""
        if instance.kind == "stored" and instance.window is None:
            row = shadow.training_features.get(instance.country.strip().upper())
            if row is None:
                return None
        cluster = explainer_for(shadow, self.settings.borderline_confidence).nearest(row, used)
        return shadow.segments[cluster].name

    def _window(self, text: str) -> Window:
        window = self._windows.get(text)
        if window is None:
            window = self._windows[text] = Window.parse(text)
        return window

    # -- predictions -----------------------------------------------------------------------------

    def _body(self, request: HttpRequest) -> bytes:
        content_type = request.headers.get("Content-Type") or ""
        if content_type.split(";", 1)[0].strip().lower() != JSON:
            raise RequestError(415, "unsupported media type", [("Content-Type", "must be application/json")])
        limit = self.settings.max_body_bytes
        if (request.content_length or 0) > limit:  # refused before the body is read
            raise RequestError(413, "request body too large", [("body", f"must be at most {limit} bytes")])
        body = request.read_body()
        if len(body) > limit:
            raise RequestError(413, "request body too large", [("body", f"must be at most {limit} bytes")])
        return body

    def _predict(self, request: HttpRequest) -> HttpResponse:
        return self._answer(request, listed=None)

    def _predict_batch(self, request: HttpRequest) -> HttpResponse:
        return self._answer(request, listed="countries")

    def _answer(self, request: HttpRequest, *, listed: str | None) -> HttpResponse:
        body = self._body(request)
        query = _query(request)
        version = _version(query)
        all_reasons = _reasons(query)
        # The models in play are read first, so that a series is checked against the window of the
        # model that will answer it in the one validation pass; a model that cannot be read is
        # refused only after the body was found valid (a bad body is a 400 whatever the models).
        choice = _ModelChoice(self, version)
        parsed = parse(body, max_items=self.settings.max_instances, listed=listed, window_for=choice.window_for)
        choice.raise_unavailable()
        now = datetime.now(UTC).isoformat()
        request_id = _request_id(request)
        answers, lines, problems = [], [], []
        borderline = self.settings.borderline_confidence
        year = int(now[:4])
        for instance in parsed.instances:
            model, candidate = choice.model_for(instance.country)
            try:
                row, used, stored = self._row(instance, model)
            except RequestError as exc:
                problems.append(exc)
                continue
            explanation = explainer_for(model, borderline).explain(row, used)
            origin, stability = self._origin(instance, model, year, stored)
            segment = model.segments[explanation.cluster]
            answer = explanation.to_dict(all_reasons)
            answer.update(
                country=instance.country,
                cluster=explanation.cluster,
                cluster_name=segment.name,
                recommendation=segment.recommendation,
                confidence=explanation.confidence,
                stability=stability,
                distances=dict(zip(explanation.segment_names, explanation.distances)),
                input_kind=instance.kind,
                features_used=explanation.features,
                features_missing=explanation.space.missing,
                ignored_fields=instance.ignored,
                window=model.window,
                features_from=origin,
                model_version=model.version,
                variant="candidate" if candidate else "production",
                timestamp=now,
            )
            answers.append(answer)
            shadow = choice.shadow() if not candidate else None
            shadow_segment = self._shadow_segment(shadow, instance, row, used) if shadow is not None else None
            lines.append((instance, explanation, answer, model, shadow_segment and (shadow.version, shadow_segment)))
        if problems:  # a bad series is a 400; only unknown countries alone make a 404
            worst = next((p for p in problems if p.status == 400), problems[0])
            raise RequestError(worst.status, worst.error, [x for p in problems for x in p.problems])
        elapsed = time.perf_counter() - request.started
        for answer in answers:
            answer["processing_time_seconds"] = elapsed
        logline.write([_log_line(i, e, a, m, s, request_id, now, elapsed * 1000) for i, e, a, m, s in lines])
        if parsed.listed is None:
            return HttpResponse(200, _encoder.encode(answers[0]))
        doc = {"predictions": answers, "total_countries": len(answers), "processing_time_seconds": elapsed}
        return HttpResponse(200, _encoder.encode(doc))

    def _row(self, instance: Instance, model) -> tuple[list[float], tuple[int, ...] | None, tuple | None]:
        """The model's feature row for one instance, the positions it gives (None: all nine) and, for
        a country code with a window, the feature store's (window, source) it was read from."""
        if model.feature_names != _FEATURES:
            raise RequestError(503, "model unavailable", [("model", f"{model.version} has other features")])
        if instance.kind == "stored":
            code = instance.country.strip().upper()
            if instance.window is not None:
                snapshot, window, row = self._stored_window(instance, code, model)
                return row, None, (window, snapshot.source)
            row = model.training_features.get(code)
            if row is None:
                raise RequestError(
                    404,
                    "unknown country",
                    [
                        (
                            f"{instance.path}country",
                            f"{instance.country!r} is not a training country of model {model.version} "
                            f"({len(model.training_features)} known, e.g. DEU); send its figures, or name a "
                            f'window of the feature store ("window": "latest")',
                        )
                    ],
                )
            return row, None, None
        return instance.row, instance.given, None  # a series' row was derived for this model's window by parse

    def _feature_snapshot(self):
        """The feature store's newest snapshot, or a RequestError: 404 when none was written yet."""
        try:
            snapshot = self.models.snapshot()
        except Exception as exc:  # GCS unreachable, a snapshot that does not decode...
            raise RequestError(503, "feature store unavailable", [("window", str(exc)[:300])]) from None
        if snapshot is None:
            raise RequestError(
                404, "no feature store", [("window", "no source file has been stored yet; send the figures instead")]
            )
        return snapshot

    def _stored_window(self, instance: Instance, code: str, model):
        """(snapshot, window, features) of a country code in the window the request names."""
        snapshot = self._feature_snapshot()
        where = f"{instance.path}window"
        length = len(self._window(model.window).years)
        if snapshot.window_years != length:
            raise RequestError(
                404,
                "window not in the feature store",
                [
                    (
                        where,
                        f"the feature store holds {snapshot.window_years}-year windows; model {model.version} "
                        f"uses {length}",
                    )
                ],
            )
        found = snapshot.row(code, instance.window)
        if found is None:
            named = "no complete window" if instance.window == LATEST else f"no complete window {instance.window}"
            raise RequestError(
                404,
                "window not in the feature store",
                [(where, f"{named} for {instance.country!r} in {snapshot.source.uri}")],
            )
        return snapshot, *found

    def _origin(self, instance: Instance, model, year: int, stored: tuple | None):
        """Where a country code's features came from (``stored``: the feature store's window and source,
        None for the training row) and, for a training country in its training window, how stable its
        segment is; (None, None) for figures sent in the request."""
        if instance.kind != "stored":
            return None, None
        if stored is None:
            lineage = model.lineage
            uri, sha256, name = lineage.get("data_uri") or "unknown", lineage.get("data_sha256"), model.window
            kind, end = "training row", self._window(model.window).end
        else:
            window, source = stored
            uri, sha256, name, kind, end = source.uri, source.sha256, str(window), "feature store", window.end
        origin = {"kind": kind, "window": name, "source_uri": uri, "source_sha256": sha256, "age_years": year - end}
        per_country = model.country_stability() or {}
        stability = per_country.get(instance.country.strip().upper()) if name == model.window else None
        return origin, stability

    def _history(self, request: HttpRequest) -> HttpResponse:
        """``/countries/{code}/history``: the country's segment over every window of the snapshot."""
        code, _, rest = request.path.removeprefix("/countries/").partition("/")
        if rest.rstrip("/") != "history" or not COUNTRY_CODE.fullmatch(code):
            shown = request.path if len(request.path) <= 100 else request.path[:97] + "..."
            raise RequestError(404, "not found", [("path", f"no route {shown!r}; use /countries/CODE/history")])
        code = code.upper()
        model = self._load()
        snapshot = self._feature_snapshot()
        length = len(self._window(model.window).years)
        windows = snapshot.windows(code) if snapshot.window_years == length else []
        if not windows:
            raise RequestError(
                404,
                "unknown country",
                [("code", f"{code} has no complete {length}-year window in {snapshot.source.uri}")],
            )
        history = country_history(model, code, windows, borderline_below=self.settings.borderline_confidence)
        per_country = model.country_stability() or {}
        body = {
            **history.to_dict(),
            "source_uri": snapshot.source.uri,
            "source_sha256": snapshot.source.sha256,
            "stability": per_country.get(code),
        }
        return HttpResponse(200, _encoder.encode(body))

    # -- the other routes ------------------------------------------------------------------------

    def _health(self, request: HttpRequest) -> HttpResponse:
        try:
            model = self._load()
        except RequestError as exc:
            body = {"status": "unavailable", "model_loaded": False, "model_version": None, "reason": exc.problems[0][1]}
            return HttpResponse(503, _encoder.encode(body))
        return HttpResponse(
            200, _encoder.encode({"status": "healthy", "model_loaded": True, "model_version": model.version})
        )

    def _versioned_model(self, request: HttpRequest):
        return self._load(version=_version(_query(request)))

    def _model(self, request: HttpRequest) -> HttpResponse:
        model = self._versioned_model(request)
        centroids = model.centroids_original_units()
        body = {
            "model_version": model.version,
            "window": model.window,
            "feature_names": model.feature_names,
            "metrics": model.metrics,
            "segments": [
                {**s.to_dict(), "centroid": dict(zip(model.feature_names, centroids[s.cluster].tolist()))}
                for s in model.segments
            ],
            "lineage": model.lineage,
        }
        return HttpResponse(200, _encoder.encode(body))

    def _model_info(self, request: HttpRequest) -> HttpResponse:
        model = self._versioned_model(request)
        body = {
            "version": model.version,
            "created_at": model.lineage.get("created_at"),
            "n_clusters": model.k,
            "silhouette_score": model.metrics.get("silhouette"),
            "window": model.window,
        }
        return HttpResponse(200, _encoder.encode(body))

    def _openapi(self, request: HttpRequest) -> HttpResponse:
        try:
            window = self._load().window
        except RequestError:
            window = "2011-2020"  # no model yet: the document of the original window
        doc = document(window, self.settings.max_instances, self.settings.max_body_bytes)
        return HttpResponse(200, _encoder.encode(doc))

    def _wants_html(self, request: HttpRequest) -> bool:
        return "text/html" in (request.headers.get("Accept") or "")

    def _index(self, request: HttpRequest) -> HttpResponse:
        if self._wants_html(request):
            return self._app(request)
        try:
            version = self._load().version
        except RequestError:
            version = None
        body = {
            "message": SERVICE_NAME,
            "version": __version__,
            "model_version": version,
            "documentation": "/openapi.json",
            "page": "/app",
        }
        return HttpResponse(200, _encoder.encode(body))

    def _app(self, request: HttpRequest) -> HttpResponse:
        """The strategy page, built on first request (never on the cold path) and kept for a while."""
        now = time.monotonic()
        cached = self._page
        if cached is None or now - cached[0] > self.settings.alias_ttl_seconds:
            with self._page_lock:
                if self._page is None or now - self._page[0] > self.settings.alias_ttl_seconds:
                    from pharmaseg.predict import page

                    self._page = (now, page.build(self))
                cached = self._page
        return HttpResponse(200, cached[1], "text/html; charset=utf-8")

    def _report(self, request: HttpRequest) -> HttpResponse:
        """A model or drift report, streamed from the private reports bucket through this function."""
        name = request.path.removeprefix("/reports/")
        if not REPORT_OBJECT.fullmatch(name):
            shown = repr(name) if len(name) <= 100 else repr(name[:97]) + "..."
            raise RequestError(404, "not found", [("path", f"{shown} is not a report (models/... or drift/...)")])
        return self._stream(name, f"no report {name}")

    def _monitoring(self, request: HttpRequest) -> HttpResponse:
        """The monitoring page the last drift check built, streamed as a report is: no BigQuery per request."""
        return self._stream(MONITORING_PAGE, "no monitoring page yet: the next drift check builds it")

    def _stream(self, name: str, missing: str) -> HttpResponse:
        if self.reports is None:
            raise RequestError(404, "not found", [("path", "this function has no reports bucket")])
        chunks = self.reports.stream(name)
        if chunks is None:
            raise RequestError(404, "not found", [("path", missing)])
        return HttpResponse(200, chunks, REPORT_TYPES[name.rsplit(".", 1)[1]])


class _ModelChoice:
    """The models one prediction request may be answered with, and which answers which country.

    A pinned version answers every country; otherwise production does, except the share of
    countries that falls in the candidate's traffic (by their hash) while a candidate exists. The
    candidate is read at most once per request, and only if some country falls in its share.
    """

    _UNREAD = object()

    def __init__(self, service: PredictionService, version: str | None):
        self.service = service
        self.pinned = version is not None
        self.error: RequestError | None = None
        self.base = None
        try:
            self.base = service._load(version=version) if version else service._load()
        except RequestError as exc:
            self.error = exc
        self._candidate = self._UNREAD
        self._shadow = self._UNREAD

    def shadow(self):
        """The version under review that scores production's answers in the shadow, read once per request."""
        if self._shadow is self._UNREAD:
            self._shadow = self.service._shadow(self.base)
        return self._shadow

    def model_for(self, country: str) -> tuple[Any, bool]:
        """(the model that answers ``country``, whether it is the candidate)."""
        share = self.service.settings.candidate_traffic
        if self.pinned or share <= 0 or traffic_bucket(country) >= share:
            return self.base, False
        if self._candidate is self._UNREAD:
            self._candidate = self.service._candidate()
        return (self._candidate, True) if self._candidate is not None else (self.base, False)

    def window_for(self, country: str) -> Window | None:
        if self.base is None:
            return None
        return self.service._window(self.model_for(country)[0].window)

    def raise_unavailable(self) -> None:
        if self.error is not None:
            raise self.error


# -- request helpers -----------------------------------------------------------------------------


# Request ids without a system call per request: this process's random prefix and a counter.
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count()


def _request_id(request: HttpRequest) -> str:
    trace = request.headers.get("X-Cloud-Trace-Context")
    return trace.split("/", 1)[0] if trace else f"{_ID_PREFIX}{next(_ids):08x}"


def _query(request: HttpRequest) -> dict[str, list[str]]:
    if not request.query_string:
        return {}
    return parse_qs(request.query_string.decode("latin-1"), keep_blank_values=True)


def _version(query: dict[str, list[str]]) -> str | None:
    values = query.get("version")
    if not values:
        return None
    version = values[-1]
    if not SEMVER.fullmatch(version):
        raise RequestError(400, "invalid request", [("version", f"{version!r} does not match {VERSION_PATTERN}")])
    return version


def _reasons(query: dict[str, list[str]]) -> bool:
    """``reasons=all`` asks for every feature's reason; ``top`` (the default) for the top three."""
    values = query.get("reasons")
    if not values:
        return False
    if values[-1] not in ("top", "all"):
        raise RequestError(400, "invalid request", [("reasons", f"{values[-1]!r} is not top or all")])
    return values[-1] == "all"


def _log_line(instance: Instance, explanation, answer: dict[str, Any], model, shadow, request_id, now, latency_ms):
    line = logline.PredictionLogLine(
        severity="INFO",
        message=f"prediction {instance.country} -> {answer['cluster_name']}",
        time=now,
        event="prediction",
        request_id=request_id,
        country=instance.country,
        input_kind=instance.kind,
        features=dict(zip(explanation.features, explanation.values)),
        features_used=explanation.features,
        cluster=answer["cluster"],
        cluster_name=answer["cluster_name"],
        confidence=answer["confidence"],
        borderline=answer["borderline"],
        runner_up=answer["runner_up"]["cluster_name"],
        reasons=[logline.LoggedReason(r["feature"], r["share"], r["contribution"]) for r in answer["reasons"]],
        model_version=model.version,
        variant=answer["variant"],
        latency_ms=round(latency_ms, 3),
    )
    if shadow is not None:
        line.shadow_version, line.shadow_cluster_name = shadow
        line.shadow_agrees = shadow[1] == answer["cluster_name"]
    return line
