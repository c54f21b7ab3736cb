#!/usr/bin/env python3
"""Demo: predictions that drift, then the scheduled drift check, on the running local stack.

``run(status)`` (called by scripts/demo.py with the stack's status dict):
1. reads the production model from the stack's registry (a model must be promoted first);
2. sends 300 feature vectors to the predict function with USD_CAP_avg and PC_GDP_avg shifted
   by 1.5 reference standard deviations (the log router loads the prediction lines into the
   predictions_log table) - or, without a predict function, loads them into batch_predictions;
3. publishes a drift-check message for exactly that period to the drift topic (what Cloud
   Scheduler does weekly), waits for the function's drift_reports row;
4. prints the verdict, the drifted features, the joint-structure test, the retraining decision,
   where the HTML report is (its gs:// URI and its file in the storage emulator's filesystem), and
   the monitoring page the check rebuilt (``/monitoring`` on the predict function);
5. prints the shadow record: before the shifted vectors it asks about the USA and Germany by code,
   which the version held for review (1.1.0 after the retrain demo) answers in the shadow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

N_PREDICTIONS = 300
SHIFT = {"USD_CAP_avg": 1.5, "PC_GDP_avg": 1.5}


def _env(status: dict[str, Any]) -> None:
    os.environ.update(status["env"])


def _send_predictions(status, artifact, values, start, log) -> str:
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.gcp.bigquery import load_ndjson
    from pharmaseg_dev import simulate

    url = status["functions"].get("predict")
    if url:
        import requests

        for i in range(0, len(values), 100):
            instances = [
                {"country": f"DRIFT{i + j}", **dict(zip(artifact.feature_names, map(float, row)))}
                for j, row in enumerate(values[i : i + 100])
            ]
            response = requests.post(url, json={"instances": instances}, timeout=30)
            response.raise_for_status()
        log(f"sent {len(values)} shifted feature vectors to {url}")
        return "online"
    bq = gcp.bigquery_client(status["project"])
    times = simulate.timestamps(len(values), start, datetime.now(UTC), np.random.default_rng(0))
    table = status["tables"]["batch_predictions"]
    load_ndjson(bq, table, list(simulate.batch_rows(values, artifact, times, "demo")), "batch_predictions")
    log(f"no predict function: loaded {len(values)} shifted rows into {table}")
    return "batch"


def _ask_about_large_markets(status, log) -> None:
    """A strategist asks about the USA and Germany: production answers, the held version (if any) is
    scored in the shadow, and this check's shadow record says what it would have answered."""
    url = status["functions"].get("predict")
    if not url:
        return
    import requests

    for _ in range(3):
        response = requests.post(url, json={"instances": [{"country": "USA"}, {"country": "DEU"}]}, timeout=30)
        response.raise_for_status()
    log("asked 3 times about USA and DEU by code (shadow scored if a version is under review)")


def _wait_until_served(status, version: str, log, timeout: float = 90) -> None:
    """A promotion reaches the predict function when its alias cache expires (PHARMASEG_ALIAS_TTL_SECONDS)."""
    url = status["functions"].get("predict")
    if not url:
        return
    import requests

    deadline = time.monotonic() + timeout
    while requests.get(f"{url}/health", timeout=10).json().get("model_version") != version:
        if time.monotonic() > deadline:
            raise TimeoutError(f"predict still does not serve production {version} after {timeout}s")
        time.sleep(1)
    log(f"predict serves production {version}")


def _wait_rows(bq, table: str, column: str, start, end, expected: int, timeout: float = 60) -> int:
    from google.cloud import bigquery

    sql = f"SELECT COUNT(*) AS n FROM `{table}` WHERE {column} >= @s AND {column} < @e"
    params = [
        bigquery.ScalarQueryParameter("s", "TIMESTAMP", start),
        bigquery.ScalarQueryParameter("e", "TIMESTAMP", end),
    ]
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = list(bq.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result())[0]["n"]
        if n >= expected:
            break
        time.sleep(1)
    return n


def check(status: dict[str, Any], *, log=print, timeout: float = 180) -> dict[str, Any]:
    """Drive the whole demo and return the drift_reports row (plus the report's local path)."""
    from google.cloud import bigquery

    from pharmaseg.check_drift import methods
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.model.registry import ModelRegistry
    from pharmaseg_dev import simulate

    _env(status)
    registry = ModelRegistry(status["buckets"]["models"])
    artifact = registry.load(registry.resolve("production"))
    refs = methods.references(artifact.reference, artifact.feature_names)
    start = datetime.now(UTC) - timedelta(seconds=5)
    values = simulate.sample_features(refs, N_PREDICTIONS, np.random.default_rng(7), jitter=0.1, shift=SHIFT)
    # spending levels and volatilities cannot be negative (the predict function refuses them)
    positive = [j for j, name in enumerate(artifact.feature_names) if not name.endswith("_growth")]
    values[:, positive] = np.maximum(values[:, positive], 1e-3)
    _wait_until_served(status, artifact.version, log)
    _ask_about_large_markets(status, log)
    source = _send_predictions(status, artifact, values, start, log)
    end = datetime.now(UTC) + timedelta(seconds=5)
    bq = gcp.bigquery_client(status["project"])
    table, column = (
        (status["tables"]["predictions_log"], "timestamp")
        if source == "online"
        else (status["tables"]["batch_predictions"], "scored_at")
    )
    loaded = _wait_rows(bq, table, column, start, end, N_PREDICTIONS)
    log(f"{loaded} predictions of model {artifact.version} in {table} for the period")
    publisher = gcp.publisher_client()
    body = {"period_start": start.isoformat(), "period_end": end.isoformat(), "reason": "demo"}
    topic = publisher.topic_path(status["project"], status["topics"]["drift"])
    message_id = publisher.publish(topic, json.dumps(body).encode()).result(timeout=30)
    log(f"published a drift check to {status['topics']['drift']} (message {message_id}); waiting for its report")
    report_id = f"msg-{message_id}"
    sql = f"SELECT * FROM `{status['tables']['drift_reports']}` WHERE report_id = @id"
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", report_id)])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(bq.query(sql, job_config=config).result())
        if rows:
            row = dict(rows[0].items())
            bucket, name = row["report_uri"].removeprefix("gs://").split("/", 1)
            row["report_path"] = str(Path(status["gcs_root"]) / bucket / name)
            row["message_id"] = message_id
            return row
        time.sleep(1)
    raise TimeoutError(f"no drift_reports row {report_id} after {timeout}s: see {status['logs'].get('check_drift')}")


def _joint_line(joint: dict[str, Any] | None) -> str:
    if not joint:
        return "not tested"
    return (
        f"{'drift' if joint['drift'] else 'no drift'} (mean reconstruction error {joint['recent_error']:.3g} vs "
        f"{joint['reference_error']:.3g} in training, {joint['n']} rows, p_adj={joint['p_adjusted']:.3g})"
    )


def run(status: dict[str, Any]) -> None:
    """The demo's drift part: print the verdict and where the HTML report is."""
    if "check_drift" not in status.get("functions", {}):
        print("drift demo skipped: the stack runs no check_drift function")
        return
    row = check(status)
    drifted = [f["feature"] for f in row["features"] if f["drift"]]
    print(f"drift check verdict: {row['verdict']}  (rows online {row['rows_online']}, batch {row['rows_batch']})")
    shares = json.loads(row["prediction_drift"]) if row.get("prediction_drift") else {}
    shares_said = (
        f"{'drift' if shares.get('drift') else 'no drift'} (Jensen-Shannon {shares.get('jensen_shannon', 0):.3f}, "
        f"p_adj={shares.get('p_adjusted', 1):.3f})"
        if shares
        else "-"
    )
    print(f"drifted features: {', '.join(drifted) or '-'}; segment shares: {shares_said}")
    print(f"joint structure: {_joint_line(row.get('joint'))}")
    print(f"retraining requested: {row['retrain_requested']}")
    if row["retrain_requested"]:
        decision = _retrain_decision(status, row["report_id"])
        detail = decision["decision_detail"]
        said = detail if detail.startswith(decision["decision"]) else f"{decision['decision']}: {detail}"
        print(f"  the retrain function: {said}")
    print(f"HTML report: {row['report_uri']}")
    print(f"             {row['report_path']}")
    if "predict" in status["functions"]:
        print(f"monitoring page (rebuilt by this check): {status['functions']['predict']}/monitoring")
    _print_shadow(row)


def _print_shadow(row: dict[str, Any]) -> None:
    """The check's shadow record: what the held version would have answered to the period's requests."""
    from pharmaseg.reports.shadow import describe

    if not row.get("shadow"):
        print("no version under review was scored in the shadow this period")
        return
    shadow = json.loads(row["shadow"])
    print(f"\nversion under review {shadow['version']}, in production's shadow:")
    print("\n".join(f"  {line}" for line in describe(shadow)))
    print(f"  (also in `pharmaseg registry show {shadow['version']}` and its model report)")


def _retrain_decision(status: dict[str, Any], report_id: str, timeout: float = 180) -> dict[str, Any]:
    """The model_versions row of the retrain this check asked for (keyed on the report)."""
    from google.cloud import bigquery

    from pharmaseg.gcp import clients as gcp

    bq = gcp.bigquery_client(status["project"])
    sql = f"SELECT decision, decision_detail FROM `{status['tables']['model_versions']}` WHERE message_id = @m"
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("m", "STRING", f"drift-report:{report_id}")]
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(bq.query(sql, job_config=config).result())
        if rows:
            return dict(rows[0].items())
        time.sleep(1)
    raise TimeoutError(f"no model_versions row for the retrain asked by {report_id} after {timeout}s")


if __name__ == "__main__":
    from pharmaseg_dev.stack.layout import StackLayout
    from pharmaseg_dev.stack.lifecycle import status as stack_status

    current = stack_status(StackLayout.from_env())
    if not current["up"]:
        sys.exit("the local stack is not running: `pharmaseg stack up` first")
    run(current)
