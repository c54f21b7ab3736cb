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

from pharmaseg.config import RetrainSettings
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.reports.model_report import ModelReportWriter
from pharmaseg.retrain import service
from pharmaseg.retrain.approval import promote_by_hand
from pharmaseg.retrain.gate import GateThresholds
from pharmaseg.retrain.message import decode_request, encode_request
from pharmaseg.retrain.pipeline import ModelVersionsTable, retrain
from pharmaseg.retrain.publish import publish_request
from pharmaseg.runtime import Event, accept
from tests.integration.notified import keyed, stack_subscription, take
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
    models, sources, reports = f"models-{suffix}", f"sources-{suffix}", f"reports-{suffix}"
    for name in (models, sources, reports):
        storage.create_bucket(name)
    storage.bucket(sources).blob(DATA_OBJECT).upload_from_filename(str(DATA))
    client = bigquery.client()
    dataset = f"retrain_{suffix}"
    client.create_dataset(dataset)
    table_id = f"{bigquery.project}.{dataset}.{cloud_resources.table_name('model_versions')}"
    schema = [bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema("model_versions")]
    client.create_table(bq.Table(table_id, schema=schema))
    settings = RetrainSettings(
        project=bigquery.project,
        models_bucket=models,
        sources_bucket=sources,
        reports_bucket=reports,
        retrain_window="2011-2020",
        retrain_bootstrap=10,
    )
    deps = service.RetrainService(
        settings,
        registry=ModelRegistry(models, client=storage),
        store=ModelVersionsTable(client, table_id),
        storage_client=storage,
        reports=ModelReportWriter(storage, reports, borderline_below=0.1),
    )
    deps.sources, deps.reports_bucket = sources, reports
    deps.rows = lambda: [dict(r.items()) for r in client.query(f"SELECT * FROM `{table_id}` ORDER BY evaluated_at")]
    return deps


def send(deps, message_id, **fields):
    return accept(deps, Event(service.EVENT_TYPE, event({"reason": "integration", **fields}, message_id)))


def production(deps):
    state = deps.registry.alias("production")
    return state.version if state else None


def test_fresh_window_is_held_for_review_with_its_movers_and_report_then_promoted_by_hand(env):
    first = send(env, "m-base")
    assert first.decision == "promoted" and production(env) == first.version == "1.0.0"
    fresh = send(env, "m-fresh", window="2012-2021", reason="2021 data published")
    assert fresh.decision == "held" and fresh.production_version == "1.0.0" and production(env) == "1.0.0"
    assert env.registry.alias("candidate").version == "1.0.0"  # a held version gets no A/B traffic
    rows = env.rows()
    assert [(r["version"], r["decision"], r["message_id"]) for r in rows] == [
        ("1.0.0", "promoted", "m-base"),
        ("1.1.0", "held", "m-fresh"),
    ]
    row = rows[1]
    assert row["reason"] == "2021 data published" and row["window"] == "2012-2021" and row["profile_fit"] is True
    assert row["decision_detail"].startswith("held for review: gate failed: market_agreement, key_market_moves")
    movers = {m["country"]: m for m in row["movers"]}  # a REPEATED RECORD, read back from BigQuery
    assert set(movers) == {"USA", "DEU"} and movers["USA"]["market_share"] > 0.4
    assert movers["DEU"]["from_segment"] == "High-Value Pharma Markets"
    gate = json.loads(row["gate"])
    assert not gate["passed"] and gate["checks"]["countries"] == {
        "value": 34,
        "threshold": 33,
        "passed": True,
        "detail": "0.9 x 36 production countries",
    }
    assert row["report_uri"] == f"gs://{env.reports_bucket}/models/1.1.0/report.html"
    bucket = env.storage_client.bucket(env.reports_bucket)
    page = bucket.blob("models/1.1.0/report.html").download_as_text()
    assert "held for review" in page and "USA" in page and "<img" in page
    twin = json.loads(bucket.blob("models/1.1.0/report.json").download_as_bytes())
    assert twin["decision"]["decision"] == "held" and {m["country"] for m in twin["comparison"]["movers"]} == set(
        movers
    )
    lineage = env.registry.load(fresh.version).lineage
    assert lineage["trigger"]["message_id"] == "m-fresh" and lineage["trigger"]["reason"] == "2021 data published"

    # A person reviews the report and promotes the held version; the decision is recorded like the gate's.
    shown = []
    decision = promote_by_hand(
        env.registry,
        env.store,
        "1.1.0",
        reason="reviewed: the US and German moves follow the 2021 data",
        by="ana",
        report_uri=row["report_uri"],
        show=lambda changes, previous: shown.append((previous, [m.country for m in changes.movers])),
    )
    assert shown == [("1.0.0", ["USA", "DEU"])] and production(env) == "1.1.0"
    manual = env.rows()[-1]
    assert (manual["version"], manual["decision"], manual["decided_by"]) == ("1.1.0", "manual_promotion", "ana")
    assert manual["production_version"] == "1.0.0" and {m["country"] for m in manual["movers"]} == {"USA", "DEU"}
    assert decision.state.version == "1.1.0"


def test_a_request_for_data_already_trained_is_skipped_and_registers_nothing(env):
    send(env, "m-base")
    again = send(env, "m-again", reason="same file, asked again")
    assert again.decision == "skipped" and again.version == "1.0.0"
    assert env.registry.versions() == ["1.0.0"]
    row = env.rows()[-1]
    assert (row["decision"], row["version"], row["message_id"]) == ("skipped", "1.0.0", "m-again")
    assert row["decision_detail"].startswith("skipped: no new data")


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
    assert accept(env, Event(service.EVENT_TYPE, event(b"{not json", "m-bad"))) is None
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
                # The market-weighted checks hold 2012-2021 (the USA and Germany move); set aside,
                # both racers pass the gate, which is what a race needs.
                thresholds=GateThresholds(min_market_agreement=0.0, key_market_share=1.0),
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
    from pharmaseg.gcp.clients import bigquery_client

    client = bigquery_client(status["project"])
    sql = f"SELECT * FROM `{status['tables']['model_versions']}` WHERE message_id = '{message_id}'"
    return [dict(r.items()) for r in client.query(sql).result()]


def _log_lines(status, event_name):
    with open(status["logs"]["retrain"]) as fh:
        return [json.loads(x) for x in fh if x.startswith("{") and f'"{event_name}"' in x]


def _source_rows(status, bucket, name, generation):
    return _stack_rows(status, f"source:{bucket}/{name}#{generation}")


def _upload_source(status, name, data: bytes):
    from pharmaseg.gcp.clients import storage_client

    blob = storage_client(status["project"]).bucket(status["buckets"]["sources"]).blob(name)
    blob.upload_from_string(data, content_type="text/csv")
    return blob.generation


@pytest.fixture
def stack(local_stack_env):
    """The running stack with a 2011-2020 production model and the OECD file in the sources bucket.

    Uploading the file is itself a "new source data" event; the fixture waits for the retrain it
    triggers to be decided, so that no background retrain overlaps the tests.
    """
    status = local_stack_env
    if "retrain" not in status["functions"] or status["function_errors"].get("retrain"):
        pytest.fail(f"retrain function not running: {status['function_errors']}")
    from pharmaseg.gcp.clients import storage_client

    registry = ModelRegistry(status["buckets"]["models"])
    state = registry.alias("production")
    if state is None or registry.load(state.version).window != "2011-2020":
        from tests.models import trained

        model = trained()[1]
        registry.promote(registry.register(model), reason="retrain tests: a 2011-2020 production")
    blob = storage_client(status["project"]).bucket(status["buckets"]["sources"]).blob(DATA_OBJECT)
    if not blob.exists():
        generation = _upload_source(status, DATA_OBJECT, DATA.read_bytes())
        wait_for(lambda: _source_rows(status, status["buckets"]["sources"], DATA_OBJECT, generation), timeout=180)
    return status


def test_stack_push_subscription_retrains_and_holds_for_review(stack):
    registry = ModelRegistry(stack["buckets"]["models"])
    before = registry.alias("production").version
    message_id = publish_request(
        stack["project"], stack["topics"]["retrain"], reason="integration: push", window="2012-2021", n_bootstrap=10
    )
    rows = wait_for(lambda: _stack_rows(stack, message_id), timeout=120)
    assert len(rows) == 1 and rows[0]["decision"] == "held", rows
    assert rows[0]["decision_detail"].startswith("held for review") and "USA" in rows[0]["decision_detail"]
    assert registry.alias("production").version == before
    assert registry.load(rows[0]["version"]).lineage["trigger"]["message_id"] == message_id
    bucket, name = rows[0]["report_uri"].removeprefix("gs://").split("/", 1)
    from pharmaseg.gcp.clients import storage_client

    assert "held for review" in storage_client(stack["project"]).bucket(bucket).blob(name).download_as_text()
    # One notification, on the topic the local stack's subscription reads, published before the row.
    version = rows[0]["version"]
    (held,) = take(*stack_subscription(stack), keyed(f"version_held:{version}:{message_id}"))
    assert held.kind == "version_held" and held.title.startswith(f"Version {version} held for review")
    assert held.details.production_version == before and "market_agreement" in held.details.failed_checks
    assert {m.country for m in held.details.movers} == {m["country"] for m in rows[0]["movers"]} >= {"USA"}
    assert [(link.uri, link.path) for link in held.links] == [
        (rows[0]["report_uri"], f"/reports/models/{version}/report.html")
    ]
    assert held.command == f"pharmaseg registry promote {version} --reason '...' --by <you>"
    line = [x for x in _log_lines(stack, "notification_version_held") if x["key"] == held.key]
    assert len(line) == 1 and line[0]["severity"] == "NOTICE" and line[0]["topic"] == stack["topics"]["notifications"]


def test_stack_new_source_file_requests_its_latest_window_and_the_same_data_again_is_skipped(stack):
    """A new OECD file in the sources bucket publishes a retrain request for its latest complete window;
    the same bytes dropped again train nothing."""
    from pharmaseg.gcp.clients import subscriber_client

    project, sources = stack["project"], stack["buckets"]["sources"]
    subscriber = subscriber_client()
    watch = subscriber.subscription_path(project, f"watch-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=watch, topic=f"projects/{project}/topics/{stack['topics']['retrain']}")
    registry = ModelRegistry(stack["buckets"]["models"])
    data = DATA.read_bytes().replace(b"\n", b"\r\n")  # other bytes, the same data: a new sha256
    name = f"oecd-{uuid.uuid4().hex[:8]}.csv"
    generation = _upload_source(stack, name, data)
    requests = {}

    def request_seen():
        for received in subscriber.pull(subscription=watch, max_messages=20, timeout=5).received_messages:
            requests[received.message.attributes.get("source_object")] = json.loads(received.message.data)
        return requests.get(f"{sources}/{name}#{generation}")

    request = wait_for(request_seen, timeout=60)
    assert request["window"] == "2012-2021" and request["data_uri"] == f"gs://{sources}/{name}#{generation}"
    first = wait_for(lambda: _source_rows(stack, sources, name, generation), timeout=180)[0]
    assert first["decision"] == "held" and first["window"] == "2012-2021"
    versions = registry.versions()

    again = _upload_source(stack, f"again-{name}", data)
    second = wait_for(lambda: _source_rows(stack, sources, f"again-{name}", again), timeout=180)[0]
    assert second["decision"] == "skipped" and second["version"] == first["version"]
    assert second["decision_detail"].startswith("skipped: no new data")
    assert registry.versions() == versions  # nothing registered
    subscriber.delete_subscription(subscription=watch)


def test_stack_acknowledges_a_malformed_message_once(stack):
    from pharmaseg.gcp.clients import publisher_client

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
    fields = {"reason": "redelivery", "promotion": "never", "n_bootstrap": 10, "seed": 5}  # no version has these
    body = json.dumps(event(fields, message_id)).encode()
    headers = {
        "Content-Type": "application/json",
        "ce-id": message_id,
        "ce-specversion": "1.0",
        "ce-type": service.EVENT_TYPE,
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
