#!/usr/bin/env python3
"""Demo: ask the running local stack to retrain on the 2012-2021 window and show the gate's decision.

``run(status)`` takes the stack's status dict (``pharmaseg stack status --json``): it makes sure
the OECD file is in the sources bucket and that a production model exists (publishing a
2011-2020 baseline request first if not), publishes the 2012-2021 request to the retrain topic,
waits for the function's row in BigQuery ``model_versions`` and prints every gate check.

Run alone: ``python scripts/demo_retrain.py`` (uses the running stack).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from pharmaseg import gcp, resources
from pharmaseg.retraining.handler import DEFAULT_DATA_OBJECT
from pharmaseg.retraining.publish import publish_request

WAIT_SECONDS = 180
CHECK_ORDER = [
    "data_rows",
    "data_freshness",
    "countries",
    "silhouette",
    "davies_bouldin",
    "stability",
    "min_segment_size",
    "profile_fit",
    "segment_names",
    "agreement_ari",
    "name_agreement",
]
DATA = Path(
    os.environ.get(
        "PHARMASEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "oecd_pharma_spending.csv"
    )
)


def _clients(status: dict[str, Any]):
    project, emulators = status["project"], status["emulators"]
    storage = gcp.storage_client(project, endpoint=emulators["storage"])
    bigquery = gcp.bigquery_client(project, endpoint=emulators["bigquery"])
    publisher = gcp.publisher_client(endpoint=emulators["pubsub"].split("://", 1)[-1])
    return storage, bigquery, publisher


def ensure_data(status: dict[str, Any], storage) -> str:
    """The OECD file in the sources bucket (uploaded from PHARMASEG_DATA if missing); its gs:// URI."""
    bucket = status["buckets"]["sources"]
    blob = storage.bucket(bucket).blob(DEFAULT_DATA_OBJECT)
    if not blob.exists():
        if not DATA.is_file():
            raise SystemExit(f"OECD data not found at {DATA}; set PHARMASEG_DATA")
        blob.upload_from_filename(str(DATA), content_type="text/csv")
        print(f"uploaded {DATA.name} to gs://{bucket}/{DEFAULT_DATA_OBJECT}")
    return f"gs://{bucket}/{DEFAULT_DATA_OBJECT}"


def wait_for_decision(bigquery, table_id: str, message_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
    """Poll model_versions for the row the function writes for ``message_id``."""
    from google.cloud import bigquery as bq

    config = bq.QueryJobConfig(query_parameters=[bq.ScalarQueryParameter("m", "STRING", message_id)])
    sql = f"SELECT * FROM `{table_id}` WHERE message_id = @m ORDER BY evaluated_at DESC LIMIT 1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(bigquery.query(sql, job_config=config).result())
        if rows:
            return dict(rows[0].items())
        time.sleep(1.0)
    raise TimeoutError(f"no model_versions row for message {message_id} after {timeout:.0f}s (see the retrain log)")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return f"{len(value)} names"
    return "-" if value is None else str(value)


def print_decision(row: dict[str, Any]) -> None:
    gate = json.loads(row["gate"] or "null") or {"checks": {}}
    metrics = json.loads(row["metrics"] or "{}")
    print(f"\ncandidate {row['version']} (window {row['window']}) vs production {row['production_version']}")
    print(
        f"  silhouette {metrics.get('silhouette', 0):.3f}  davies-bouldin {metrics.get('davies_bouldin', 0):.3f}  "
        f"inertia {metrics.get('inertia', 0):.1f}  sizes {metrics.get('segment_sizes')}"
    )
    print(f"  {'check':<18} {'value':>22} {'threshold':>22}  result")
    for name, check in sorted(gate["checks"].items(), key=lambda item: CHECK_ORDER.index(item[0])):
        mark = "pass" if check["passed"] else "FAIL"
        print(f"  {name:<18} {_fmt(check['value']):>22} {_fmt(check['threshold']):>22}  {mark}")
    moved = gate["checks"].get("name_agreement", {}).get("detail")
    if moved and not moved.startswith("0 of"):
        print(f"  segment names: {moved}")
    print(f"decision: {row['decision'].upper()} (policy {row['policy']}) - {row['decision_detail']}")


def retrain_and_show(status, publisher, bigquery, **fields) -> dict[str, Any]:
    table_id = status.get("tables", {}).get("model_versions") or (
        f"{status['project']}.{status['dataset']}.{resources.table_name('model_versions')}"
    )
    message_id = publish_request(status["project"], status["topics"]["retrain"], publisher=publisher, **fields)
    print(f"published retrain request {message_id}: {json.dumps(fields)}")
    row = wait_for_decision(bigquery, table_id, message_id)
    print_decision(row)
    return row


def run(status: dict[str, Any]) -> None:
    """Publish a 2012-2021 retrain request to the stack and print the gate's checks and decision."""
    storage, bigquery, publisher = _clients(status)
    data_uri = ensure_data(status, storage)
    from pharmaseg.registry import ModelRegistry

    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    if registry.alias("production") is None:
        print("no production model yet: retraining the original 2011-2020 model first")
        retrain_and_show(
            status,
            publisher,
            bigquery,
            reason="demo: baseline",
            data_uri=data_uri,
            window="2011-2020",
            requested_by="demo",
        )
    print("\nretraining on the 2012-2021 window")
    retrain_and_show(
        status,
        publisher,
        bigquery,
        reason="demo: 2021 data published",
        data_uri=data_uri,
        window="2012-2021",
        requested_by="demo",
    )
    print(
        f"\nproduction is now {registry.alias('production').version}; candidate {registry.alias('candidate').version}"
    )


if __name__ == "__main__":
    from pharmaseg.stack import lifecycle
    from pharmaseg.stack.layout import StackLayout

    stack = lifecycle.status(StackLayout.from_env())
    if not stack["up"]:
        sys.exit("no local stack running: `pharmaseg stack up` first")
    run(stack)
