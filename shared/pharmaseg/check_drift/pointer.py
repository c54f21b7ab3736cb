"""``drift/latest.json`` in the reports bucket: a pointer to the newest check, what the strategy page shows."""

from __future__ import annotations

import json
from typing import Any

from pharmaseg.check_drift.methods import JOINT_LABEL, DriftError
from pharmaseg.check_drift.queries import timestamp
from pharmaseg.logs import log
from pharmaseg.reports.objects import LATEST_DRIFT

LATEST_OBJECT = LATEST_DRIFT


def latest_pointer(doc: dict[str, Any], bucket: str) -> dict[str, Any]:
    """``drift/latest.json``: the newest check in a few fields, for pages that show the latest verdict."""
    result = doc["result"]
    drifted = list(result.get("drifted_features") or [])
    if (result.get("joint") or {}).get("drift"):
        drifted.append(JOINT_LABEL)
    prefix = f"gs://{bucket}/"
    return {
        "report_id": doc["report_id"],
        "run_at": doc["run_at"],
        "verdict": result["verdict"],
        "reason": result["reason"],
        "drifted_features": drifted,
        "model_version": doc["model_version"],
        "period": doc["period"],
        "report_uri": doc["report_uri"],
        "json_uri": doc["json_uri"],
        "html_object": doc["report_uri"].removeprefix(prefix),
        "json_object": doc["json_uri"].removeprefix(prefix),
    }


def write_latest(gcs, bucket: str, pointer: dict[str, Any], attempts: int = 3) -> bool:
    """Point ``drift/latest.json`` at this check unless a later check already holds it.

    Two checks can finish out of order (a retried message, a manual run next to the scheduled
    one); the pointer keeps the newest ``run_at``. Reads and the write are conditional on the
    generation seen, so a concurrent writer makes this one read and decide again. Returns
    whether the pointer names this check; after ``attempts`` contended rounds it gives up with a
    warning (the other writer's pointer stands) rather than fail a check whose reports are written.
    """
    from google.api_core.exceptions import NotFound, PreconditionFailed

    ours = timestamp(pointer["run_at"], "run_at")
    body = json.dumps(pointer, indent=1, sort_keys=True)
    for _ in range(attempts):
        current = gcs.bucket(bucket).get_blob(LATEST_OBJECT)
        generation = current.generation if current is not None else 0
        try:
            if current is not None:
                try:
                    held = json.loads(current.download_as_bytes(if_generation_match=generation))
                    if timestamp(held["run_at"], "run_at") > ours:
                        return False
                except (ValueError, KeyError, TypeError, DriftError):
                    pass  # an unreadable pointer is replaced
            gcs.bucket(bucket).blob(LATEST_OBJECT).upload_from_string(
                body, content_type="application/json", if_generation_match=generation
            )
            return True
        except (NotFound, PreconditionFailed):
            continue
    log("WARNING", f"{LATEST_OBJECT} contended, left to the other writer", event="drift_latest_contended")
    return False
