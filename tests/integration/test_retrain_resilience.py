"""The retrain function killed between registering a version and recording its decision, on a stack of its own.

This module kills and restarts the function, so it never touches the session's ``local_stack``.
Its stack runs only the retrain function, with a 2011-2020 production model and the OECD file in
a data bucket of its own (not the sources bucket, where a new file would itself trigger a
retrain). The local push subscription redelivers a failed event 5 times, 1-10 s apart, then
dead-letters it; a message found dead-lettered is delivered again as the subscription delivers
it (the same push body, the same message id), since that is what production's redelivery is.

Each test checks the exactly-once outcome where it is kept: one version in the registry, its
idempotency key naming it, one ``model_versions`` row for the message, the version's report, and
the function's log lines.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
import uuid
from datetime import datetime

import pytest

from pharmaseg.gcp.clients import bigquery_client, publisher_client, storage_client, subscriber_client
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.retrain.message import decode_request, encode_request
from pharmaseg.retrain.pipeline import ModelVersionsTable, retrain
from pharmaseg_dev.stack import lifecycle
from pharmaseg_dev.stack.provision import triggers
from tests.integration import own_stack
from tests.polling import wait_for
from tests.unit.conftest import DATA

pytestmark = pytest.mark.integration
SETTINGS: dict[str, str] = {}  # none: the function runs as deployed (its registry keeps the 900 s claim lease)
REQUEST = {"reason": "resilience: 2021 data", "window": "2012-2021", "n_bootstrap": 10}


class Stack:
    def __init__(self, conftest, layout, status, data_uri: str):
        self.conftest, self.layout, self.status, self.data_uri = conftest, layout, status, data_uri
        self.project = status["project"]
        self.storage = storage_client(self.project, endpoint=layout.url("storage"))
        self.registry = ModelRegistry(status["buckets"]["models"], self.storage)
        self.reports = self.storage.bucket(status["buckets"]["reports"])
        self.bq = bigquery_client(self.project, endpoint=layout.url("bigquery"))
        self.table = status["tables"]["model_versions"]
        self.store = ModelVersionsTable(self.bq, self.table)

    def rows(self, column: str, value: str) -> list[dict]:
        sql = f"SELECT * FROM `{self.table}` WHERE {column} = '{value}'"
        return [dict(r.items()) for r in self.bq.query(sql).result()]

    def publish(self, **fields) -> tuple[str, bytes]:
        data = encode_request(data_uri=self.data_uri, **fields)
        topic = f"projects/{self.project}/topics/{self.status['topics']['retrain']}"
        publisher = publisher_client(endpoint=self.layout.pubsub_host)
        return publisher.publish(topic, data).result(timeout=30), data

    def deliver(self, message_id: str, data: bytes, publish_time: str | None = None) -> int:
        (trigger,) = [t for t in triggers("retrain", self.project) if t.topic == "retrain"]
        """POST the push subscription's body for this message to the Eventarc relay, as a redelivery does.

        The relay answers 204 when the function accepted the event and 500 when it failed.
        """
        body = {
            "message": {
                "data": base64.b64encode(data).decode(),
                "attributes": {},
                "messageId": message_id,
                "publishTime": publish_time,
            },
            "subscription": f"projects/{self.project}/subscriptions/{trigger.subscription}",
        }
        request = urllib.request.Request(
            trigger.endpoint(self.layout.url("eventarc")),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status

    def dead_lettered(self, data: bytes) -> str | None:
        """The publish time of our message if the emulator gave up on it (the dead-letter pull subscription has it)."""
        subscriber = subscriber_client(endpoint=self.layout.pubsub_host)
        path = f"projects/{self.project}/subscriptions/{self.status['topics']['dead_letter']}-pull"
        found = None
        for received in subscriber.pull(subscription=path, max_messages=50, timeout=10).received_messages:
            if received.message.data == data:
                found = received.message.publish_time.isoformat()
            subscriber.acknowledge(subscription=path, ack_ids=[received.ack_id])
        return found

    def log_events(self, message_id: str) -> list[dict]:
        """The function's JSON log lines about this message (the running process's log: a restart starts a new file)."""
        path = self.layout.log_path("retrain")
        lines = path.read_text().splitlines() if path.exists() else []
        return [
            e for e in map(json.loads, filter(lambda x: x.startswith("{"), lines)) if e.get("message_id") == message_id
        ]

    def report(self, version: str) -> tuple[str | None, dict | None]:
        html, twin = (
            self.reports.blob(f"models/{version}/report.html"),
            self.reports.blob(f"models/{version}/report.json"),
        )
        return (
            html.download_as_text() if html.exists() else None,
            json.loads(twin.download_as_bytes()) if twin.exists() else None,
        )

    def key_document(self, message_id: str) -> dict | None:
        """The registry's idempotency claim for the message: ``keys/<sha256>.json``."""
        blob = self.storage.bucket(self.registry.bucket_name).blob(
            f"keys/{hashlib.sha256(message_id.encode()).hexdigest()}.json"
        )
        return json.loads(blob.download_as_bytes()) if blob.exists() else None


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, stack_layout_factory):
    from tests.models import trained

    conftest = own_stack.session_conftest(request)
    root = tmp_path_factory.mktemp("retrain-resilience")
    own_stack.functions_dir(root, "retrain")
    production = trained()[1]
    layout, status = own_stack.start_own_stack(
        conftest, stack_layout_factory, root, SETTINGS, project="pharmaseg-retrain-resilience"
    )
    try:
        assert list(status["functions"]) == ["retrain"], status["function_errors"]
        storage = storage_client(status["project"], endpoint=layout.url("storage"))
        # In the sources bucket, where Terraform lets retrain read (the access audit checks it), under
        # a name the bucket's trigger leaves alone (not .csv): no retrain of its own interferes.
        data = storage.bucket(status["buckets"]["sources"])
        data.blob("resilience/oecd-panel.txt").upload_from_filename(str(DATA))
        stack = Stack(conftest, layout, status, f"gs://{data.name}/resilience/oecd-panel.txt")
        stack.registry.promote(stack.registry.register(production), reason="retrain resilience: 2011-2020")
        yield stack
    finally:
        own_stack.stop_own_stack(conftest, layout, status)


def wait_decided(stack: Stack, message_id: str, data: bytes) -> tuple[list[dict], str]:
    """The message's rows once there are any, and how they came.

    The push subscription's attempts are spent 10 s after the first (at 0, 1, 4, 7 and 10 s), so a
    message still undecided 30 s after the restart was dead-lettered while the function was down
    (a slow restart on a busy machine): it is then delivered again as the subscription would.
    """
    try:
        rows = wait_for(lambda: stack.rows("message_id", message_id), timeout=30, interval=0.5)
        return rows, "redelivered by Pub/Sub"
    except AssertionError:
        pass
    publish_time = stack.dead_lettered(data)
    rows = stack.rows("message_id", message_id)
    if rows or publish_time is None:
        assert rows, f"message {message_id} was neither decided within 30 s of the restart nor dead-lettered"
        return rows, "redelivered by Pub/Sub (over 30 s after the restart)"
    assert stack.deliver(message_id, data, publish_time) == 204
    return stack.rows("message_id", message_id), "dead-lettered while the function was down, so delivered again"


def test_retrain_killed_after_registering_is_finished_by_the_redelivery(stack):
    before = stack.registry.versions()
    production = stack.registry.resolve("production")
    t0 = time.monotonic()
    message_id, data = stack.publish(**REQUEST)

    # The window: the version's metadata.json is written (registered), its decision row is not.
    # After registering the function gates the candidate, renders its model report (matplotlib,
    # about a second) and only then records the row; polling the registry every 20 ms lands in it.
    deadline = time.monotonic() + 120
    while not (new := [v for v in stack.registry.versions() if v not in before]):
        assert time.monotonic() < deadline, "the retrain never registered a version"
        assert lifecycle.status(stack.layout)["running"]["retrain"], "the retrain function died by itself"
        time.sleep(0.02)
    own_stack.kill_function(stack.layout, "retrain")
    registered_s = time.monotonic() - t0
    (version,) = new
    killed_log = stack.log_events(message_id)
    rows_at_kill = stack.rows("message_id", message_id)
    assert rows_at_kill == [], (
        f"kill window missed: version {version}'s decision was already recorded when the function was killed "
        f"{registered_s:.2f}s after publishing, so this run proves nothing about finishing a version: "
        f"{[(r['version'], r['decision'], r['evaluated_at']) for r in rows_at_kill]}"
    )
    assert not [e for e in killed_log if e.get("event") == "retrain_decision"]
    assert stack.registry.metadata(version)["idempotency_key"] == message_id  # the version is this message's
    key_at_kill = stack.key_document(message_id)
    report_at_kill = stack.report(version)[0] is not None

    restart_s = own_stack.restart_missing(stack.conftest, stack.layout, SETTINGS)
    t_restart = time.monotonic()
    rows, how = wait_decided(stack, message_id, data)
    decided_s = time.monotonic() - t_restart

    # Exactly one version for the message, and no second one
    assert stack.registry.versions() == [*before, version]
    assert stack.key_document(message_id) == {"key": message_id, "version": version}
    assert stack.registry.load(version).lineage["trigger"]["message_id"] == message_id
    # One decision row, for that version: the gate's, recorded once
    (row,) = rows
    assert (row["version"], row["decision"], row["production_version"]) == (version, "held", production)
    assert row["decision_detail"].startswith("held for review: gate failed: market_agreement, key_market_moves")
    assert {m["country"] for m in row["movers"]} == {"USA", "DEU"}
    assert [r["message_id"] for r in stack.rows("version", version)] == [message_id]
    assert stack.registry.resolve("production") == production  # held: production did not move
    # The version's report, linked from the row
    assert row["report_uri"] == f"gs://{stack.reports.name}/models/{version}/report.html"
    page, twin = stack.report(version)
    assert page is not None and "held for review" in page and "USA" in page
    assert twin["decision"]["decision"] == "held"

    # The log's story: the restarted function decided once (finishing the version, not as a duplicate)
    events = stack.log_events(message_id)
    decisions = [e for e in events if e.get("event") == "retrain_decision"]
    assert [(e["version"], e["decision"], e["report_uri"]) for e in decisions] == [(version, "held", row["report_uri"])]
    decided_at = datetime.fromisoformat(decisions[0]["time"])
    late = [e for e in events if e.get("event") == "retrain_duplicate"]  # a redelivery racing the ack, if any
    assert all((e["version"], e["decision"]) == (version, "held") for e in late)
    assert all(datetime.fromisoformat(e["time"]) > decided_at for e in late)
    # ... and a delivery after that is only a logged duplicate of the same decision
    assert stack.deliver(message_id, data) == 204
    duplicates = [e for e in stack.log_events(message_id) if e.get("event") == "retrain_duplicate"]
    assert [(e["version"], e["decision"]) for e in duplicates] == [(version, "held")] * (len(late) + 1)
    assert len(stack.rows("message_id", message_id)) == 1 and stack.registry.versions() == [*before, version]
    print(
        f"\nretrain kill test: {version} registered {registered_s:.2f}s after publishing and killed then "
        f"(key {'naming it' if key_at_kill and key_at_kill.get('version') else 'not yet naming it'}, report "
        f"{'written' if report_at_kill else 'not written'}, no row); restarted in {restart_s:.1f}s; "
        f"{how}; decided {decided_s:.1f}s after the restart"
    )


class Died(BaseException):
    """The process died here: an injected crash that nothing in the service catches."""


class DiesRecordingTheKey(ModelRegistry):
    """The registry of a delivery whose process dies right after writing the version's metadata,
    before the idempotency key names the version: a window one GCS write wide, too narrow for kill -9."""

    def _write_json(self, name, doc, *, if_generation_match):
        if name.startswith("keys/") and doc.get("version"):
            raise Died(name)
        super()._write_json(name, doc, if_generation_match=if_generation_match)


def test_retrain_that_died_before_its_key_named_the_version_is_finished_not_skipped(stack):
    message_id = f"died-at-key-{uuid.uuid4().hex[:8]}"
    data = encode_request(data_uri=stack.data_uri, **REQUEST, seed=5, promotion="never")  # a version of its own
    before = stack.registry.versions()
    with pytest.raises(Died):
        retrain(
            decode_request(data, default_data_uri=None),
            message_id,
            registry=DiesRecordingTheKey(stack.registry.bucket_name, stack.storage),
            store=stack.store,
            storage_client=stack.storage,
        )
    (version,) = [v for v in stack.registry.versions() if v not in before]
    assert stack.registry.metadata(version)["idempotency_key"] == message_id
    assert stack.key_document(message_id)["version"] is None  # claimed and registered, never recorded

    # The redelivery, through the function: it must finish this version, not call the request
    # "no new data" because a version with its data, window and parameters exists (its own).
    assert stack.deliver(message_id, data) == 204
    (row,) = stack.rows("message_id", message_id)
    assert (row["version"], row["decision"]) == (version, "held"), row["decision_detail"]
    assert row["decision_detail"].startswith("policy never: registered for inspection")
    assert stack.registry.versions() == [*before, version]
    assert stack.key_document(message_id) == {"key": message_id, "version": version}
    assert row["report_uri"] == f"gs://{stack.reports.name}/models/{version}/report.html"
    assert stack.report(version)[1]["decision"]["decision"] == "held"
    decisions = [e for e in stack.log_events(message_id) if e.get("event") == "retrain_decision"]
    assert [(e["version"], e["decision"]) for e in decisions] == [(version, "held")]
