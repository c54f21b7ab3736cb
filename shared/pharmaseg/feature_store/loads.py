"""Append-once writes and parameterised reads, as both feature-store tables make them.

A table here is appended to, never updated: a write is keyed (a source file's sha256, a model
version), checked against the table first, and loaded by a job whose id is derived from the key.
The check keeps a redelivered event from appending twice; the job id makes BigQuery itself
refuse the second of two concurrent writes (409), which the check alone cannot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pharmaseg.gcp.bigquery import load_ndjson

_TYPES = {bool: "BOOL", int: "INT64", float: "FLOAT64", str: "STRING"}


def job_id(role: str, *key: object) -> str:
    """The load job's id for one key: the same key always names the same job."""
    digest = hashlib.sha256("\n".join(str(k) for k in key).encode()).hexdigest()[:32]
    return f"{role}_{digest}"


def query(client, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` as dicts; ``@name`` parameters from ``params`` (a datetime is a TIMESTAMP)."""
    from datetime import datetime

    from google.cloud import bigquery

    def parameter(name: str, value: Any):
        kind = "TIMESTAMP" if isinstance(value, datetime) else _TYPES[type(value)]
        return bigquery.ScalarQueryParameter(name, kind, value)

    config = bigquery.QueryJobConfig(query_parameters=[parameter(k, v) for k, v in params.items()])
    return [dict(row.items()) for row in client.query(sql, job_config=config).result()]


def append(client, table_id: str, role: str, rows: Sequence[dict[str, Any]], job: str) -> bool:
    """Load ``rows`` with job id ``job``; False when BigQuery already ran that job (a concurrent write won)."""
    from google.api_core.exceptions import Conflict

    try:
        load_ndjson(client, table_id, rows, role, job_id=job, timeout=120)
    except Conflict:
        return False
    return True
