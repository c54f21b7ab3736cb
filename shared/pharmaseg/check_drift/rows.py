"""The ``drift_reports`` row of a drift report document (schema: resources/, table drift_reports)."""

from __future__ import annotations

import json
from typing import Any


def drift_row(doc: dict[str, Any]) -> dict[str, Any]:
    """The drift_reports row of a report document."""
    result = doc["result"]
    return {
        "report_id": doc["report_id"],
        "run_at": doc["run_at"],
        "model_version": doc["model_version"],
        "period_start": doc["period"]["start"],
        "period_end": doc["period"]["end"],
        "rows_online": doc["rows"]["online"],
        "rows_batch": doc["rows"]["batch"],
        "verdict": result["verdict"],
        "features": [
            {
                "feature": f["feature"],
                "method": f["method"],
                "statistic": f["statistic"],
                "p_value": f["p_value"],
                "p_adjusted": f["p_adjusted"],
                "wasserstein": f["wasserstein"],
                "jensen_shannon": f["jensen_shannon"],
                "psi": f["psi"],
                "drift": f["drift"],
            }
            for f in result["features"]
        ],
        "prediction_drift": json.dumps(result["prediction_drift"], sort_keys=True),
        "joint": _joint_row(result.get("joint")),
        "retrain_requested": doc["retrain"]["requested"],
        "report_uri": doc["report_uri"],
        "shadow": json.dumps(doc["shadow"], sort_keys=True) if doc.get("shadow") else None,
    }


def _joint_row(joint_doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not joint_doc:
        return None
    details = joint_doc["details"]
    return {
        "method": joint_doc["method"],
        "n": joint_doc["n"],
        "sampled_from": details.get("sampled_from"),
        "components": joint_doc["components"],
        "recent_error": details.get("recent_error_mean"),
        "reference_error": details.get("reference_error_mean"),
        "statistic": joint_doc["statistic"],
        "p_value": joint_doc["p_value"],
        "p_adjusted": joint_doc["p_adjusted"],
        "drift": joint_doc["drift"],
    }
