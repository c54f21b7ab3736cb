"""The OpenAPI 3 description of the prediction function, built from the same constants it enforces."""

from __future__ import annotations

from typing import Any

import pharmaseg
from pharmaseg.features import FEATURE_NAMES, MEASURES
from pharmaseg.predict_api import COUNTRY_MAX_LENGTH, FEATURE_RANGES, Limits


def _feature_schema(name: str) -> dict[str, Any]:
    low, high = FEATURE_RANGES[name]
    schema: dict[str, Any] = {"type": "number", "minimum": low, "maximum": high}
    if not name.endswith("_volatility"):
        schema["exclusiveMinimum"] = True
    if name.endswith("_growth"):
        schema["description"] = "compound annual growth over the model's window, percent"
    return schema


def openapi_document(limits: Limits) -> dict[str, Any]:
    country = {"type": "string", "minLength": 1, "maxLength": COUNTRY_MAX_LENGTH, "example": "DEU"}
    version = {"type": "string", "pattern": r"^\d+\.\d+\.\d+$", "example": "1.0.0"}
    year = {
        "type": "object",
        "additionalProperties": False,
        "required": ["year", *MEASURES],
        "properties": {
            "year": {"type": "integer"},
            **{m: {"type": "number", "exclusiveMinimum": True, "minimum": 0} for m in MEASURES},
            "TOTAL_SPEND": {"type": "number"},
        },
    }
    by_features = {
        "type": "object",
        "additionalProperties": False,
        "required": ["country", *FEATURE_NAMES],
        "properties": {"country": country, **{f: _feature_schema(f) for f in FEATURE_NAMES}},
    }
    by_series = {
        "type": "object",
        "additionalProperties": False,
        "required": ["country", "series"],
        "properties": {
            "country": country,
            "series": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/YearRecord"},
                "description": "yearly measures; every year of the model's window must be present",
            },
        },
    }
    single = {
        "oneOf": [
            {"allOf": [{"$ref": "#/components/schemas/FeatureInstance"}]},
            {"allOf": [{"$ref": "#/components/schemas/SeriesInstance"}]},
        ],
        "description": "one country; may carry `version` to pin a model version",
    }
    batch = {
        "type": "object",
        "additionalProperties": False,
        "required": ["instances"],
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_instances,
                "items": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/FeatureInstance"},
                        {"$ref": "#/components/schemas/SeriesInstance"},
                    ]
                },
            },
            "version": version,
        },
    }
    prediction = {
        "type": "object",
        "required": [
            "country",
            "cluster",
            "cluster_name",
            "recommendation",
            "confidence",
            "model_version",
            "timestamp",
        ],
        "properties": {
            "country": {"type": "string"},
            "cluster": {"type": "integer"},
            "cluster_name": {"type": "string", "example": "High-Value Pharma Markets"},
            "recommendation": {"type": "string"},
            "confidence": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "1 - d_nearest/d_second: 1 at a segment's centroid, 0 on a boundary",
            },
            "distances": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "distance to every centroid, standardized units",
            },
            "model_version": {"type": "string"},
            "variant": {"type": "string", "enum": ["production", "candidate"]},
            "input_kind": {"type": "string", "enum": ["features", "series"]},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    }
    error = {
        "type": "object",
        "required": ["error", "details"],
        "properties": {
            "error": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                },
            },
        },
    }

    def err(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    def ok(description: str, ref: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}

    version_param = {
        "name": "version",
        "in": "query",
        "required": False,
        "schema": version,
        "description": "pin a model version instead of the production alias",
    }
    predict_op = {
        "summary": "Predict the market segment of one country or a list",
        "parameters": [version_param],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [{"$ref": "#/components/schemas/Single"}, {"$ref": "#/components/schemas/Batch"}]
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "the prediction, or {predictions: [...]} in request order for a list",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/Prediction"},
                                {
                                    "type": "object",
                                    "properties": {
                                        "predictions": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Prediction"},
                                        }
                                    },
                                },
                            ]
                        }
                    }
                },
            },
            "400": err("invalid body: every bad field is listed"),
            "404": err("unknown model version"),
            "413": err(f"body over {limits.max_body_bytes} bytes or over {limits.max_instances} instances"),
            "415": err("Content-Type is not application/json"),
            "503": err("no model can be loaded"),
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pharmaseg prediction API",
            "version": pharmaseg.__version__,
            "description": "Pharmaceutical market segments (k-means on OECD spending features).",
        },
        "paths": {
            "/": {"post": {**predict_op, "operationId": "predictRoot"}},
            "/predict": {"post": {**predict_op, "operationId": "predict"}},
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether a model is loaded, and which version",
                    "responses": {
                        "200": {
                            "description": "model loaded",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": {
                            "description": "no model",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            },
            "/model": {
                "get": {
                    "operationId": "model",
                    "summary": "The served model: version, metrics, segments with centroids in original units, lineage",
                    "parameters": [version_param],
                    "responses": {
                        "200": {
                            "description": "model description",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "404": err("unknown model version"),
                        "503": err("no model can be loaded"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "FeatureInstance": by_features,
                "SeriesInstance": by_series,
                "YearRecord": year,
                "Single": single,
                "Batch": batch,
                "Prediction": prediction,
                "Error": error,
            }
        },
    }
