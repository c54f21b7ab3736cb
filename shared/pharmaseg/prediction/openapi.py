"""The OpenAPI 3.1 document of the prediction function, generated from the contract's types.

Every schema under ``components`` is msgspec's JSON Schema of a ``contract`` Struct; this module
only composes them into operations, and adds the two rules a Struct cannot carry: a body is
exactly one of the single-country shapes (``oneOf``, which holds because each shape forbids the
others' fields), and a series gives each year of the serving model's window exactly once
(``contains`` per year). The window and the list limit come from the running function, so the
document describes what it enforces now.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec

import pharmaseg
from pharmaseg.features import Window
from pharmaseg.prediction import contract
from pharmaseg.report_objects import REPORT_PATTERN, SEMVER_PATTERN

REF = "#/components/schemas/{name}"
SINGLE = "SingleCountry"
JSON = "application/json"
VERSION_PATTERN = f"^{SEMVER_PATTERN}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("ErrorBody"), description)


def _series_constraint(window: Window) -> dict[str, Any]:
    """Each window year exactly once: one ``contains`` per year with minContains = maxContains = 1."""
    return {
        "allOf": [
            {
                "contains": {"type": "object", "properties": {"year": {"const": year}}},
                "minContains": 1,
                "maxContains": 1,
            }
            for year in window.years
        ]
    }


def _components(window: Window, max_items: int) -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components([*contract.SINGLE_INPUTS, *contract.RESPONSES], ref_template=REF)
    schemas = copy.deepcopy(schemas)
    schemas["SeriesInput"]["properties"]["series"].update(_series_constraint(window))
    schemas[SINGLE] = {
        "oneOf": [_ref(t.__name__) for t in contract.SINGLE_INPUTS],
        "description": "one country: its 9 features (or at least the 3 spending levels), its yearly series, "
        "the original project's summary figures, or a training country's code alone",
    }
    for field in ("instances", "countries"):
        schemas[f"{field.capitalize()}Request"] = {
            "type": "object",
            "additionalProperties": False,
            "required": [field],
            "properties": {field: {"type": "array", "items": _ref(SINGLE), "minItems": 1, "maxItems": max_items}},
        }
    return schemas


def _parameters(*names: str) -> list[dict[str, Any]]:
    known = {
        "version": {
            "name": "version",
            "in": "query",
            "required": False,
            "description": "a registered model version to use instead of the production alias",
            "schema": {"type": "string", "pattern": VERSION_PATTERN, "examples": ["1.0.0"]},
        },
        "reasons": {
            "name": "reasons",
            "in": "query",
            "required": False,
            "description": "`top` (default): the 3 features that weigh most in the margin; `all`: every feature used",
            "schema": {"type": "string", "enum": ["top", "all"]},
        },
    }
    return [known[n] for n in names]


def _predict_operation(summary: str, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": _parameters("version", "reasons"),
        "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
        "responses": {
            "200": _json(answer, "the prediction(s), in request order, each with its explanation"),
            "400": _error("invalid request: every bad field is named"),
            "404": _error("unknown model version, or a country code the model was not trained on"),
            "413": _error("request body too large"),
            "415": _error("Content-Type is not application/json"),
            "503": _error("no model can be served"),
        },
    }


@functools.cache
def document(window: str, max_items: int, max_body_bytes: int) -> dict[str, Any]:
    """The document for a serving window (e.g. "2011-2020") and the request limits."""
    one_or_list = {"oneOf": [_ref(SINGLE), _ref("InstancesRequest")]}
    predictions = {"oneOf": [_ref("Prediction"), _ref("PredictionList")]}
    version_lookup = {
        "parameters": _parameters("version"),
    }
    html = {"text/html": {"schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "the strategy page for a browser (Accept: text/html), else a short description",
                "responses": {
                    "200": {
                        "description": "the page, or the service description",
                        "content": {**html, JSON: {"schema": _ref("ServiceIndex")}},
                    }
                },
            },
            "post": _predict_operation("predict one country, or a list under instances", one_or_list, predictions),
        },
        "/predict": {
            "post": _predict_operation("predict one country, or a list under instances", one_or_list, predictions)
        },
        "/predict/batch": {
            "post": _predict_operation(
                "predict a list of countries (the original API's batch body)",
                _ref("CountriesRequest"),
                _ref("PredictionList"),
            )
        },
        "/app": {
            "get": {
                "summary": "the strategy page",
                "responses": {"200": {"description": "a self-contained HTML page", "content": html}},
            }
        },
        "/health": {
            "get": {
                "summary": "whether a model is loaded",
                "responses": {
                    "200": _json(_ref("Health"), "a model is loaded"),
                    "503": _json(_ref("Health"), "no model can be loaded, with the reason"),
                },
            }
        },
        "/model": {
            "get": {
                "summary": "the serving model in full: segments, centroids in original units, metrics, lineage",
                **version_lookup,
                "responses": {
                    "200": _json(_ref("ModelDescription"), "the model"),
                    "400": _error("malformed version"),
                    "404": _error("unknown model version"),
                    "503": _error("no model can be served"),
                },
            }
        },
        "/model/info": {
            "get": {
                "summary": "the original API's model summary",
                **version_lookup,
                "responses": {
                    "200": _json(_ref("ModelInfo"), "version, creation time, clusters, silhouette"),
                    "400": _error("malformed version"),
                    "404": _error("unknown model version"),
                    "503": _error("no model can be served"),
                },
            }
        },
        "/reports/{object}": {
            "get": {
                "summary": "a model or drift report from the private reports bucket, streamed by this function",
                "parameters": [
                    {
                        "name": "object",
                        "in": "path",
                        "required": True,
                        "description": "the report's object name, e.g. models/1.0.0/report.html",
                        "schema": {"type": "string", "pattern": f"^{REPORT_PATTERN}$"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the report",
                        "content": {**html, JSON: {"schema": {"type": "object"}}},
                    },
                    "404": _error("no such report"),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "responses": {"200": _json({"type": "object"}, "the OpenAPI 3.1 document")},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pharmaseg prediction API",
            "version": pharmaseg.__version__,
            "description": "Pharmaceutical market segments for countries, explained: why this segment, how close "
            f"the next one is, what would move it. Serving window {window}; at most {max_items} countries and "
            f"{max_body_bytes} bytes per request.",
        },
        "paths": paths,
        "components": {"schemas": _components(Window.parse(window), max_items)},
    }
