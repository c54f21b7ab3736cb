"""Retraining on the emulators: promoted, held, forced, malformed, redelivered, racing, and through the stack.

Most tests call the handler/service in-process against fake-gcs-server and bqemulator with a
bucket and dataset of their own; the last ones go through the running stack's push
subscription to the retrain function, as Pub/Sub delivers in production.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
import uuid

import pytest

from pharmaseg import resources
from pharmaseg.registry import ModelRegistry
from pharmaseg.retraining import handler
from pharmaseg.retraining.gate import GateThresholds
from pharmaseg.retraining.message import decode_request, encode_request
from pharmaseg.retraining.publish import publish_request
from pharmaseg.retraining.service import ModelVersionsTable, retrain
from tests.polling import wait_for
from tests.unit.conftest import DATA

DATA_OBJECT = "oecd_pharma_spending.csv"


def event(payload, message_id):
    raw = payload if isinstance(payload, bytes) else encode_request(**payload)
    return {"message": {"data": base64.b64encode(raw).decode(), "messageId": message_id, "attributes": {}}}


@pytest.fixture
def env(gcs, bigquery):
    """A models and a sources bucket, a dataset with model_versions, and the handler's dependencies."""
    from google.cloud import bigquery as bq

    suffix = uuid.uuid4().hex[:8]
    storage = gcs.client()
    models, sources = f"models-{suffix}", f"sources-{suffix}"
    for name in (models, sources):
        storage.create_bucket(name)
    storage.bucket(sources).blob(DATA_OBJECT).upload_from_filename(str(DATA))
    client = bigquery.client()
    dataset = f"retrain_{suffix}"
    client.create_dataset(dataset)
    table_id = f"{bigquery.project}.{dataset}.{resources.table_name('model_versions')}"
    schema = [bq.SchemaField.from_api_repr(f) for f in resources.table_schema("model_versions")]
    client.create_table(bq.Table(table_id, schema=schema))
    deps = handler.Dependencies(
        registry=ModelRegistry(models, client=storage),
        store=ModelVersionsTable(client, table_id),
        storage_client=storage,
        thresholds=GateThresholds(),
        defaults={
            "default_data_uri": f"gs://{sources}/{DATA_OBJECT}",
            "default_window": "2011-2020",
            "default_bootstrap": 10,
        },
    )
    deps.sources = sources
    deps.rows = lambda: [dict(r.items()) for r in client.query(f"SELECT * FROM `{table_id}` ORDER BY evaluated_at")]
    return deps


def send(deps, message_id, **fields):
    return handler.handle_event(handler.EVENT_TYPE, event({"reason": "integration", **fields}, message_id), None, deps)


def production(deps):
    state = deps.registry.alias("production")
    return state.version if state else None


def test_good_retrain_is_promoted_and_recorded(env):
    first = send(env, "m-base")
    assert first.decision == "promoted" and production(env) == first.version == "1.0.0"
    fresh = send(env, "m-fresh", window="2012-2021", reason="2021 data published")
    assert fresh.decision == "promoted" and fresh.production_version == "1.0.0"
    assert production(env) == fresh.version and env.registry.alias("candidate").version == fresh.version
    rows = env.rows()
    assert [(r["version"], r["decision"], r["message_id"]) for r in rows] == [
        ("1.0.0", "promoted", "m-base"),
        ("1.1.0", "promoted", "m-fresh"),
    ]
    row = rows[1]
    assert row["reason"] == "2021 data published" and row["window"] == "2012-2021" and row["profile_fit"] is True
    gate = json.loads(row["gate"])
    assert gate["passed"] and gate["checks"]["countries"] == {
        "value": 34,
        "threshold": 33,
        "passed": True,
        "detail": "0.9 x 36 production countries",
    }
    lineage = env.registry.load(fresh.version).lineage
    assert lineage["trigger"]["message_id"] == "m-fresh" and lineage["trigger"]["reason"] == "2021 data published"


@pytest.mark.parametrize(
    ("fields", "failing"),
    [
        ({"n_init": 50}, {"silhouette"}),  # the 183.8-inertia segmentation
        ({"k": 4}, {"segment_names", "silhouette", "stability"}),
        ({"window": "2019-2021"}, {"agreement_ari", "silhouette"}),
    ],
)
def test_worse_retrain_is_held_back(env, fields, failing):
    base = send(env, "m-base")
    held = send(env, "m-worse", **fields)
    assert held.decision == "held" and production(env) == base.version
    assert failing <= set(held.gate.failed), held.gate.failed
    assert env.registry.versions() == [base.version, held.version]  # kept for a person to inspect
    row = env.rows()[-1]
    assert row["decision"] == "held" and "gate failed" in row["decision_detail"]
    assert all(not json.loads(row["gate"])["checks"][name]["passed"] for name in failing)


def test_tiny_data_file_is_held_back(env, gcs):
    base = send(env, "m-base")
    text = DATA.read_text().splitlines()
    small = "\n".join([text[0], *[line for line in text[1:] if line[:3] in {"AUT", "BEL", "DEU", "FRA", "ITA"}]])
    env.storage_client.bucket(env.sources).blob("small.csv").upload_from_string(small)
    held = send(env, "m-small", data_uri=f"gs://{env.sources}/small.csv")
    assert held.decision == "held" and {"data_rows", "countries"} <= set(held.gate.failed)
    assert production(env) == base.version


def test_force_promotes_a_failing_candidate(env):
    send(env, "m-base")
    forced = send(env, "m-force", n_init=50, promotion="force")
    assert forced.decision == "forced" and not forced.gate.passed
    assert production(env) == forced.version
    assert env.rows()[-1]["decision"] == "forced"


def test_malformed_message_is_logged_and_acknowledged(env, capsys):
    assert handler.handle_event(handler.EVENT_TYPE, event(b"{not json", "m-bad"), None, env) is None
    assert send(env, "m-bad2", promotion="sometimes") is None
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    errors = [line for line in out if line.get("event") == "retrain_malformed"]
    assert [e["message_id"] for e in errors] == ["m-bad", "m-bad2"]
    assert "promotion must be one of auto, never, force" in errors[1]["error"]
    assert env.registry.versions() == [] and env.rows() == []


def test_redelivered_message_creates_one_version_and_one_row(env, capsys):
    first = send(env, "m-once", window="2012-2021")
    again = send(env, "m-once", window="2012-2021")
    assert again.duplicate and again.version == first.version
    assert env.registry.versions() == [first.version] and len(env.rows()) == 1
    assert '"event": "retrain_duplicate"' in capsys.readouterr().out


def test_two_racing_retrains_keep_production_consistent_and_both_are_recorded(env):
    base = send(env, "m-base")
    barrier = threading.Barrier(2, timeout=60)
    results, errors, waited = {}, [], {}  # each thread meets the other once, right before its first promote

    def meet_once(message_id):
        if message_id not in waited:
            waited[message_id] = barrier.wait()

    def worker(message_id, fields):
        try:
            request = decode_request(encode_request(reason="race", **fields), **env.defaults)
            results[message_id] = retrain(
                request,
                message_id,
                registry=env.registry,
                store=env.store,
                storage_client=env.storage_client,
                before_promote=lambda: meet_once(message_id),
            )
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=("m-race-a", {"window": "2012-2021"})),
        threading.Thread(target=worker, args=("m-race-b", {"window": "2012-2021", "n_init": 20})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    a, b = results["m-race-a"], results["m-race-b"]
    assert {a.version, b.version} == {"1.1.0", "1.2.0"}
    loser, winner = (a, b) if "production moved" in a.detail else (b, a)
    assert "production moved" in loser.detail and "production moved" not in winner.detail
    assert winner.production_version == base.version and loser.production_version == winner.version
    final = env.registry.alias("production")
    expected = loser.version if loser.decision == "promoted" else winner.version
    assert final.version == expected
    history = [h["version"] for h in final.document["history"]]
    assert history == [base.version] + ([winner.version] if loser.decision == "promoted" else [])
    rows = {r["message_id"]: r for r in env.rows()}
    assert set(rows) == {"m-base", "m-race-a", "m-race-b"}
    assert rows["m-race-a" if loser is a else "m-race-b"]["production_version"] == winner.version


# -- through the running stack -----------------------------------------------------------------


def _stack_rows(status, message_id):
    from pharmaseg.gcp import bigquery_client

    client = bigquery_client(status["project"])
    sql = f"SELECT * FROM `{status['tables']['model_versions']}` WHERE message_id = '{message_id}'"
    return [dict(r.items()) for r in client.query(sql).result()]


def _log_lines(status, event_name):
    with open(status["logs"]["retrain"]) as fh:
        return [json.loads(x) for x in fh if x.startswith("{") and f'"{event_name}"' in x]


@pytest.fixture
def stack(local_stack_env):
    status = local_stack_env
    if "retrain" not in status["functions"] or status["function_errors"].get("retrain"):
        pytest.fail(f"retrain function not running: {status['function_errors']}")
    from pharmaseg.gcp import storage_client

    blob = storage_client(status["project"]).bucket(status["buckets"]["sources"]).blob(DATA_OBJECT)
    if not blob.exists():
        blob.upload_from_filename(str(DATA))
    return status


def test_stack_push_subscription_retrains_and_promotes(stack):
    message_id = publish_request(
        stack["project"], stack["topics"]["retrain"], reason="integration: push", window="2012-2021", n_bootstrap=10
    )
    rows = wait_for(lambda: _stack_rows(stack, message_id), timeout=120)
    assert len(rows) == 1 and rows[0]["decision"] == "promoted", rows
    registry = ModelRegistry(stack["buckets"]["models"])
    assert registry.alias("production").version == rows[0]["version"]
    assert registry.load(rows[0]["version"]).lineage["trigger"]["message_id"] == message_id


def test_stack_acknowledges_a_malformed_message_once(stack):
    from pharmaseg.gcp import publisher_client

    publisher = publisher_client()
    topic = publisher.topic_path(stack["project"], stack["topics"]["retrain"])
    message_id = publisher.publish(topic, b'{"reason": "x", "k": "three"}').result(timeout=30)
    wait_for(lambda: [x for x in _log_lines(stack, "retrain_malformed") if x["message_id"] == message_id])
    time.sleep(4)  # a nacked message would be redelivered within the subscription's 1-10 s backoff
    lines = [x for x in _log_lines(stack, "retrain_malformed") if x["message_id"] == message_id]
    assert len(lines) == 1 and "k must be an integer" in lines[0]["error"]


def test_stack_redelivery_of_the_same_event_creates_one_version(stack):
    """Deliver the same CloudEvent twice to the function over HTTP, as a redelivery does."""
    message_id = f"redelivery-{uuid.uuid4().hex[:8]}"
    body = json.dumps(event({"reason": "redelivery", "promotion": "never", "n_bootstrap": 10}, message_id)).encode()
    headers = {
        "Content-Type": "application/json",
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": handler.EVENT_TYPE,
        "ce-source": f"//pubsub.googleapis.com/projects/{stack['project']}/topics/{stack['topics']['retrain']}",
    }
    registry = ModelRegistry(stack["buckets"]["models"])
    for _ in range(2):
        request = urllib.request.Request(stack["functions"]["retrain"], data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
    version = registry.version_for_key(message_id)
    rows = _stack_rows(stack, message_id)
    assert version and len(rows) == 1 and rows[0]["version"] == version and rows[0]["decision"] == "held"
    assert sum(1 for x in _log_lines(stack, "retrain_duplicate") if x["message_id"] == message_id) == 1
