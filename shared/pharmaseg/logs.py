"""Structured log lines in Cloud Logging's JSON format, written to stdout.

On Cloud Functions gen2 each stdout line that is a JSON object becomes a log entry whose
``severity`` and ``message`` are understood and whose other keys land in ``jsonPayload``: a log
sink can route them to BigQuery and a log-based metric can count them. Writing a line costs no
network call, which keeps logging off the request's critical path.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one JSON log line; ``fields`` become jsonPayload keys (e.g. event="prediction").

    ``time`` is the moment of the event (Cloud Logging uses it as the entry's timestamp), so a
    prediction's row in BigQuery carries when it was made, not when the line was shipped.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    entry = {"severity": severity, "message": message, **fields}
    if "time" not in entry:
        entry["time"] = datetime.now(UTC).isoformat()
    line = json.dumps(entry, default=str, allow_nan=False)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
