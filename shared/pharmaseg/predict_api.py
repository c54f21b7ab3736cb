"""The prediction API's request contract: parsing, validation, A/B routing, responses.

Kept free of Flask so it can be tested directly and so the function's ``main.py`` stays a thin
adapter. Every error is an ``ApiError`` with an HTTP status and one entry per bad field; nothing
here raises anything else for bad input.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pharmaseg.errors import DataValidationError
from pharmaseg.features import FEATURE_NAMES, MEASURES, Window, features_from_series
from pharmaseg.registry import SEMVER

# Plausible ranges of each feature: a value outside is a unit or data-entry mistake, not a market.
# Shares are percentages, USD_CAP is US dollars per head at PPP; a compound annual growth rate
# cannot fall below -100 %.
_UPPER = {"PC_HEALTHXP": 100.0, "PC_GDP": 100.0, "USD_CAP": 100_000.0}
FEATURE_RANGES: dict[str, tuple[float, float]] = {}
for _m in MEASURES:
    FEATURE_RANGES[f"{_m}_growth"] = (-100.0, 1000.0)
    FEATURE_RANGES[f"{_m}_avg"] = (0.0, _UPPER[_m])
    FEATURE_RANGES[f"{_m}_volatility"] = (0.0, _UPPER[_m])
COUNTRY_MAX_LENGTH = 64
MAX_INT_DIGITS = 18  # fits in a float's range; longer JSON integers are parsed as floats
SINGLE_FIELDS = {"country", "version", "series", *FEATURE_NAMES}


@dataclass
class ApiError(Exception):
    status: int
    error: str
    details: list[dict[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "details": self.details}


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_instances: int


@dataclass
class Instance:
    country: str
    kind: str  # "features" or "series"
    features: list[float] | None = None
    series: list[Any] | None = None


@dataclass
class PredictRequest:
    instances: list[Instance]
    batch: bool
    version: str | None


def _problem(path: str, problem: str) -> dict[str, str]:
    return {"field": path, "problem": problem}


def parse_body(body: bytes, content_type: str | None, limits: Limits) -> Any:
    """Check the envelope (type, size, JSON) before looking at any field."""
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported media type", [_problem("Content-Type", "must be application/json")])
    if len(body) > limits.max_body_bytes:
        raise ApiError(
            413, "request body too large", [_problem("body", f"must be at most {limits.max_body_bytes} bytes")]
        )
    try:
        # Integers too long for a float (10**400) become inf and are refused by field validation,
        # instead of overflowing wherever they are first used.
        return json.loads(body, parse_int=_parse_int)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid JSON", [_problem("body", f"not valid JSON: {exc}")]) from None
    except RecursionError:
        raise ApiError(400, "invalid JSON", [_problem("body", "nested too deeply")]) from None


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def _number_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number"
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    low, high = FEATURE_RANGES[name]
    exclusive_low = not name.endswith("_volatility")
    if value > high or value < low or (exclusive_low and value == low):
        return f"{value} is out of range {'(' if exclusive_low else '['}{low:g}, {high:g}]"
    return None


def _parse_instance(doc: Any, path: str, problems: list[dict[str, str]], *, allow_version: bool) -> Instance | None:
    prefix = f"{path}." if path else ""
    if not isinstance(doc, dict):
        problems.append(_problem(path or "body", "must be a JSON object"))
        return None
    allowed = SINGLE_FIELDS if allow_version else SINGLE_FIELDS - {"version"}
    for name in sorted(set(doc) - allowed):
        problems.append(_problem(f"{prefix}{name}", "unknown field"))
    country = doc.get("country")
    if not isinstance(country, str) or not country.strip() or len(country) > COUNTRY_MAX_LENGTH:
        problems.append(_problem(f"{prefix}country", f"required: a non-empty string of at most {COUNTRY_MAX_LENGTH}"))
        country = None
    present = [f for f in FEATURE_NAMES if f in doc]
    if "series" in doc:
        if present:
            problems.append(_problem(f"{prefix}series", "give either series or the 9 features, not both"))
            return None
        if not isinstance(doc["series"], list) or not doc["series"]:
            problems.append(_problem(f"{prefix}series", "must be a non-empty list of yearly records"))
            return None
        return Instance(country, "series", series=doc["series"]) if country else None
    values = []
    for name in FEATURE_NAMES:
        if name not in doc:
            problems.append(_problem(f"{prefix}{name}", "missing"))
            continue
        problem = _number_problem(name, doc[name])
        if problem:
            problems.append(_problem(f"{prefix}{name}", problem))
        else:
            values.append(float(doc[name]))
    if country is None or len(values) != len(FEATURE_NAMES):
        return None
    return Instance(country, "features", features=values)


def version_problem(version: Any) -> str | None:
    """Why a pinned version is malformed (a version is MAJOR.MINOR.PATCH, not an alias name)."""
    if not isinstance(version, str) or not SEMVER.fullmatch(version):
        return f"{version!r} is not a model version such as 1.2.0"
    return None


def parse_request(doc: Any, query_version: str | None, limits: Limits) -> PredictRequest:
    """Validate a decoded body; raises ApiError(400) listing every bad field."""
    problems: list[dict[str, str]] = []
    if isinstance(doc, dict) and "instances" in doc:
        for name in sorted(set(doc) - {"instances", "version"}):
            problems.append(_problem(name, "unknown field"))
        items = doc["instances"]
        if not isinstance(items, list) or not items:
            raise ApiError(400, "invalid request", [_problem("instances", "must be a non-empty list")])
        if len(items) > limits.max_instances:
            raise ApiError(
                413, "too many instances", [_problem("instances", f"at most {limits.max_instances} per request")]
            )
        parsed = [
            _parse_instance(item, f"instances[{i}]", problems, allow_version=False) for i, item in enumerate(items)
        ]
        batch = True
    else:
        parsed = [_parse_instance(doc, "", problems, allow_version=True)]
        batch = False
    version = doc.get("version") if isinstance(doc, dict) else None
    for given in (version, query_version):
        if given is not None and version_problem(given):
            problems.append(_problem("version", version_problem(given)))
    if query_version and version and query_version != version:
        problems.append(_problem("version", f"body says {version}, query says {query_version}"))
    if problems:
        raise ApiError(400, "invalid request", problems)
    return PredictRequest(instances=parsed, batch=batch, version=query_version or version)


def features_of(instance: Instance, window: Window, path: str) -> list[float]:
    """The 9 features of an instance; a raw series goes through the training code path.

    Features derived from a series must fall in the same plausible ranges as features sent
    directly: a series in the wrong unit (e.g. USD per head in cents) is refused, not scored.
    """
    if instance.kind == "features":
        return instance.features
    where = f"{path}series"
    try:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            values = features_from_series(instance.series, window, where=where).tolist()
    except DataValidationError as exc:
        raise ApiError(400, "invalid request", [_problem(f, p) for f, p in exc.problems]) from None
    problems = [
        _problem(where, f"derived {name} {problem}")
        for name, value in zip(FEATURE_NAMES, values)
        if (problem := _number_problem(name, value))
    ]
    if problems:
        raise ApiError(400, "invalid request", problems)
    return values


def traffic_bucket(country: str) -> float:
    """A stable number in [0, 1) per country, so a country always sees the same A/B variant."""
    return int.from_bytes(hashlib.sha256(country.encode()).digest()[:8], "big") / 2**64
