"""A person reviewing and promoting by hand with the CLI, against fake-gcs-server and bqemulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pharmaseg.gcp import resources as cloud_resources
from tests.integration.notified import take
from tests.unit.conftest import DATA

PHARMASEG = str(Path(sys.executable).parent / "pharmaseg")


@pytest.fixture
def cli(gcs, bigquery, pubsub):
    """Run ``pharmaseg`` with the emulators, a models and a reports bucket, a model_versions table and
    a notifications topic (with a subscription to read it back)."""
    from google.cloud import bigquery as bq

    suffix = uuid.uuid4().hex[:8]
    storage = gcs.client()
    models, reports = f"models-{suffix}", f"reports-{suffix}"
    for name in (models, reports):
        storage.create_bucket(name)
    client = bigquery.client()
    dataset = f"cli_{suffix}"
    client.create_dataset(dataset)
    table_id = f"{bigquery.project}.{dataset}.{cloud_resources.table_name('model_versions')}"
    schema = [bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema("model_versions")]
    client.create_table(bq.Table(table_id, schema=schema))
    publisher, subscriber = pubsub.publisher(), pubsub.subscriber()
    topic = f"notifications-{suffix}"
    subscription = subscriber.subscription_path(pubsub.project, f"{topic}-pull")
    subscriber.create_subscription(
        name=subscription, topic=publisher.create_topic(name=publisher.topic_path(pubsub.project, topic)).name
    )
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": gcs.url,
        "BIGQUERY_EMULATOR_HOST": bigquery.url,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "PHARMASEG_NOTIFICATIONS_TOPIC": topic,
        "GOOGLE_CLOUD_PROJECT": bigquery.project,
        "PHARMASEG_DATASET": dataset,
        "PHARMASEG_MODELS_BUCKET": models,
        "PHARMASEG_REPORTS_BUCKET": reports,
        "USER": "ci",
    }

    def run(*args, check=True):
        result = subprocess.run([PHARMASEG, *args], env=env, capture_output=True, text=True, timeout=180)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.rows = lambda: [dict(r.items()) for r in client.query(f"SELECT * FROM `{table_id}` ORDER BY evaluated_at")]
    run.storage, run.reports = storage, reports
    run.notified = lambda: take(subscriber, subscription, lambda notification: True, timeout=10)
    return run


def test_review_diff_promote_by_hand_and_roll_back(cli):
    first = cli("train", "--data", str(DATA), "--bootstrap", "0", "--register", "--promote")
    assert "registered as version 1.0.0 and promoted to production" in first.stdout
    assert f"model report: gs://{cli.reports}/models/1.0.0/report.html" in first.stdout
    second = cli("train", "--data", str(DATA), "--window", "2012-2021", "--bootstrap", "0", "--register")
    assert "registered as version 1.1.0" in second.stdout and "promoted" not in second.stdout

    diff = cli("registry", "diff", "1.0.0", "1.1.0")
    lines = diff.stdout.splitlines()
    assert lines[0].startswith("1.0.0 -> 1.1.0: 2 of 33 common countries change segment, market agreement")
    assert lines[1].lstrip().startswith("USA (") and lines[2].lstrip().startswith("DEU (")
    assert "High-Value Pharma Markets -> Stable Moderate Markets" in lines[1]
    assert any(line.lstrip().startswith("USD_CAP_avg") for line in lines)  # the centroid shift table
    doc = json.loads(cli("registry", "diff", "1.0.0", "1.1.0", "--json").stdout)
    assert [m["country"] for m in doc["movers"]] == ["USA", "DEU"] and doc["weights"] == "after"
    assert set(doc["centroid_shifts"]) == {"Declining Markets", "Stable Moderate Markets", "High-Value Pharma Markets"}

    refused = cli("registry", "promote", "1.1.0", check=False)
    assert refused.returncode == 2 and "--reason" in refused.stderr

    promoted = cli("registry", "promote", "1.1.0", "--reason", "reviewed the 2021 data", "--by", "ana")
    out = promoted.stdout.splitlines()
    assert out[0].startswith("1.0.0 -> 1.1.0") and out[1].lstrip().startswith("USA (")  # movers before the move
    assert out[-1] == "production -> 1.1.0 (recorded as manual_promotion by ana)"
    rolled = cli("registry", "rollback", "--reason", "back to the original", "--by", "ana")
    assert rolled.stdout.splitlines()[-1] == "production -> 1.0.0 (was 1.1.0; recorded as rollback)"

    rows = cli.rows()
    assert [(r["version"], r["decision"], r["decided_by"]) for r in rows] == [
        ("1.0.0", "manual_promotion", "ci"),
        ("1.1.0", "manual_promotion", "ana"),
        ("1.0.0", "rollback", "ana"),
    ]
    manual = rows[1]
    assert manual["reason"] == "reviewed the 2021 data" and manual["production_version"] == "1.0.0"
    assert {m["country"] for m in manual["movers"]} == {"USA", "DEU"}
    assert manual["report_uri"] == f"gs://{cli.reports}/models/1.1.0/report.html"
    assert rows[2]["production_version"] == "1.1.0" and {m["country"] for m in rows[2]["movers"]} == {"USA", "DEU"}

    # Each move of production told on the notifications topic, with who, why and what moved.
    told = {(n.details.from_version, n.details.to_version): n for n in cli.notified()}
    assert set(told) == {(None, "1.0.0"), ("1.0.0", "1.1.0"), ("1.1.0", "1.0.0")}
    by_hand = told[("1.0.0", "1.1.0")]
    assert by_hand.title == "Production changed: 1.0.0 -> 1.1.0 (promoted by ana)"
    assert (by_hand.details.decision, by_hand.details.by) == ("manual_promotion", "ana")
    assert by_hand.details.reason == "reviewed the 2021 data" and by_hand.key.endswith(rows[1]["message_id"])
    assert [m.country for m in by_hand.details.movers] == ["USA", "DEU"] and by_hand.details.market_share_moved > 0.4
    assert by_hand.links[0].path == "/reports/models/1.1.0/report.html"
    back = told[("1.1.0", "1.0.0")]
    assert back.details.decision == "rollback" and back.command.startswith("pharmaseg registry rollback")
    assert "notified: Production changed: 1.0.0 -> 1.1.0 (promoted by ana)" in promoted.stderr
    assert not any(line.startswith("{") for line in promoted.stdout.splitlines())  # stdout stays the person's

    shown = json.loads(cli("registry", "show", "1.1.0").stdout)
    assert shown["report"] == f"gs://{cli.reports}/models/1.1.0/report.html"
    page = cli.storage.bucket(cli.reports).blob("models/1.1.0/report.html").download_as_text()
    assert "Changes against production" in page and "USA" in page
