"""The drift check's trigger: the scheduler's Pub/Sub message, empty or with overrides, and the period it asks for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pharmaseg.config import DriftSettings
from pharmaseg.drift import methods, queries

RETRAIN_POLICIES = ("auto", "never")
MESSAGE_FIELDS = {"period_start", "period_end", "period_days", "retrain", "reason"}


def timestamp(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise methods.DriftError(f"{name} {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_message(data: bytes | str | dict | None) -> dict[str, Any]:
    """The scheduler's message: empty, or JSON with optional overrides.

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
    unknown = sorted(set(doc) - MESSAGE_FIELDS)
    if unknown:
        raise methods.DriftError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MESSAGE_FIELDS))}")
    out: dict[str, Any] = {}
    if "period_start" in doc or "period_end" in doc:
        if "period_days" in doc:
            raise methods.DriftError("give period_start/period_end or period_days, not both")
        if "period_start" not in doc:
            raise methods.DriftError("period_end needs a period_start")
        out["period_start"] = timestamp(doc["period_start"], "period_start")
        if "period_end" in doc:
            out["period_end"] = timestamp(doc["period_end"], "period_end")
    if "period_days" in doc:
        days = doc["period_days"]
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 366:
            raise methods.DriftError(f"period_days must be a number in (0, 366], got {days!r}")
        out["period_days"] = float(days)
    if "retrain" in doc:
        if doc["retrain"] not in RETRAIN_POLICIES:
            raise methods.DriftError(f"retrain must be auto or never, got {doc['retrain']!r}")
        out["retrain"] = doc["retrain"]
    if "reason" in doc:
        out["reason"] = str(doc["reason"])[:500]
    return out


def period_for(request: dict[str, Any], settings: DriftSettings, now: datetime) -> queries.Period:
    if "period_start" in request:
        return queries.Period(request["period_start"], request.get("period_end", now))
    days = request.get("period_days", settings.drift_period_days)
    return queries.Period(now - timedelta(days=days), now)
