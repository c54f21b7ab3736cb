"""Names and schemas of the product's cloud resources: buckets, topics, tables, the four functions.

``resources/resources.json`` and ``resources/schemas/*.json`` are the single source of truth:
the local stack creates exactly what they describe and Terraform provisions the same.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

RESOURCE_DIR = Path(__file__).parents[1] / "resources"


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    return json.loads((RESOURCE_DIR / "resources.json").read_text())


def bucket_name(role: str, project: str) -> str:
    """The bucket for a role (models, inbox, reports, sources) in ``project``."""
    return _spec()["buckets"][role].replace("{project}", project)


def bucket_roles() -> list[str]:
    return list(_spec()["buckets"])


def topic_name(role: str) -> str:
    return _spec()["topics"][role]


def topic_roles() -> list[str]:
    return list(_spec()["topics"])


def dataset_name() -> str:
    return _spec()["dataset"]


def table_name(role: str) -> str:
    return _spec()["tables"][role]["table"]


def table_id(project: str, dataset: str, role: str) -> str:
    """``project.dataset.table``, as the BigQuery client and SQL name a table."""
    return f"{project}.{dataset}.{table_name(role)}"


def table_spec(role: str) -> dict[str, Any]:
    return _spec()["tables"][role]


def table_roles() -> list[str]:
    return list(_spec()["tables"])


@cache
def table_schema(role: str) -> list[dict[str, Any]]:
    """The table's schema in BigQuery's JSON form (name, type, mode, description, fields)."""
    return json.loads((RESOURCE_DIR / "schemas" / f"{role}.json").read_text())


def functions() -> dict[str, dict[str, Any]]:
    return _spec()["functions"]


def runtime_environment() -> dict[str, str]:
    """Client-library variables every function runs with (Terraform sets the same).

    google-cloud-storage looks up each bucket's metadata in a background thread to label its
    OpenTelemetry spans; that lookup needs storage.buckets.get, which no function is granted, and
    the functions export no traces: the variable switches it off.
    """
    return {k: v for k, v in _spec()["runtime_environment"].items() if not k.startswith("_")}
