"""The OpenAPI 3.1 document of the prediction function, generated from the contract's types.

Every schema under ``components`` is msgspec's JSON Schema of a ``contract`` Struct, and every
operation is one of ``contract.ROUTES`` (the table ``service.py`` dispatches on); this module
only composes them, and adds the two rules a Struct cannot carry: a body is
exactly one of the single-country shapes (``oneOf``, which holds because each shape forbids the
others' fields), and a series gives each year of the serving model's window exactly once
(``contains`` per year), and a country code's ``window`` is ``latest`` or a range as long as that
window (an enumeration). The window and the list limit come from the running function, so the
document describes what it enforces now.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec

import pharmaseg
from pharmaseg.model.features import Window
from pharmaseg.model.snapshot import LATEST
from pharmaseg.predict import contract
from pharmaseg.predict.contract import YEAR_MAX, YEAR_MIN
from pharmaseg.reports.objects import SEMVER_PATTERN

REF = "#/components/schemas/{name}"
SINGLE = contract.SINGLE_COUNTRY
JSON = "application/json"
VERSION_PATTERN = f"^{SEMVER_PATTERN}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


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


def _window_names(window: Window) -> list[str]:
    """Every window a country code may name under this model: "latest", or a range of its length
    within the years a series accepts (an enumeration: JSON Schema has no arithmetic on strings)."""
    span = len(window.years) - 1
    return [LATEST, *(f"{end - span}-{end}" for end in range(YEAR_MIN + span, YEAR_MAX + 1))]


def _components(window: Window, max_items: int) -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components([*contract.SINGLE_INPUTS, *contract.RESPONSES], ref_template=REF)
    schemas = copy.deepcopy(schemas)
    schemas["SeriesInput"]["properties"]["series"].update(_series_constraint(window))
    named = schemas["StoredInput"]["properties"]["window"]
    named.pop("pattern")
    named["enum"] = _window_names(window)
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


QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
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


def _schema(choices: tuple[Any, ...]) -> dict[str, Any]:
    """One of a route's declared types: a Struct, a composed component's name, or a JSON Schema."""
    refs = [_ref(c.__name__) if isinstance(c, type) else _ref(c) if isinstance(c, str) else c for c in choices]
    return refs[0] if len(refs) == 1 else {"oneOf": refs}


def operation(route: contract.Route) -> dict[str, Any]:
    """The OpenAPI operation of one declared route."""
    content: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}} if route.html else {}
    if route.answer:
        content[JSON] = {"schema": _schema(route.answer)}
    error_types = dict(route.error_answers)
    responses = {"200": {"description": route.answer_description, "content": content}}
    for status, when in route.errors:
        responses[str(status)] = _json(_ref(error_types.get(status, contract.ErrorBody).__name__), when)
    op: dict[str, Any] = {"summary": route.summary}
    parameters = [QUERY_PARAMETERS[name] for name in route.query]
    if route.path_parameter:
        name, pattern, description = route.path_parameter
        parameters.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                "schema": {"type": "string", "pattern": pattern},
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.request:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": _schema(route.request)}}}
    op["responses"] = responses
    return op


@functools.cache
def document(window: str, max_items: int, max_body_bytes: int) -> dict[str, Any]:
    """The document for a serving window (e.g. "2011-2020") and the request limits."""
    paths: dict[str, Any] = {}
    for route in contract.ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = operation(route)
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
