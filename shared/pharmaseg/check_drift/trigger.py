"""The drift check's trigger: the scheduler's Pub/Sub message (a ``DriftTrigger``), and the period it asks for."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from pharmaseg.check_drift import methods, queries
from pharmaseg.config import DriftSettings

RETRAIN_POLICIES = ("auto", "never")


class DriftTrigger(Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """The scheduler's message: empty, or overrides of the period, the retrain policy and the reason."""

    period_start: Annotated[str, Meta(description="ISO 8601; the period's start (with period_end, or now)")] | (
        UnsetType
    ) = UNSET
    period_end: Annotated[str, Meta(description="ISO 8601; needs a period_start; default: now")] | UnsetType = UNSET
    period_days: Annotated[float, Meta(gt=0, le=366, description="the last N days, instead of start/end")] | (
        UnsetType
    ) = UNSET
    retrain: Annotated[Literal["auto", "never"], Meta(description="never: no retrain request this run")] | (
        UnsetType
    ) = UNSET
    reason: Annotated[str, Meta(description="recorded in the report; the first 500 characters")] | UnsetType = UNSET


SCHEMA: dict[str, Any] = msgspec.json.schema(DriftTrigger)
MESSAGE_FIELDS = set(DriftTrigger.__struct_fields__)


def _problems(doc: dict[str, Any]) -> list[str]:
    """Every field the Struct refuses, each with its reason (msgspec itself stops at the first)."""
    problems = []
    unknown = sorted(set(doc) - MESSAGE_FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MESSAGE_FIELDS))}")
    for f in msgspec.structs.fields(DriftTrigger):
        if f.name in doc:
            try:
                msgspec.convert(doc[f.name], f.type)
            except msgspec.ValidationError:
                if f.name == "period_days":
                    problems.append(f"period_days must be a number in (0, 366], got {doc[f.name]!r}")
                elif f.name == "retrain":
                    problems.append(f"retrain must be auto or never, got {doc[f.name]!r}")
                else:
                    problems.append(f"{f.name} must be a string, got {doc[f.name]!r}")
    return problems


def parse_message(data: bytes | str | dict | None) -> dict[str, Any]:
    """The scheduler's message (``DriftTrigger``), as the overrides a run takes; DriftError naming every bad field.

    ``{"period_start": ISO, "period_end": ISO}`` or ``{"period_days": 3}`` choose the period;
    ``{"retrain": "never"}`` forbids a retrain request for this run; ``reason`` is recorded.
    """
    if data in (None, b"", ""):
        return {}
    if isinstance(data, (bytes, str)):
        try:
            doc = json.loads(data)
        except ValueError:
            raise methods.DriftError("the drift-check message is not JSON") from None
    else:
        doc = data
    if not isinstance(doc, dict):
        raise methods.DriftError("the drift-check message must be a JSON object")
    # Timestamps and the reason have always been read as text, whatever their JSON type.
    doc = {
        k: str(v) if k in ("period_start", "period_end", "reason") and not isinstance(v, str) else v
        for k, v in doc.items()
    }
    try:
        message, problems = msgspec.convert(doc, DriftTrigger), []
    except msgspec.ValidationError:
        message, problems = None, _problems(doc)
    if "period_start" in doc or "period_end" in doc:
        if "period_days" in doc:
            problems.append("give period_start/period_end or period_days, not both")
        if "period_start" not in doc:
            problems.append("period_end needs a period_start")
    out: dict[str, Any] = {}
    for name in ("period_start", "period_end"):
        if isinstance(doc.get(name), str):
            try:
                out[name] = queries.timestamp(doc[name], name)
            except methods.DriftError as exc:
                problems.append(str(exc))
    if problems:
        raise methods.DriftError("; ".join(problems))
    if message.period_days is not UNSET:
        out["period_days"] = float(message.period_days)
    if message.retrain is not UNSET:
        out["retrain"] = message.retrain
    if message.reason is not UNSET:
        out["reason"] = message.reason[:500]
    return out


def period_for(request: dict[str, Any], settings: DriftSettings, now: datetime) -> queries.Period:
    if "period_start" in request:
        return queries.Period(request["period_start"], request.get("period_end", now))
    days = request.get("period_days", settings.drift_period_days)
    return queries.Period(now - timedelta(days=days), now)
