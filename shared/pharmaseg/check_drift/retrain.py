"""Whether a drift check asks for a retrain, and the request it publishes (``pharmaseg.retrain.publish``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pharmaseg.retrain.publish import publish_request

ORIGIN = "check_drift"


def cooldown_decision(last_request: datetime | None, now: datetime, cooldown_hours: float) -> tuple[bool, str]:
    """(allowed, why): a new request is allowed when none was published within the cooldown."""
    if last_request is None:
        return True, "no earlier drift-triggered retrain request"
    until = last_request + timedelta(hours=cooldown_hours)
    if now < until:
        return False, f"cooldown: last request at {last_request.isoformat()}, next allowed after {until.isoformat()}"
    return True, f"last request at {last_request.isoformat()} is older than the {cooldown_hours:g} h cooldown"


def retrain_message(doc: dict[str, Any], promotion: str) -> dict[str, Any]:
    """The retrain request (schema: pharmaseg.retrain.message), reason naming what drifted."""
    result = doc["result"]
    reason = f"drift detected by check {doc['report_id']} on model {doc['model_version']}: {result['reason']}"
    return {"reason": reason[:500], "promotion": promotion}


def publish(publisher, project: str, topic: str, message: dict[str, Any], report_id: str) -> str:
    """Publish ``message`` through the one retrain publisher, keyed on the report (``drift_report_id``)."""
    return publish_request(
        project, topic, publisher=publisher, attributes={"origin": ORIGIN, "drift_report_id": report_id}, **message
    )
