"""Shadow scoring through the running stack: production answers, the held version is scored beside it,
and the next drift check turns the log lines into a shadow record the reviewer reads.

predict (functions-framework) -> log router -> predictions_log -> check_drift (drift topic, push) ->
drift_reports.shadow, the held version's model report, and ``pharmaseg registry show``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from pharmaseg.gcp import clients as gcp
from pharmaseg.model.cache import REVIEW
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.model.segments import HIGH_VALUE, STABLE
from pharmaseg.reports.model_report import ModelReportWriter
from tests.models import trained
from tests.polling import wait_for


def test_held_version_is_shadow_scored_and_summarised_by_the_drift_check(local_stack_env):
    status = local_stack_env
    for name in ("predict", "check_drift"):
        if name not in status["functions"] or status["function_errors"].get(name):
            pytest.fail(f"{name} is not running: {status['function_errors']}")
    storage = gcp.storage_client(status["project"])
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    production = registry.register(trained(n_bootstrap=5)[1])
    registry.promote(production, reason="shadow test: production")
    held = registry.register(trained("2012-2021")[1])
    registry.promote(held, REVIEW, reason="shadow test: held for review")
    # A candidate alias left by another test of the session would be the version under review instead.
    candidate = storage.bucket(status["buckets"]["models"]).blob("aliases/candidate.json")
    if candidate.exists():
        candidate.delete()
    ModelReportWriter(storage, status["buckets"]["reports"], borderline_below=0.2).publish(
        registry.load(held), registry.load(production)
    )
    url = status["functions"]["predict"]
    wait_for(lambda: requests.get(f"{url}/health", timeout=5).json().get("model_version") == production, timeout=60)
    time.sleep(1.5)  # the alias TTL of the tests' stack: the review alias is read again
    for _ in range(3):
        answer = requests.post(
            f"{url}/predict", json={"instances": [{"country": "USA"}, {"country": "DEU"}]}, timeout=10
        )
        assert answer.status_code == 200
        assert {p["model_version"] for p in answer.json()["predictions"]} == {production}  # production answers

    bq = gcp.bigquery_client(status["project"])
    log_sql = (
        f"SELECT COUNT(*) AS n FROM `{status['tables']['predictions_log']}` "
        f"WHERE jsonPayload.shadow_version = '{held}' AND jsonPayload.model_version = '{production}'"
    )
    wait_for(lambda: list(bq.query(log_sql).result())[0]["n"] >= 6, timeout=60)

    publisher = gcp.publisher_client()
    topic = publisher.topic_path(status["project"], status["topics"]["drift"])
    message = json.dumps({"reason": "shadow test", "period_days": 1, "retrain": "never"}).encode()
    message_id = publisher.publish(topic, message).result(30)
    row_sql = f"SELECT shadow FROM `{status['tables']['drift_reports']}` WHERE report_id = 'msg-{message_id}'"
    rows = wait_for(lambda: list(bq.query(row_sql).result()), timeout=120)
    record = json.loads(rows[0]["shadow"])
    assert record["version"] == held and record["production_version"] == production
    assert record["requests"] >= 6 and record["countries"] >= 2
    flips = {f["country"]: (f["from"], f["to"]) for f in record["flips"]}
    assert flips["USA"] == (HIGH_VALUE, STABLE) and flips["DEU"] == (HIGH_VALUE, STABLE)
    assert record["market_weighted_disagreement"] > 0.5  # the USA alone is about half the market

    report = json.loads(
        storage.bucket(status["buckets"]["reports"]).blob(f"models/{held}/report.json").download_as_bytes()
    )
    assert report["shadow"]["report_id"] == f"msg-{message_id}"
    html = storage.bucket(status["buckets"]["reports"]).blob(f"models/{held}/report.html").download_as_text()
    assert "In the shadow of production" in html

    env = {**os.environ, **status["env"]}
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "pharmaseg"), "registry", "show", held],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["shadow"]["flips"] == record["flips"]
