"""The prediction API's types and routes, declared once: validation, dispatch and the OpenAPI document come from here.

Each request body and each answer is a ``msgspec.Struct``. msgspec decodes and checks a body
against them in about a microsecond and writes their JSON Schema (``schema_components``), so
``pharmaseg.predict.openapi`` documents exactly what ``pharmaseg.predict.validation``
enforces. What JSON Schema can say but a Struct cannot (one body among several shapes, each year
of the model's window exactly once in a series) is written next to the types, in one place.

Bounds are plausibility limits: a value outside is a unit or data-entry mistake, not a market.
Shares are percentages; USD_CAP is US dollars per head at PPP; a compound annual growth rate
cannot fall below -100 %. A yearly measure has a floor above zero so that a series always derives
finite features (the growth of 1e-300 to 100 would overflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from pharmaseg.model.features import FEATURE_NAMES, LEVEL_FEATURES
from pharmaseg.model.segments import Segment
from pharmaseg.reports.objects import REPORT_PATTERN

MAX_COUNTRY_LENGTH = 64
MAX_SERIES_YEARS = 100
YEAR_MIN, YEAR_MAX = 1900, 2200  # a year outside is a typing mistake, not data
_UPPER = {"PC_HEALTHXP": 100.0, "PC_GDP": 100.0, "USD_CAP": 100_000.0}
_MEASURE_FLOOR = {"PC_HEALTHXP": 0.01, "PC_GDP": 0.001, "USD_CAP": 0.01}
_UNITS = {"PC_HEALTHXP": "% of health spending", "PC_GDP": "% of GDP", "USD_CAP": "USD per head (PPP)"}

Country = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_COUNTRY_LENGTH,
        pattern=r"[^ \t\n\r\f\v]",  # not only blanks; ASCII, so JSON Schema's and Python's regexes agree
        description="market name or ISO 3166-1 alpha-3 code; for a country alone, a training country's code",
        examples=["DEU"],
    ),
]


def _feature_bounds(name: str) -> dict[str, float]:
    measure, statistic = name.rsplit("_", 1)
    if statistic == "growth":
        return {"gt": -100.0, "le": 1000.0}
    return {"gt" if statistic == "avg" else "ge": 0.0, "le": _UPPER[measure]}


def _feature_type(name: str) -> Any:
    measure, statistic = name.rsplit("_", 1)
    if statistic == "growth":
        description = "compound annual growth over the window, %"
    else:
        what = "mean" if statistic == "avg" else "sample standard deviation"
        description = f"{what} over the window, {_UNITS[measure]}"
    return Annotated[float, Meta(**_feature_bounds(name), description=description)]


FEATURE_TYPES: dict[str, Any] = {name: _feature_type(name) for name in FEATURE_NAMES}
# The fewest features a partial input may give: the three spending levels, which every market
# publishes and which carry most of what separates the segments.
MINIMUM_FEATURES: tuple[str, ...] = LEVEL_FEATURES

# A country's figures: the three levels, and any of the other six. All nine is the original API's
# body ("features"); fewer is a partial input, scored on the features given.
FeatureInput = msgspec.defstruct(
    "FeatureInput",
    [("country", Country)]
    + [(name, FEATURE_TYPES[name]) for name in FEATURE_NAMES if name in MINIMUM_FEATURES]
    + [(name, FEATURE_TYPES[name] | UnsetType, UNSET) for name in FEATURE_NAMES if name not in MINIMUM_FEATURES],
    forbid_unknown_fields=True,
    module=__name__,
)


class YearRecord(Struct, forbid_unknown_fields=True):
    """One year of a country's spending, as in the OECD file."""

    year: Annotated[float, Meta(ge=YEAR_MIN, le=YEAR_MAX, multiple_of=1, description="calendar year (a whole number)")]
    PC_HEALTHXP: Annotated[
        float, Meta(ge=_MEASURE_FLOOR["PC_HEALTHXP"], le=_UPPER["PC_HEALTHXP"], description=_UNITS["PC_HEALTHXP"])
    ]
    PC_GDP: Annotated[float, Meta(ge=_MEASURE_FLOOR["PC_GDP"], le=_UPPER["PC_GDP"], description=_UNITS["PC_GDP"])]
    USD_CAP: Annotated[float, Meta(ge=_MEASURE_FLOOR["USD_CAP"], le=_UPPER["USD_CAP"], description=_UNITS["USD_CAP"])]
    TOTAL_SPEND: Annotated[float, Meta(gt=0, description="million USD; not used by the model")] | UnsetType = UNSET


class SeriesInput(Struct, forbid_unknown_fields=True):
    """A country's yearly records; the nine features are derived by the training code."""

    country: Country
    series: Annotated[
        list[YearRecord],
        Meta(
            min_length=2,
            max_length=MAX_SERIES_YEARS,
            description="every year of the model's window exactly once; other years are ignored",
        ),
    ]


# The original project's summary body, and the feature each of its fields stands for. A field
# with no faithful counterpart is accepted and ignored, and the answer says so.
SUMMARY_FIELDS: dict[str, str] = {
    "pharma_per_capita": "USD_CAP_avg",
    "pharma_pct_health": "PC_HEALTHXP_avg",
    "pharma_pct_gdp": "PC_GDP_avg",
    "growth_rate": "USD_CAP_growth",
}
SUMMARY_IGNORED: dict[str, str] = {
    "volatility": "no faithful counterpart: each measure has its own volatility, in its own unit",
}


class SummaryInput(Struct, forbid_unknown_fields=True):
    """The original project's five headline figures (its README's body)."""

    country: Country
    pharma_per_capita: Annotated[
        float, Meta(**_feature_bounds("USD_CAP_avg"), description="= USD_CAP_avg, USD per head")
    ]
    pharma_pct_health: Annotated[
        float, Meta(**_feature_bounds("PC_HEALTHXP_avg"), description="= PC_HEALTHXP_avg, % of health spending")
    ]
    pharma_pct_gdp: Annotated[float, Meta(**_feature_bounds("PC_GDP_avg"), description="= PC_GDP_avg, % of GDP")]
    growth_rate: Annotated[float, Meta(**_feature_bounds("USD_CAP_growth"), description="= USD_CAP_growth, % a year")]
    volatility: Annotated[float, Meta(ge=0, description="ignored: no faithful counterpart")]


WINDOW_NAME = r"^(latest|[0-9]{4}-[0-9]{4})$"
WindowName = Annotated[
    str,
    Meta(
        pattern=WINDOW_NAME,
        description=(
            "the window of the feature store's newest source file to answer with: latest (the country's "
            "latest complete window) or START-END, as long as the model's window"
        ),
        examples=["latest", "2013-2022"],
    ),
]


class StoredInput(Struct, forbid_unknown_fields=True):
    """A country's code alone: without ``window``, a training country answered from the serving
    model's own training features; with it, any country of the feature store with that window complete."""

    country: Country
    window: WindowName | UnsetType = UNSET


# The single-country bodies, in the order a body is matched against them: exactly one fits any
# valid body, because each forbids the others' fields and requires its own.
SINGLE_INPUTS: tuple[type, ...] = (FeatureInput, SeriesInput, SummaryInput, StoredInput)


def list_request(field: str, max_items: int) -> type:
    """``{"instances": [...]}`` (or the original API's ``{"countries": [...]}``), up to ``max_items``.

    Items stay raw JSON here: each is matched against SINGLE_INPUTS on its own, so that one bad
    item is named by its index.
    """
    return msgspec.defstruct(
        f"{field.capitalize()}Request",
        [(field, Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=max_items)])],
        forbid_unknown_fields=True,
        module=__name__,
    )


# -- answers -------------------------------------------------------------------------------------


class RunnerUp(Struct, forbid_unknown_fields=True):
    cluster: int
    cluster_name: str
    distance: float


class Reason(Struct, forbid_unknown_fields=True):
    """One feature's part in the margin between the segment and the runner-up."""

    feature: str
    contribution: float
    share: float | None
    value: float
    segment_value: float
    runner_up_value: float


class SingleFeatureFlip(Struct, forbid_unknown_fields=True):
    feature: str
    change: float
    to: float
    flips_to: str


class WhatIf(Struct, forbid_unknown_fields=True):
    """The smallest change that moves the input into the runner-up segment, in original units."""

    distance: float
    changes: dict[str, float]
    moved_values: dict[str, float]
    lands_in: str
    single_feature: SingleFeatureFlip | None
    single_feature_note: str | None


InputKind = Literal["features", "partial", "series", "summary", "stored"]


class FeaturesFrom(Struct, forbid_unknown_fields=True):
    """Where a country code's features came from: the model's training row or the feature store."""

    kind: Literal["training row", "feature store"]
    window: str
    source_uri: str
    source_sha256: str | None
    age_years: Annotated[int, Meta(description="years from the window's last year to this year")]


class Prediction(Struct, forbid_unknown_fields=True):
    country: str
    cluster: int
    cluster_name: str
    recommendation: str
    confidence: Annotated[float, Meta(ge=0, le=1)]
    stability: (
        Annotated[
            float,
            Meta(
                ge=0,
                le=1,
                description=(
                    "share of training's bootstrap refits that keep this training country in its segment "
                    "(null for any other input, or a model trained without refits)"
                ),
            ),
        ]
        | None
    )
    borderline: bool
    runner_up: RunnerUp
    margin: float
    reasons: list[Reason]
    what_if: WhatIf
    distances: dict[str, float]
    input_kind: InputKind
    features_used: list[str]
    features_missing: list[str]
    ignored_fields: dict[str, str]
    window: str
    features_from: FeaturesFrom | None
    model_version: str
    variant: Literal["production", "candidate"]
    timestamp: str
    processing_time_seconds: float


class PredictionList(Struct, forbid_unknown_fields=True):
    predictions: list[Prediction]
    total_countries: int
    processing_time_seconds: float


class HistoryWindow(Struct, forbid_unknown_fields=True):
    """One complete window of a country, scored by the production model."""

    window: str
    segment: str
    cluster: int
    confidence: Annotated[float, Meta(ge=0, le=1)]
    borderline: bool
    runner_up: str
    margin_to_lower: (
        Annotated[float, Meta(description="1 - d(own) / d(nearest lower segment); null in the lowest segment")] | None
    )
    change: Literal["upgrade", "downgrade"] | None


class CountryHistory(Struct, forbid_unknown_fields=True):
    """A country's segment in every complete window of the model's length, oldest first."""

    country: str
    model_version: str
    source_uri: str
    source_sha256: str
    windows: list[HistoryWindow]
    watch: bool
    watch_reason: str | None
    stability: Annotated[float, Meta(ge=0, le=1)] | None


class Problem(Struct, forbid_unknown_fields=True):
    field: str
    problem: str


class ErrorBody(Struct, forbid_unknown_fields=True):
    error: str
    details: list[Problem]


class Health(Struct, forbid_unknown_fields=True):
    status: Literal["healthy", "unavailable"]
    model_loaded: bool
    model_version: str | None
    reason: str | None = None


class ModelInfo(Struct, forbid_unknown_fields=True):
    """The original API's ``/model/info``."""

    version: str
    created_at: str | None
    n_clusters: int
    silhouette_score: float | None
    window: str


# A segment's fields are pharmaseg.model.segments.Segment's, declared once there (the model artifact
# stores it); the answer adds the centroid.
@dataclass(frozen=True)
class SegmentDescription(Segment):
    """One segment of the model, with its centroid in original units."""

    centroid: dict[str, float]


class ModelDescription(Struct, forbid_unknown_fields=True):
    model_version: str
    window: str
    feature_names: list[str]
    metrics: dict[str, Any]
    segments: list[SegmentDescription]
    lineage: dict[str, Any]


class ServiceIndex(Struct, forbid_unknown_fields=True):
    """``GET /`` for a client that is not a browser (a browser gets the strategy page)."""

    message: str
    version: str
    model_version: str | None
    documentation: str
    page: str


RESPONSES: tuple[type, ...] = (
    Prediction,
    PredictionList,
    ErrorBody,
    Health,
    CountryHistory,
    ModelInfo,
    ModelDescription,
    ServiceIndex,
)


# -- routes --------------------------------------------------------------------------------------

# Bodies that are one of several declared types; openapi.py writes them as components.
SINGLE_COUNTRY = "SingleCountry"  # one of SINGLE_INPUTS
INSTANCES_REQUEST = "InstancesRequest"  # list_request("instances", ...)
COUNTRIES_REQUEST = "CountriesRequest"  # list_request("countries", ...)
ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class Route:
    """One operation of the API, declared once: ``service.py`` dispatches on it, ``openapi.py`` documents it.

    ``path`` is OpenAPI's: ``{name}`` is a path parameter (its pattern in ``path_parameter``); the
    service dispatches every path under the part before it to the handler, which checks the rest.
    An answer or a body is one of the listed types: a Struct, the name of a composed component
    (SINGLE_COUNTRY...), or a JSON Schema. Every status in ``errors``
    is answered with ``ErrorBody`` unless ``error_answers`` names another type.
    """

    method: str
    path: str
    handler: str  # the PredictionService method that answers
    summary: str
    answer: tuple[Any, ...]
    answer_description: str
    html: bool = False  # 200 may also be an HTML page
    request: tuple[Any, ...] = ()
    query: tuple[str, ...] = ()  # query parameters, by name (openapi.QUERY_PARAMETERS)
    path_parameter: tuple[str, str, str] | None = None  # (name, pattern, description)
    errors: tuple[tuple[int, str], ...] = ()  # (status, when)
    error_answers: tuple[tuple[int, type], ...] = ()  # a status answered with another type than ErrorBody

    @property
    def prefix(self) -> str | None:
        """For a path with a parameter, what every path it takes starts with ("/reports/")."""
        return self.path.split("{", 1)[0] if "{" in self.path else None


_PREDICT_ERRORS = (
    (400, "invalid request: every bad field is named"),
    (404, "unknown model version, a country code the model was not trained on, or a window the feature store lacks"),
    (413, "request body too large"),
    (415, "Content-Type is not application/json"),
    (503, "no model can be served"),
)
_PREDICT = {
    "handler": "_predict",
    "summary": "predict one country, or a list under instances",
    "request": (SINGLE_COUNTRY, INSTANCES_REQUEST),
    "answer": (Prediction, PredictionList),
    "answer_description": "the prediction(s), in request order, each with its explanation",
    "query": ("version", "reasons"),
    "errors": _PREDICT_ERRORS,
}
_VERSION_ERRORS = (
    (400, "malformed version"),
    (404, "unknown model version"),
    (503, "no model can be served"),
)

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/",
        "_index",
        "the strategy page for a browser (Accept: text/html), else a short description",
        (ServiceIndex,),
        "the page, or the service description",
        html=True,
    ),
    Route("POST", "/", **_PREDICT),
    Route("POST", "/predict", **_PREDICT),
    Route(
        "POST",
        "/predict/batch",
        "_predict_batch",
        "predict a list of countries (the original API's batch body)",
        (PredictionList,),
        _PREDICT["answer_description"],
        request=(COUNTRIES_REQUEST,),
        query=("version", "reasons"),
        errors=_PREDICT_ERRORS,
    ),
    Route("GET", "/app", "_app", "the strategy page", (), "a self-contained HTML page", html=True),
    Route(
        "GET",
        "/health",
        "_health",
        "whether a model is loaded",
        (Health,),
        "a model is loaded",
        errors=((503, "no model can be loaded, with the reason"),),
        error_answers=((503, Health),),
    ),
    Route(
        "GET",
        "/model",
        "_model",
        "the serving model in full: segments, centroids in original units, metrics, lineage",
        (ModelDescription,),
        "the model",
        query=("version",),
        errors=_VERSION_ERRORS,
    ),
    Route(
        "GET",
        "/model/info",
        "_model_info",
        "the original API's model summary",
        (ModelInfo,),
        "version, creation time, clusters, silhouette",
        query=("version",),
        errors=_VERSION_ERRORS,
    ),
    Route(
        "GET",
        "/reports/{object}",
        "_report",
        "a model or drift report, or the monitoring page's figures, streamed from the private reports bucket",
        (ANY_OBJECT,),
        "the report",
        html=True,
        path_parameter=("object", f"^{REPORT_PATTERN}$", "the report's object name, e.g. models/1.0.0/report.html"),
        errors=((404, "no such report, or a path under /reports/ that names none"),),
    ),
    Route(
        "GET",
        "/monitoring",
        "_monitoring",
        "the monitoring page: drift verdicts, tests, segment shares, batch rejects, versions and decisions over time",
        (),
        "a self-contained HTML page, rebuilt by every drift check",
        html=True,
        errors=((404, "no drift check has built the page yet, or this function has no reports bucket"),),
    ),
    Route(
        "GET",
        "/countries/{code}/history",
        "_history",
        "a country's segment in every complete window of the feature store's newest source, by the production model",
        (CountryHistory,),
        "the windows, oldest first, with upgrades, downgrades and the watch flag",
        path_parameter=("code", "^[A-Za-z]{3}$", "the country's ISO 3166-1 alpha-3 code, e.g. IRL"),
        errors=(
            (404, "no such country in the feature store, or no feature store yet"),
            (503, "no model can be served"),
        ),
    ),
    Route("GET", "/openapi.json", "_openapi", "this document", (ANY_OBJECT,), "the OpenAPI 3.1 document"),
)
