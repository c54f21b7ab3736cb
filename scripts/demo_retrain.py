#!/usr/bin/env python3
"""Demo: new OECD data lands in the sources bucket; the retrain it triggers is held for review.

``run(status)`` takes the stack's status dict (``pharmaseg stack status --json``). Production
must be the original 2011-2020 model (scripts/demo.py trains and promotes it first). Then:

1. the OECD file is dropped into the sources bucket, as a new publication would be; the
   retrain function turns that into a retrain request for the file's latest complete window
   (2012-2021), which it then trains, registers and gates;
2. the gate holds the candidate for review: the USA and Germany would move, and they hold over
   half of the market; the demo prints every check, the movers with their market share and
   where the model report is;
3. it prints ``pharmaseg registry diff 1.0.0 <candidate>``; production stays 1.0.0.

Run alone: ``python scripts/demo_retrain.py`` (uses the running stack).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pharmaseg.gcp import clients as gcp
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.retrain.service import DEFAULT_DATA_OBJECT

WAIT_SECONDS = 180
DATA = Path(
    os.environ.get(
        "PHARMASEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "oecd_pharma_spending.csv"
    )
)


def _clients(status: dict[str, Any]):
    project, emulators = status["project"], status["emulators"]
    storage = gcp.storage_client(project, endpoint=emulators["storage"])
    bigquery = gcp.bigquery_client(project, endpoint=emulators["bigquery"])
    return storage, bigquery


def drop_source_file(status: dict[str, Any], storage) -> tuple[str, int]:
    """Upload the OECD file to the sources bucket (a new publication); its (gs:// URI, generation)."""
    if not DATA.is_file():
        raise SystemExit(f"OECD data not found at {DATA}; set PHARMASEG_DATA")
    bucket = status["buckets"]["sources"]
    blob = storage.bucket(bucket).blob(DEFAULT_DATA_OBJECT)
    blob.upload_from_filename(str(DATA), content_type="text/csv")
    return f"gs://{bucket}/{DEFAULT_DATA_OBJECT}", int(blob.generation)


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
    raise TimeoutError(f"no model_versions row for request {message_id} after {timeout:.0f}s (see the retrain log)")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return (
            ",".join(map(str, value))
            if all(isinstance(v, str) and len(v) <= 3 for v in value)
            else f"{len(value)} names"
        )
    return "-" if value is None else str(value)


def print_decision(row: dict[str, Any], status: dict[str, Any]) -> None:
    gate = json.loads(row["gate"] or "null") or {"checks": {}}
    metrics = json.loads(row["metrics"] or "{}")
    print(f"\ncandidate {row['version']} (window {row['window']}) vs production {row['production_version']}")
    print(
        f"  silhouette {metrics.get('silhouette', 0):.3f}  davies-bouldin {metrics.get('davies_bouldin', 0):.3f}  "
        f"sizes {metrics.get('segment_sizes')}"
    )
    print(f"  {'check':<18} {'value':>22} {'threshold':>22}  result")
    for name, check in gate["checks"].items():  # in the gate's order: data, quality, meaning, market
        mark = "pass" if check["passed"] else "FAIL"
        print(f"  {name:<18} {_fmt(check['value']):>22} {_fmt(check['threshold']):>22}  {mark}")
    print(f"decision: {row['decision'].upper()} (policy {row['policy']}) - {row['decision_detail']}")
    if row["movers"]:
        print("movers (country, production segment -> candidate segment, share of the common market, confidence):")
        for m in row["movers"]:
            print(
                f"  {m['country']}  {m['from_segment']} -> {m['to_segment']}  {m['market_share']:.1%} of market  "
                f"confidence {m['confidence_before']:.2f} -> {m['confidence_after']:.2f}"
            )
    if row.get("report_uri"):
        bucket, name = row["report_uri"].removeprefix("gs://").split("/", 1)
        print(f"model report: {row['report_uri']}")
        print(f"              {Path(status['gcs_root']) / bucket / name}")


def run(status: dict[str, Any]) -> None:
    """Drop new data into the sources bucket and print what the triggered retrain decided."""
    from pharmaseg.model.registry import ModelRegistry

    storage, bigquery = _clients(status)
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    production = registry.alias("production")
    if production is None:
        raise SystemExit("no production model: scripts/demo.py trains and promotes one first")
    uri, generation = drop_source_file(status, storage)
    print(f"new data: uploaded {DATA.name} to {uri} (generation {generation})")
    print("the retrain function asks for a retrain on its latest complete window, trains, registers and gates it")
    table_id = status.get("tables", {}).get("model_versions") or (
        cloud_resources.table_id(status["project"], status["dataset"], "model_versions")
    )
    row = wait_for_decision(bigquery, table_id, f"source:{uri.removeprefix('gs://')}#{generation}")
    print_decision(row, status)
    print(f"\nproduction is still {registry.alias('production').version}")
    if row["decision"] == "skipped":
        return
    print(f"\n$ pharmaseg registry diff {production.version} {row['version']}")
    subprocess.run(
        [str(Path(sys.executable).parent / "pharmaseg"), "registry", "diff", production.version, row["version"]],
        env={**os.environ, **status["env"]},
        check=True,
    )
    print(
        "\nTo review and promote it by hand: open the model report above, then\n"
        f"  pharmaseg registry promote {row['version']} --reason '...' --by <you>"
    )


if __name__ == "__main__":
    from pharmaseg_dev.stack import lifecycle
    from pharmaseg_dev.stack.layout import StackLayout

    stack = lifecycle.status(StackLayout.from_env())
    if not stack["up"]:
        sys.exit("no local stack running: `pharmaseg stack up` first")
    run(stack)
