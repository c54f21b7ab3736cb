"""The local stack: CLI up/status/down, events GCS -> Pub/Sub -> function, log routing, tables."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import lifecycle, processes
from pharmaseg_dev.stack.logrouter import Router, to_log_entry
from tests.polling import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.prefix) / "bin" / "pharmaseg"

# Stub functions for the CLI stack: they stand in for the real ones, whoever writes those.
STUB_PREDICT = """
import json, os
import functions_framework

@functions_framework.http
def predict(request):
    body = request.get_json(silent=True) or {}
    print(json.dumps({"severity": "INFO", "message": "prediction", "event": "prediction",
                      "country": body["country"], "request_id": body["request_id"],
                      "features": {"PC_GDP_avg": 2.5, "USD_CAP_avg": 700.0}, "cluster": 1,
                      "cluster_name": "stub", "confidence": 0.5, "model_version": "stub",
                      "variant": "production", "latency_ms": 0.1}))
    return {"project": os.environ["GOOGLE_CLOUD_PROJECT"], "models": os.environ["PHARMASEG_MODELS_BUCKET"],
            "storage": os.environ["STORAGE_EMULATOR_HOST"]}
"""
STUB_SCORE_BATCH = """
import json, os
import functions_framework

@functions_framework.cloud_event
def score_batch(cloud_event):
    attributes = {k: cloud_event.get(k) for k in ("type", "source", "subject", "id", "time", "bucket")}
    with open(os.environ["STUB_EVENTS_FILE"], "a") as out:
        out.write(json.dumps({**attributes, "data": cloud_event.data}) + "\\n")
"""


def run_cli(env: dict[str, str], *args: str, console_script: bool = False) -> subprocess.CompletedProcess:
    if console_script:
        if not CONSOLE_SCRIPT.exists():
            pytest.fail(f"the pharmaseg console script is missing: {CONSOLE_SCRIPT} (run `make install`)")
        cmd = [str(CONSOLE_SCRIPT), "stack", *args]
    else:
        cmd = [sys.executable, "-m", "pharmaseg_dev.stack", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def stack_env(layout, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PHARMASEG_STACK_PORT_BASE=str(layout.port_base),
        PHARMASEG_STACK_DIR=str(layout.state_dir),
        PHARMASEG_STACK_PROJECT=layout.project,
        PHARMASEG_STACK_FUNCTIONS_DIR=str(layout.functions_dir),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def cli_stack(tmp_path_factory, stack_layout_factory):
    """A stack started through the CLI with stub predict and score_batch functions; stopped at the end."""
    root = tmp_path_factory.mktemp("cli-stack")
    for name, source in (("predict", STUB_PREDICT), ("score_batch", STUB_SCORE_BATCH)):
        (root / "functions" / name).mkdir(parents=True)
        (root / "functions" / name / "main.py").write_text(source)
    layout = stack_layout_factory(root / "state", functions_dir=root / "functions")
    env = stack_env(layout, STUB_EVENTS_FILE=str(root / "events.jsonl"))
    t0 = time.monotonic()
    result = run_cli(env, "up", "--json")
    startup = time.monotonic() - t0
    try:
        assert result.returncode == 0, result.stderr
        yield {"layout": layout, "env": env, "status": json.loads(result.stdout), "root": root, "startup_s": startup}
    finally:
        run_cli(env, "down")
        state = lifecycle.read_state(layout)
        if state:  # the CLI failed to stop it: do it here so nothing outlives the session
            lifecycle.down(layout, log=lambda *_: None)


def test_up_reports_status_json(cli_stack):
    status = cli_stack["status"]
    layout = cli_stack["layout"]
    for key in ("project", "functions", "emulators", "buckets", "topics", "dataset", "running", "env", "pids"):
        assert key in status
    assert status["up"] and all(status["running"].values()), status["running"]
    assert status["project"] == layout.project
    assert status["emulators"] == {n: layout.url(n) for n in ("storage", "pubsub", "bigquery")}
    assert status["functions"] == {"predict": layout.url("predict"), "score_batch": layout.url("score_batch")}
    assert status["buckets"] == {
        r: cloud_resources.bucket_name(r, layout.project) for r in cloud_resources.bucket_roles()
    }
    assert status["topics"] == {r: cloud_resources.topic_name(r) for r in cloud_resources.topic_roles()}
    assert status["dataset"] == cloud_resources.dataset_name()
    assert status["env"]["BIGQUERY_EMULATOR_HOST"] == layout.url("bigquery")
    pushed = {(s["topic"], s["function"], s["push_endpoint"]) for s in status["subscriptions"].values()}
    inbox = cloud_resources.bucket_name("inbox", layout.project)
    relay = f"{layout.url('eventarc')}/score_batch/storage/{inbox}"
    assert (cloud_resources.topic_name("storage_events"), "score_batch", relay) in pushed
    assert cli_stack["startup_s"] < 60


def test_status_via_console_script(cli_stack):
    result = run_cli(cli_stack["env"], "status", "--json", console_script=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pids"] == cli_stack["status"]["pids"]
    human = run_cli(cli_stack["env"], "status", console_script=True)
    assert "predict" in human.stdout and "running" in human.stdout


def test_up_twice_reuses_the_running_stack(cli_stack):
    result = run_cli(cli_stack["env"], "up", "--json")
    assert result.returncode == 0, result.stderr
    assert "reusing" in result.stderr
    assert json.loads(result.stdout)["pids"] == cli_stack["status"]["pids"]


def test_functions_get_the_stack_settings(cli_stack):
    import requests

    layout = cli_stack["layout"]
    response = requests.post(
        cli_stack["status"]["functions"]["predict"], json={"country": "FRA", "request_id": "settings"}, timeout=10
    )
    assert response.json() == {
        "project": layout.project,
        "models": cloud_resources.bucket_name("models", layout.project),
        # predict's own port of the recording proxy, not the emulator itself
        "storage": f"http://127.0.0.1:{layout.recorder_port('predict', 'storage')}",
    }


def test_inbox_upload_reaches_score_batch_as_eventarc_delivers_it(cli_stack):
    """fake-gcs-server -> storage events topic -> push -> Eventarc relay -> binary-mode CloudEvent.

    Only the trigger's bucket reaches the function: a finalize in another bucket, uploaded first,
    never arrives.
    """
    from pharmaseg.gcp import clients as gcp

    layout = cli_stack["layout"]
    client = gcp.storage_client(layout.project, endpoint=layout.url("storage"))
    marker = uuid.uuid4().hex
    inbox = cloud_resources.bucket_name("inbox", layout.project)
    client.bucket(cloud_resources.bucket_name("reports", layout.project)).blob(
        f"incoming/{marker}-r.csv"
    ).upload_from_string("a\n")
    name = f"incoming/{marker}.csv"
    client.bucket(inbox).blob(name).upload_from_string("a,b\n1,2\n")
    events_file = cli_stack["root"] / "events.jsonl"

    def delivered():
        if not events_file.exists():
            return None
        events = [json.loads(line) for line in events_file.read_text().splitlines()]
        return [e for e in events if marker in e["data"].get("name", "")]

    (event,) = wait_for(delivered)
    assert event["type"] == "google.cloud.storage.object.v1.finalized"
    assert event["source"] == f"//storage.googleapis.com/projects/_/buckets/{inbox}"
    assert event["subject"] == f"objects/{name}" and event["bucket"] == inbox
    assert event["data"]["bucket"] == inbox and event["data"]["name"] == name
    assert int(event["data"]["generation"]) > 0 and event["id"] and event["time"]


def test_prediction_log_line_reaches_bigquery(cli_stack):
    """predict's stdout line -> log router -> load job -> predictions_log, queryable by nested field."""
    import requests

    from pharmaseg.gcp import clients as gcp

    layout = cli_stack["layout"]
    request_id = uuid.uuid4().hex
    requests.post(
        cli_stack["status"]["functions"]["predict"], json={"country": "DEU", "request_id": request_id}, timeout=10
    ).raise_for_status()
    client = gcp.bigquery_client(layout.project, endpoint=layout.url("bigquery"))
    table = cli_stack["status"]["tables"]["predictions_log"]
    sql = (
        f"SELECT jsonPayload.features.PC_GDP_avg AS gdp, jsonPayload.country AS country, "
        f"resource.labels.service_name AS service, severity FROM `{table}` "
        f"WHERE jsonPayload.request_id = '{request_id}'"
    )
    rows = wait_for(lambda: list(client.query(sql).result()))
    assert [(r.gdp, r.country, r.service, r.severity) for r in rows] == [(2.5, "DEU", "predict", "INFO")]


def test_down_stops_every_process(cli_stack):
    pids = dict(cli_stack["status"]["pids"])
    assert set(pids) >= {"storage", "pubsub", "bigquery", "logrouter", "predict", "score_batch"}
    result = run_cli(cli_stack["env"], "down")
    assert result.returncode == 0, result.stderr
    for name, pid in pids.items():
        assert not processes.alive(pid), f"{name} (pid {pid}) still running"
        assert processes.group_members(pid) == [], f"{name}'s process group still has members"
    assert not cli_stack["layout"].state_file.exists()
    status = run_cli(cli_stack["env"], "status", "--json")
    assert status.returncode == 1 and json.loads(status.stdout)["up"] is False
    assert run_cli(cli_stack["env"], "down").returncode == 0  # down twice is harmless


def test_port_in_use_is_one_clear_line(tmp_path, stack_layout_factory):
    layout = stack_layout_factory(tmp_path / "state")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", layout.port("bigquery")))
        busy.listen()
        result = run_cli(stack_env(layout), "up")
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"{layout.port('bigquery')} (bigquery) in use" in message
    assert "pharmaseg stack down" in message and "PHARMASEG_STACK_PORT_BASE" in message
    assert not layout.state_file.exists()


def test_missing_emulators_venv_names_the_fix(tmp_path, stack_layout_factory):
    layout = stack_layout_factory(tmp_path / "state")
    result = run_cli(stack_env(layout, PHARMASEG_EMULATORS_VENV=str(tmp_path / "nowhere")), "up")
    assert result.returncode == 1
    assert "run `make emulators`" in result.stderr


def test_gcs_finalize_notification_reaches_pubsub(local_stack):
    """The stack's fake-gcs-server publishes a real GCS notification for every bucket's finalizes."""
    from pharmaseg.gcp import clients as gcp

    project, host = local_stack["project"], local_stack["env"]["PUBSUB_EMULATOR_HOST"]
    subscriber = gcp.subscriber_client(endpoint=host)
    subscription = subscriber.subscription_path(project, f"test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(
        name=subscription, topic=f"projects/{project}/topics/{local_stack['topics']['storage_events']}"
    )
    storage = gcp.storage_client(project, endpoint=local_stack["emulators"]["storage"])
    marker = uuid.uuid4().hex[:8]
    storage.bucket(local_stack["buckets"]["reports"]).blob(f"{marker}/r.txt").upload_from_string("x")
    storage.bucket(local_stack["buckets"]["inbox"]).blob(f"drop/{marker}.csv").upload_from_string("a\n1\n")
    seen: dict[str, object] = {}

    def both_pulled():
        response = subscriber.pull(subscription=subscription, max_messages=20, timeout=5)
        for received in response.received_messages:
            if marker in received.message.attributes.get("objectId", ""):
                seen[received.message.attributes["bucketId"]] = received.message
        return len(seen) == 2

    wait_for(both_pulled)
    inbox = seen[local_stack["buckets"]["inbox"]]
    assert inbox.attributes["eventType"] == "OBJECT_FINALIZE"
    assert inbox.attributes["payloadFormat"] == "JSON_API_V1"
    assert inbox.attributes["objectId"] == f"drop/{marker}.csv"
    assert json.loads(inbox.data)["name"] == f"drop/{marker}.csv"
    assert seen[local_stack["buckets"]["reports"]].attributes["objectId"] == f"{marker}/r.txt"


def test_log_router_loads_prediction_lines_only(local_stack, local_stack_layout):
    from pharmaseg.gcp import clients as gcp

    request_id = uuid.uuid4().hex
    line = {
        "severity": "WARNING",
        "message": "p",
        "event": "prediction",
        "request_id": request_id,
        "country": "ITA",
        "features": {"PC_GDP_avg": 1.75},
        "cluster": 3,
        "unknown_key": {"x": 1},
        "logging.googleapis.com/trace": "projects/p/traces/t",
    }
    log = local_stack_layout.log_path("fake-service")
    text = json.dumps(line) + "\n" + "plain text line\n" + json.dumps({"event": "other", "request_id": request_id})
    with open(log, "a") as out:
        out.write(text[:25])  # a partial line must wait for its end
        out.flush()
        time.sleep(1.5)
        out.write(text[25:] + "\n")
    client = gcp.bigquery_client(local_stack["project"], endpoint=local_stack["emulators"]["bigquery"])
    sql = (
        f"SELECT severity, jsonPayload.features.PC_GDP_avg AS gdp, jsonPayload.cluster AS cluster, "
        f"resource.type AS rtype, resource.labels.service_name AS service "
        f"FROM `{local_stack['tables']['predictions_log']}` WHERE jsonPayload.request_id = '{request_id}'"
    )
    rows = wait_for(lambda: list(client.query(sql).result()))
    time.sleep(1.5)  # one more router tick: nothing else for this request may arrive
    rows = list(client.query(sql).result())
    assert [tuple(r.values()) for r in rows] == [("WARNING", 1.75, 3, "cloud_run_revision", "fake-service")]


def test_log_router_loads_each_line_once_across_failed_loads_and_restarts(local_stack, tmp_path):
    """Offsets move only after a load succeeds, and a restarted router starts from them."""
    from pharmaseg.gcp import clients as gcp

    project, endpoint = local_stack["project"], local_stack["emulators"]["bigquery"]
    logs, offsets = tmp_path / "logs", tmp_path / "offsets.json"
    logs.mkdir()
    request_id = uuid.uuid4().hex
    log = logs / "svc.stdout.log"

    def append(cluster: int) -> None:
        with open(log, "a") as out:
            out.write(json.dumps({"event": "prediction", "request_id": request_id, "cluster": cluster}) + "\n")

    def router() -> Router:
        return Router(logs, project, offsets_file=offsets, endpoint=endpoint)

    append(1)
    failing = router()
    failing.table_id = f"{project}.no_such_dataset.{cloud_resources.table_name('predictions_log')}"
    with pytest.raises(Exception, match="no_such_dataset"):
        failing.tick()
    assert not offsets.exists()
    assert router().tick() == 1  # the line the failed load held back
    append(2)
    assert router().tick() == 1  # a restart: only the new line
    assert router().tick() == 0
    client = gcp.bigquery_client(project, endpoint=endpoint)
    sql = (
        f"SELECT jsonPayload.cluster AS cluster FROM `{local_stack['tables']['predictions_log']}` "
        f"WHERE jsonPayload.request_id = '{request_id}' ORDER BY cluster"
    )
    assert [r.cluster for r in client.query(sql).result()] == [1, 2]


def _schema_tuples(fields):
    return [
        (
            f["name"],
            f["type"].replace("FLOAT64", "FLOAT").replace("INT64", "INTEGER"),
            f.get("mode", "NULLABLE"),
            _schema_tuples(f.get("fields", [])),
        )
        for f in fields
    ]


def test_tables_have_the_resource_schemas(local_stack):
    from pharmaseg.gcp import clients as gcp

    client = gcp.bigquery_client(local_stack["project"], endpoint=local_stack["emulators"]["bigquery"])
    for role in cloud_resources.table_roles():
        table = client.get_table(local_stack["tables"][role])
        assert _schema_tuples([f.to_api_repr() for f in table.schema]) == _schema_tuples(
            cloud_resources.table_schema(role)
        ), role
        assert table.time_partitioning.field == cloud_resources.table_spec(role)["partition_field"]
        assert table.clustering_fields == cloud_resources.table_spec(role)["clustering"]


def test_buckets_and_topics_exist(local_stack):
    from pharmaseg.gcp import clients as gcp

    storage = gcp.storage_client(local_stack["project"], endpoint=local_stack["emulators"]["storage"])
    assert {b.name for b in storage.list_buckets()} >= set(local_stack["buckets"].values())
    publisher = gcp.publisher_client(endpoint=local_stack["env"]["PUBSUB_EMULATOR_HOST"])
    topics = {t.name.rsplit("/", 1)[1] for t in publisher.list_topics(project=f"projects/{local_stack['project']}")}
    assert topics >= set(local_stack["topics"].values())
    # the pull subscriptions a person reads: the dead letters, and what `pharmaseg notifications` prints
    from pharmaseg_dev.stack.provision import PULLED, pull_subscription

    subscriber = gcp.subscriber_client(endpoint=local_stack["env"]["PUBSUB_EMULATOR_HOST"])
    pulled = subscriber.list_subscriptions(project=f"projects/{local_stack['project']}")
    reads = {s.name.rsplit("/", 1)[1]: s.topic.rsplit("/", 1)[1] for s in pulled}
    assert {pull_subscription(role): reads.get(pull_subscription(role)) for role in PULLED} == {
        "pharmaseg-dead-letter-pull": local_stack["topics"]["dead_letter"],
        "pharmaseg-notifications-pull": local_stack["topics"]["notifications"],
    }


def test_single_emulator_fixtures(gcs, pubsub, bigquery):
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs.url
    bucket = gcs.client().create_bucket(f"b-{uuid.uuid4().hex[:8]}")
    bucket.blob("x/y.txt").upload_from_string("hello")
    assert (gcs.root / bucket.name / "x" / "y.txt").read_text() == "hello"
    topic = pubsub.publisher().create_topic(name=f"projects/{pubsub.project}/topics/t-{uuid.uuid4().hex[:8]}")
    assert topic.name.endswith(topic.name.rsplit("/", 1)[1])
    assert list(bigquery.client().query("SELECT 1 AS one").result())[0].one == 1


def test_log_entry_shape():
    entry = to_log_entry(
        {
            "severity": "INFO",
            "message": "m",
            "event": "prediction",
            "timestamp": "2026-01-01T00:00:00Z",
            "features": {"PC_GDP_avg": 1.0, "extra": 2},
            "logging.googleapis.com/spanId": "s",
        },
        service="predict",
        project="p",
        insert_id="i1",
    )
    assert entry["timestamp"] == "2026-01-01T00:00:00Z" and entry["insertId"] == "i1"
    assert entry["jsonPayload"] == {"message": "m", "event": "prediction", "features": {"PC_GDP_avg": 1.0}}
    assert entry["resource"]["labels"]["service_name"] == "predict"
    assert entry["logName"] == "projects/p/logs/run.googleapis.com%2Fstdout"
