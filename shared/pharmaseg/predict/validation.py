"""Validating a prediction request in one pass, before any model is chosen to answer it.

A well-formed body is decoded straight into its Struct (``contract``) by msgspec, which checks
every type and bound in about a microsecond; the body's shape is guessed from the keys it
mentions, and a wrong guess simply fails over. msgspec stops at the first problem, so only when
that fails does the exhaustive pass run: it decodes the JSON (Python's ``json`` when msgspec
refuses it, so that a NaN or Infinity is named by its field), matches each object against the
declared shapes, and checks every field on its own with the same declarations, so one answer
names every bad field. Both paths use the contract's types and nothing else.

The one rule that depends on the model, a series giving each year of the window exactly once, is
checked in the same pass: the caller says which window each country will be answered under
(``window_for``), and a valid series leaves here with its nine features derived.
"""

from __future__ import annotations

import decimal
import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import msgspec.inspect as mi

from pharmaseg.errors import DataValidationError
from pharmaseg.model.features import FEATURE_NAMES, Window, derive_features
from pharmaseg.model.snapshot import LATEST
from pharmaseg.predict import contract
from pharmaseg.predict.contract import (
    SINGLE_INPUTS,
    SUMMARY_FIELDS,
    SUMMARY_IGNORED,
    FeatureInput,
    SeriesInput,
    StoredInput,
    SummaryInput,
)


class RequestError(Exception):
    """A request the API refuses: HTTP status, short error, and one (field, problem) per problem."""

    def __init__(self, status: int, error: str, problems: Iterable[tuple[str, str]] = ()):
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = list(problems)


@dataclass(slots=True)
class Instance:
    """One country of a request, in the terms the model scores.

    ``row`` holds the features given in FEATURE_NAMES order (0.0 where not given) and ``given``
    their positions, None when all nine are. A series' row is derived from its window's years once
    the window is known; a stored country has no row (the serving model's training rows give it).
    """

    country: str
    kind: str  # contract.InputKind
    row: list[float] | None = None
    given: tuple[int, ...] | None = None
    series: list[contract.YearRecord] | None = None
    ignored: dict[str, str] = field(default_factory=dict)
    path: str = ""  # where it sits in the body, for error messages: "" or "instances[3]."
    window: str | None = None  # a stored country's feature-store window: "latest" or "START-END"


@dataclass
class PredictRequest:
    instances: list[Instance]
    listed: str | None  # None for one country; "instances" or "countries" for a list


_SINGLE_DECODERS = {t: msgspec.json.Decoder(t) for t in SINGLE_INPUTS}
# Floats as Decimal: a number beyond a float's range (1e999) then reaches its field's check, which
# names the field, instead of failing the whole decode.
_RAW = msgspec.json.Decoder(float_hook=decimal.Decimal)


def _guess(body: bytes) -> type:
    """The shape a body most likely has, from the keys it mentions (a wrong guess fails over)."""
    if b'"series"' in body:
        return SeriesInput
    if b'"pharma_per_capita"' in body:
        return SummaryInput
    if b'_avg"' in body:
        return FeatureInput
    return StoredInput


# Where each feature sits in a decoded FeatureInput (msgspec.structs.astuple order), and where
# each summary field's feature sits in FEATURE_NAMES.
_FEATURE_AT = [[f.name for f in msgspec.structs.fields(FeatureInput)].index(n) for n in FEATURE_NAMES]
_SUMMARY_AT = {name: FEATURE_NAMES.index(feature) for name, feature in SUMMARY_FIELDS.items()}
_SUMMARY_GIVEN = tuple(sorted(_SUMMARY_AT.values()))
_UNSET = msgspec.UNSET


def to_instance(item: Any, path: str = "") -> Instance:
    """The Instance of a decoded single-country Struct (the per-request path: a few list operations)."""
    if isinstance(item, FeatureInput):
        fields = msgspec.structs.astuple(item)
        row = [fields[i] for i in _FEATURE_AT]
        if _UNSET not in row:
            return Instance(item.country, "features", row, None, path=path)
        given = tuple(j for j, v in enumerate(row) if v is not _UNSET)
        return Instance(item.country, "partial", [0.0 if v is _UNSET else v for v in row], given, path=path)
    if isinstance(item, SeriesInput):
        return Instance(item.country, "series", series=item.series, path=path)
    if isinstance(item, SummaryInput):
        row = [0.0] * len(FEATURE_NAMES)
        for name, j in _SUMMARY_AT.items():
            row[j] = getattr(item, name)
        return Instance(item.country, "summary", row, _SUMMARY_GIVEN, ignored=dict(SUMMARY_IGNORED), path=path)
    return Instance(item.country, "stored", path=path, window=None if item.window is _UNSET else item.window)


@functools.cache
def list_decoder(listed: str, max_items: int) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(contract.list_request(listed, max_items))


WindowFor = Callable[[str], Window | None]
"""The window a country will be answered under, or None when no model can answer (the caller then
refuses the request after validation, and a series is checked against no window)."""


def parse(
    body: bytes, *, max_items: int, listed: str | None = None, window_for: WindowFor | None = None
) -> PredictRequest:
    """Validate a request body: one country, or a list under ``listed`` ("instances"/"countries").

    With ``listed`` None a body may still be ``{"instances": [...]}`` (the prediction route takes
    both). Every check runs here, the series' window included; raises RequestError(400) naming
    every bad field.
    """
    try:
        request = _fast(body, max_items=max_items, listed=listed)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        request = None
    if request is not None:
        problems = _complete_series(request.instances, window_for)
        if problems:
            raise RequestError(400, "invalid request", problems)
        return request
    request, problems = _exhaustive(body, max_items=max_items, listed=listed, window_for=window_for)
    if problems:
        raise RequestError(400, "invalid request", problems)
    return request  # valid after all: the fast path had guessed the wrong shape


def _fast(body: bytes, *, max_items: int, listed: str | None) -> PredictRequest:
    key = listed or ("instances" if b'"instances"' in body else None)
    if key is None:
        item = _SINGLE_DECODERS[_guess(body)].decode(body)
        return PredictRequest([to_instance(item)], None)
    envelope = list_decoder(key, max_items).decode(body)
    instances = []
    for i, raw in enumerate(getattr(envelope, key)):
        text = bytes(raw)
        item = _SINGLE_DECODERS[_guess(text)].decode(text)
        instances.append(to_instance(item, f"{key}[{i}]."))
    return PredictRequest(instances, key)


def _complete_series(instances: list[Instance], window_for: WindowFor | None) -> list[tuple[str, str]]:
    """Check each series, and each stored country's named window, against the window of the model
    that answers it, and derive the series' features; the problems found."""
    problems: list[tuple[str, str]] = []
    for instance in instances:
        if window_for is None or not (instance.kind == "series" or instance.window not in (None, LATEST)):
            continue
        window = window_for(instance.country)
        if window is None:
            continue
        if instance.kind == "stored":
            problems += named_window_problems(instance, window)
            continue
        found = series_window_problems(instance, window)
        if found:
            problems += found
        else:
            instance.row = derive_features([window_values(instance, window)])[0].tolist()
    return problems


# -- the exhaustive pass ---------------------------------------------------------------------------


class NonFinite(float):
    """A NaN or Infinity that Python's json read (msgspec refuses them): named by its field, never scored."""

    def __new__(cls, text: str):
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text


def _python_json(body: bytes) -> Any:
    """``body`` as Python's json reads it (it accepts NaN and Infinity), floats as Decimal as in _RAW."""
    return json.loads(body, parse_float=decimal.Decimal, parse_constant=NonFinite)


def _message(exc: msgspec.ValidationError, value: Any) -> str:
    text = str(exc).split(" - at `", 1)[0]
    return f"{text}, got {_show(value)}" if "got `" not in text else text


def _show(value: Any) -> str:
    text = str(value) if isinstance(value, decimal.Decimal) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _fields(struct: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, annotated type, required) of a Struct's fields, for checking each on its own."""
    info = mi.type_info(struct)
    annotations = {f.name: f.type for f in msgspec.structs.fields(struct)}
    return tuple((f.name, annotations[f.name], f.required) for f in info.fields)


def struct_problems(value: Any, struct: type, path: str) -> list[tuple[str, str]]:
    """Every problem of ``value`` as an instance of ``struct``: unknown, missing and bad fields."""
    if not isinstance(value, dict):
        return [(path.rstrip(".") or "body", f"must be a JSON object, got {_show(value)}")]
    fields = _fields(struct)
    names = {name for name, _, _ in fields}
    problems = [(f"{path}{name}", "unknown field") for name in sorted(set(value) - names, key=str)]
    for name, annotation, required in fields:
        if name not in value:
            if required:
                problems.append((f"{path}{name}", "missing"))
            continue
        if name == "series" and struct is SeriesInput:
            problems += _series_problems(value[name], f"{path}{name}")
            continue
        try:
            msgspec.convert(float(value[name]) if isinstance(value[name], NonFinite) else value[name], annotation)
        except msgspec.ValidationError as exc:
            if isinstance(value[name], NonFinite) and str(exc).startswith("Expected `float`"):
                problems.append((f"{path}{name}", f"must be a finite number, got {value[name]!r}"))
            else:
                problems.append((f"{path}{name}", _message(exc, value[name])))
            continue
        if isinstance(value[name], NonFinite):  # a float field without bounds
            problems.append((f"{path}{name}", f"must be a finite number, got {value[name]!r}"))
    return problems


def _series_problems(value: Any, path: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        return [(path, f"must be a list of yearly records, got {_show(value)}")]
    if not 2 <= len(value) <= contract.MAX_SERIES_YEARS:
        return [(path, f"must hold 2 to {contract.MAX_SERIES_YEARS} yearly records, got {len(value)}")]
    problems = []
    for i, record in enumerate(value):
        problems += struct_problems(record, contract.YearRecord, f"{path}[{i}].")
    return problems


def best_shape(value: dict) -> tuple[type, bool]:
    """The single-country shape a decoded object is meant to have, and whether its keys fit it exactly."""
    keys = set(value)
    for struct in SINGLE_INPUTS:
        fields = _fields(struct)
        required = {name for name, _, req in fields if req}
        if required <= keys <= {name for name, _, _ in fields}:
            return struct, True
    overlap = [(len(keys & {name for name, _, _ in _fields(s)}), -i, s) for i, s in enumerate(SINGLE_INPUTS)]
    return max(overlap)[2], False


def _item(value: Any, path: str, problems: list[tuple[str, str]]) -> Instance | None:
    """The Instance of one decoded object, or None with its problems appended."""
    if not isinstance(value, dict):
        problems.append((path.rstrip(".") or "body", f"must be a JSON object, got {_show(value)}"))
        return None
    struct, exact = best_shape(value)
    found = struct_problems(value, struct, path)
    if found or not exact:
        problems += found or [(path.rstrip(".") or "body", "matches none of the accepted shapes")]
        return None
    return to_instance(msgspec.convert(value, struct), path)


def _exhaustive(
    body: bytes, *, max_items: int, listed: str | None, window_for: WindowFor | None = None
) -> tuple[PredictRequest | None, list]:
    """Decode and check everything; (the request, []) if it was valid, else (None, every problem)."""
    try:
        doc = _RAW.decode(body)
    except msgspec.DecodeError as exc:
        not_json = [("body", f"not valid JSON: {str(exc).removeprefix('JSON is malformed: ')}")]
        try:  # a NaN or Infinity (Python's json.dumps writes them) is named by its field
            doc = _python_json(body)
        except (ValueError, RecursionError):
            return None, not_json
        request, problems = _checked(doc, max_items=max_items, listed=listed, window_for=window_for)
        return None, problems or not_json  # whatever Python's json accepts, msgspec's refusal stands
    except msgspec.ValidationError as exc:
        return None, [("body", str(exc).split(" - at `", 1)[0])]
    except RecursionError:
        return None, [("body", "nested too deeply")]
    return _checked(doc, max_items=max_items, listed=listed, window_for=window_for)


def _checked(
    doc: Any, *, max_items: int, listed: str | None, window_for: WindowFor | None
) -> tuple[PredictRequest | None, list]:
    problems: list[tuple[str, str]] = []
    key = listed or ("instances" if isinstance(doc, dict) and "instances" in doc else None)
    if key is None:
        instance = _item(doc, "", problems)
        if instance is None:
            return None, problems
        problems += _complete_series([instance], window_for)
        return (None if problems else PredictRequest([instance], None)), problems
    if not isinstance(doc, dict):
        return None, [("body", f'must be a JSON object {{"{key}": [...]}}, got {_show(doc)}')]
    problems += [(name, "unknown field") for name in sorted(set(doc) - {key}, key=str)]
    items = doc.get(key)
    if not isinstance(items, list) or not items:
        return None, [*problems, (key, "required: a non-empty list of countries")]
    if len(items) > max_items:
        return None, [*problems, (key, f"at most {max_items} per request, got {len(items)}")]
    instances = [_item(item, f"{key}[{i}].", problems) for i, item in enumerate(items)]
    problems += _complete_series([i for i in instances if i is not None], window_for)
    return (None if problems else PredictRequest(instances, key)), problems


def named_window_problems(instance: Instance, window: Window) -> list[tuple[str, str]]:
    """A named window must be a real range of years as long as the model's (the pattern checked its
    digits; the OpenAPI document enumerates the same windows)."""
    try:
        named = Window.parse(instance.window)
    except DataValidationError as exc:
        return [(f"{instance.path}window", str(exc))]
    length = len(window.years)
    if named.start < contract.YEAR_MIN or named.end > contract.YEAR_MAX:
        return [(f"{instance.path}window", f"{named} is outside the years {contract.YEAR_MIN}-{contract.YEAR_MAX}")]
    if len(named.years) != length:
        return [
            (
                f"{instance.path}window",
                f"{named} spans {len(named.years)} years; the model's windows span {length} (e.g. {window})",
            )
        ]
    return []


def series_window_problems(instance: Instance, window: Window) -> list[tuple[str, str]]:
    """A series must give every year of the model's window exactly once (other years are ignored)."""
    seen: dict[int, int] = {}
    problems = []
    where = f"{instance.path}series"
    for i, record in enumerate(instance.series or []):
        year = int(record.year)
        if year in window.years:
            if year in seen:
                problems.append((f"{where}[{i}].year", f"{year} appears twice (also at [{seen[year]}])"))
            else:
                seen[year] = i
    missing = [y for y in window.years if y not in seen]
    if missing:
        problems.append((where, f"years {', '.join(map(str, missing))} of the model's window {window} are missing"))
    return problems


def window_values(instance: Instance, window: Window) -> list[list[float]]:
    """The window's yearly measures of a valid series, in year order (MEASURES order in each)."""
    by_year = {int(r.year): r for r in instance.series or [] if int(r.year) in window.years}
    return [[by_year[y].PC_HEALTHXP, by_year[y].PC_GDP, by_year[y].USD_CAP] for y in window.years]
