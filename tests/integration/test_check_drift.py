"""The drift check on the emulators: verdicts, the report and row it writes, retrain requests, cooldown.

Most tests run ``pharmaseg.check_drift.service.DriftService.run`` in-process against the session's BigQuery, GCS
and Pub/Sub emulators, each in a dataset and buckets of its own with its own retrain topic and
pull subscription; the last one goes through the running stack: the drift topic's push
subscription, the check_drift function, and the retrain topic.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pharmaseg.check_drift import methods, pointer, queries, service
from pharmaseg.config import DriftSettings
from pharmaseg.gcp import pubsub
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.bigquery import load_ndjson
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.runtime import Event, accept
from pharmaseg_dev import simulate
from tests.integration.notified import keyed, stack_subscription, take

DATA = Path(
    os.environ.get("PHARMASEG_DATA", Path(__file__).resolve().parents[3] / "shared/data/oecd_pharma_spending.csv")
)
PERIOD = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 8, tzinfo=UTC))


@pytest.fixture(scope="module")
def artifact():
    from tests.models import trained

    return trained(n_bootstrap=5)[1]


def _create_tables(bq, project: str, dataset: str) -> None:
    from google.cloud import bigquery

    bq.create_dataset(bigquery.Dataset(f"{project}.{dataset}"), exists_ok=True)
    for role in (
        "predictions_log",
        "batch_predictions",
        "drift_reports",
        "batch_runs",
        "batch_rejects",
        "model_versions",
    ):
        schema = [bigquery.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
        bq.create_table(bigquery.Table(f"{project}.{dataset}.{cloud_resources.table_name(role)}", schema=schema))


@pytest.fixture
def env(gcs, pubsub, bigquery, artifact):
    """A fresh dataset, models/reports buckets with the model in production, a retrain topic + pull subscription."""
    tag = uuid.uuid4().hex[:8]
    project = bigquery.project
    bq, storage = bigquery.client(), gcs.client()
    dataset = f"drift_{tag}"
    _create_tables(bq, project, dataset)
    models, reports = f"models-{tag}", f"reports-{tag}"
    for name in (models, reports):
        storage.create_bucket(name)
    registry = ModelRegistry(models, client=storage)
    version = registry.register(artifact)
    registry.promote(version, reason="test")
    publisher, subscriber = pubsub.publisher(), pubsub.subscriber()
    topic = publisher.topic_path(pubsub.project, f"retrain-{tag}")
    publisher.create_topic(name=topic)
    subscription = subscriber.subscription_path(pubsub.project, f"retrain-{tag}-pull")
    subscriber.create_subscription(name=subscription, topic=topic)
    notifications = publisher.topic_path(pubsub.project, f"notifications-{tag}")
    publisher.create_topic(name=notifications)
    notified = subscriber.subscription_path(pubsub.project, f"notifications-{tag}-pull")
    subscriber.create_subscription(name=notified, topic=notifications)
    settings = DriftSettings(
        project=project,
        dataset=dataset,
        models_bucket=models,
        reports_bucket=reports,
        retrain_topic=f"retrain-{tag}",
        notifications_topic=f"notifications-{tag}",
        drift_bootstrap=500,
    )
    yield {
        "settings": settings,
        "bq": bq,
        "gcs": storage,
        "gcs_root": gcs.root,
        "publisher": publisher,
        "subscriber": subscriber,
        "subscription": subscription,
        "artifact": registry.load(version),
        "pubsub_project": pubsub.project,
        "notifications": notified,
    }
    for name in (subscription, notified):
        subscriber.delete_subscription(subscription=name)
    for name in (topic, notifications):
        publisher.delete_topic(topic=name)


def _load(env, n_online: int, n_batch: int, *, shift=None, seed=0, period=PERIOD, jitter=0.0, draw=None) -> None:
    """Load simulated rows; ``draw(refs, n, rng)`` replaces the default resampling of the training rows."""
    artifact, settings = env["artifact"], env["settings"]
    refs = methods.references(artifact.reference, artifact.feature_names)
    rng = np.random.default_rng(seed)
    for role, n, make in (
        ("predictions_log", n_online, simulate.online_rows),
        ("batch_predictions", n_batch, simulate.batch_rows),
    ):
        if n:
            if draw is None:
                values = simulate.sample_features(refs, n, rng, jitter=jitter, shift=shift)
            else:
                values = draw(refs, n, rng)
            times = simulate.timestamps(n, *period, rng)
            table = f"{settings.project}.{settings.dataset}.{cloud_resources.table_name(role)}"
            load_ndjson(env["bq"], table, simulate.ndjson(make(values, artifact, times)), role)


def _latest(env) -> dict:
    blob = env["gcs"].bucket(env["settings"].reports_bucket).blob(pointer.LATEST_OBJECT)
    return json.loads(blob.download_as_bytes())


def _object(env, uri: str) -> bytes:
    bucket, name = uri.removeprefix("gs://").split("/", 1)
    return env["gcs"].bucket(bucket).blob(name).download_as_bytes()


def _service(env) -> service.DriftService:
    return service.DriftService(env["settings"], bq=env["bq"], gcs=env["gcs"], publisher=env["publisher"])


def _run(env, message_id=None, **request):
    request = {"period_start": PERIOD[0], "period_end": PERIOD[1], **request}
    return _service(env).run(request, message_id=message_id or uuid.uuid4().hex, now=PERIOD[1])


def _pull(env, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = env["subscriber"].pull(
            subscription=env["subscription"], max_messages=10, return_immediately=True, timeout=5
        )
        if response.received_messages:
            env["subscriber"].acknowledge(
                subscription=env["subscription"], ack_ids=[m.ack_id for m in response.received_messages]
            )
            return [m.message for m in response.received_messages]
        time.sleep(0.3)
    return []


def _notified(env, timeout: float = 10.0) -> list:
    return take(env["subscriber"], env["notifications"], lambda notification: True, timeout=timeout)


def _rows(env) -> list[dict]:
    table = f"{env['settings'].project}.{env['settings'].dataset}.drift_reports"
    return [dict(r.items()) for r in env["bq"].query(f"SELECT * FROM `{table}` ORDER BY run_at").result()]


def test_no_drift_period_writes_row_and_reports_and_requests_nothing(env, capsys):
    _load(env, 200, 150, seed=1)
    doc = _run(env)
    assert doc["result"]["verdict"] == "no_drift", doc["result"]["reason"]
    assert doc["rows"] == {"online": 200, "batch": 150, "total": 350} and doc["path"] == "raw"
    assert doc["retrain"]["requested"] is False
    rows = _rows(env)
    assert len(rows) == 1 and rows[0]["verdict"] == "no_drift" and rows[0]["retrain_requested"] is False
    assert len(rows[0]["features"]) == 9 and rows[0]["report_uri"] == doc["report_uri"]
    bucket, name = doc["report_uri"].removeprefix("gs://").split("/", 1)
    page = env["gcs"].bucket(bucket).blob(name).download_as_text()
    # 9 features + segment shares + joint structure
    assert page.count("data:image/png;base64,") == 11 and "no_drift" in page and "Joint structure" in page
    stored = json.loads(env["gcs"].bucket(bucket).blob(name.replace(".html", ".json")).download_as_bytes())
    assert stored["result"]["verdict"] == "no_drift"
    joint = stored["result"]["joint"]
    assert joint["n"] == 350 and joint["drift"] is False and joint["p_adjusted"] >= joint["p_value"]
    assert rows[0]["joint"]["n"] == 350 and rows[0]["joint"]["sampled_from"] is None
    assert rows[0]["joint"]["components"] == 5 and rows[0]["joint"]["drift"] is False
    latest = _latest(env)
    assert latest["report_id"] == doc["report_id"] and latest["verdict"] == "no_drift"
    assert latest["drifted_features"] == [] and latest["period"] == doc["period"]
    assert _object(env, f"gs://{bucket}/{latest['html_object']}").decode() == page
    assert json.loads(_object(env, latest["json_uri"]))["report_id"] == doc["report_id"]
    assert _pull(env, timeout=1.5) == []
    assert '"event": "drift_check"' in capsys.readouterr().out
    assert _notified(env, timeout=1.5) == []  # no drift, nothing to tell
    figures = json.loads(_object(env, f"gs://{bucket}/monitoring/index.json"))  # the monitoring page, rebuilt
    assert figures["built_by"] == doc["report_id"] and [c["report_id"] for c in figures["checks"]] == [doc["report_id"]]
    assert figures["checks"][0]["segments"]["online"] and sum(figures["checks"][0]["segments"]["batch"].values()) == 150
    assert doc["report_id"] in _object(env, f"gs://{bucket}/monitoring/index.html").decode()


def test_a_monitoring_page_that_cannot_be_rebuilt_leaves_the_check_and_its_row_intact(env, capsys):
    settings = env["settings"]
    env["bq"].delete_table(f"{settings.project}.{settings.dataset}.model_versions")
    _load(env, 100, 0, seed=4)
    doc = _run(env)
    assert doc["result"]["verdict"] == "no_drift" and _rows(env)[0]["report_id"] == doc["report_id"]
    warnings = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "monitoring_page_failed" in line]
    assert len(warnings) == 1 and warnings[0]["severity"] == "WARNING" and "model_versions" in warnings[0]["message"]
    assert not env["gcs"].bucket(settings.reports_bucket).blob("monitoring/index.html").exists()


def test_drift_period_logs_warning_and_publishes_a_valid_retrain_request(env, capsys):
    _load(env, 100, 100, shift={"USD_CAP_avg": 1.5, "PC_GDP_avg": 1.5}, seed=2)
    doc = _run(env)
    result = doc["result"]
    assert result["verdict"] == "drift"
    assert {"USD_CAP_avg", "PC_GDP_avg"} <= set(result["drifted_features"])
    assert doc["retrain"]["requested"] is True
    messages = _pull(env)
    assert len(messages) == 1
    body = json.loads(messages[0].data)
    assert body["promotion"] == "auto" and body["reason"].startswith("drift detected")
    assert messages[0].attributes["drift_report_id"] == doc["report_id"]
    from pharmaseg.retrain.message import parse_request

    parse_request(body, default_data_uri="gs://b/data.csv", default_window="2011-2020")
    out = capsys.readouterr().out
    warning = [json.loads(line) for line in out.splitlines() if "drift_detected" in line]
    assert warning and warning[0]["severity"] == "WARNING" and warning[0]["event"] == "drift_detected"
    assert _rows(env)[0]["retrain_requested"] is True
    (found,) = _notified(env)
    assert found.key == f"drift_found:{doc['report_id']}" and found.details.model_version == doc["model_version"]
    assert set(found.details.drifted_features) == set(result["drifted_features"])
    assert found.details.retrain_requested and found.links[0].uri == doc["report_uri"]
    assert found.links[0].path == "/reports/" + doc["report_uri"].split("/", 3)[3]
    assert '"event": "notification_drift_found"' in out


def test_a_drift_that_cannot_be_notified_is_checked_again_and_then_told(env):
    """The check raises (Pub/Sub redelivers it) rather than record a drift nobody hears of."""
    from google.api_core.exceptions import NotFound

    _load(env, 100, 100, shift={"USD_CAP_avg": 1.5, "PC_GDP_avg": 1.5}, seed=2)
    missing = dataclasses.replace(env["settings"], notifications_topic=f"gone-{uuid.uuid4().hex[:6]}")
    check = service.DriftService(missing, bq=env["bq"], gcs=env["gcs"], publisher=env["publisher"])
    request = {"period_start": PERIOD[0], "period_end": PERIOD[1]}
    with pytest.raises(NotFound):
        check.run(request, message_id="m-redelivered", now=PERIOD[1])
    assert _rows(env) == []  # no row: the redelivery is not taken for a duplicate
    doc = _service(env).run(request, message_id="m-redelivered", now=PERIOD[1])  # the redelivery
    assert [row["report_id"] for row in _rows(env)] == [doc["report_id"]]
    assert [n.key for n in _notified(env)] == ["drift_found:msg-m-redelivered"]
    requests = _pull(env)  # each attempt asked for a retrain; the retrain function keys both on the report
    assert {m.attributes["drift_report_id"] for m in requests} == {"msg-m-redelivered"}


def test_insufficient_data_gives_no_verdict_and_no_request(env):
    _load(env, 5, 4, shift={"USD_CAP_avg": 3.0}, seed=3)
    doc = _run(env)
    assert doc["result"]["verdict"] == "insufficient_data" and doc["rows"]["total"] == 9
    assert doc["retrain"]["requested"] is False and _pull(env, timeout=1.0) == []
    assert doc["result"]["joint"] is None
    row = _rows(env)[0]
    assert row["verdict"] == "insufficient_data" and row["joint"] is None
    assert _latest(env)["verdict"] == "insufficient_data"


def test_a_correlation_change_with_unchanged_marginals_is_joint_drift(env, capsys):
    """Each feature's values permuted on their own: no feature moved, how they move together did."""
    _load(env, 150, 150, seed=10, draw=simulate.decorrelated)
    doc = _run(env, retrain="never")
    result = doc["result"]
    assert result["verdict"] == "drift" and "joint structure" in result["reason"], result["reason"]
    assert result["drifted_features"] == [], "the marginals are the training ones"
    assert result["joint"]["drift"] is True and result["joint"]["p_adjusted"] < 0.05
    row = _rows(env)[0]
    assert row["verdict"] == "drift" and row["joint"]["drift"] is True and row["joint"]["n"] == 300
    assert row["joint"]["recent_error"] > row["joint"]["reference_error"]
    assert not any(f["drift"] for f in row["features"])
    latest = _latest(env)
    assert latest["verdict"] == "drift" and "joint structure" in latest["drifted_features"]
    assert "joint structure" in latest["reason"]
    page = _object(env, doc["report_uri"]).decode()
    assert "<img alt='joint structure'" in page and "<table class='meta drift'>" in page
    warning = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "drift_detected" in line]
    assert warning and warning[0]["joint_drift"] is True


def test_latest_pointer_keeps_the_newest_check(env):
    _load(env, 100, 0, seed=11)
    newer = _run(env)
    older = _service(env).run(
        {"period_start": PERIOD[0], "period_end": PERIOD[1]},
        message_id=uuid.uuid4().hex,
        now=PERIOD[1] - timedelta(hours=1),
    )
    assert older["run_at"] < newer["run_at"] and _latest(env)["report_id"] == newer["report_id"]
    again = _run(env, message_id=newer["report_id"].removeprefix("msg-"))
    assert again["duplicate"] is True and _latest(env)["report_id"] == newer["report_id"]
    stale = pointer.latest_pointer(older, env["settings"].reports_bucket)
    assert pointer.write_latest(env["gcs"], env["settings"].reports_bucket, stale) is False
    blob = env["gcs"].bucket(env["settings"].reports_bucket).get_blob(pointer.LATEST_OBJECT)
    blob.upload_from_string(b"not json")  # an unreadable pointer is replaced, not an error
    assert pointer.write_latest(env["gcs"], env["settings"].reports_bucket, stale) is True
    assert _latest(env)["report_id"] == older["report_id"]


def test_cooldown_stops_a_second_request_until_it_expires(env):
    _load(env, 150, 0, shift={"PC_HEALTHXP_avg": 2.0}, seed=4)
    first = _run(env)
    second = _run(env)
    assert first["retrain"]["requested"] is True
    assert second["result"]["verdict"] == "drift" and second["retrain"]["requested"] is False
    assert second["retrain"]["decision"].startswith("not requested: cooldown")
    assert len(_pull(env)) == 1
    later = _service(env).run(
        {"period_start": PERIOD[0], "period_end": PERIOD[1]},
        message_id=uuid.uuid4().hex,
        now=PERIOD[1] + timedelta(hours=env["settings"].drift_cooldown_hours + 1),
    )
    assert later["retrain"]["requested"] is True and len(_pull(env)) == 1
    assert [r["retrain_requested"] for r in _rows(env)] == [True, False, True]


def test_policy_never_and_redelivery(env):
    _load(env, 150, 0, shift={"PC_HEALTHXP_avg": 2.0}, seed=5)
    doc = _run(env, message_id="m-1", retrain="never")
    assert doc["result"]["verdict"] == "drift" and doc["retrain"]["decision"] == "not requested: policy never"
    again = _run(env, message_id="m-1")
    assert again["duplicate"] is True and len(_rows(env)) == 1 and _pull(env, timeout=1.0) == []


def test_large_sample_takes_the_binned_path(env):
    env["settings"] = dataclasses.replace(env["settings"], drift_ks_max_rows=500, drift_joint_max_rows=1000)
    _load(env, 300, 3000, seed=6, jitter=0.1)
    calm = _run(env)
    assert calm["path"] == "binned" and calm["result"]["verdict"] == "no_drift", calm["result"]["reason"]
    assert calm["result"]["features"][0]["method"] == "wasserstein+js"
    joint = calm["result"]["joint"]
    assert joint["n"] == 1000 and joint["details"]["sampled_from"] == 3300 and joint["drift"] is False
    assert "query_sample" in calm["timings_s"] and _rows(env)[0]["joint"]["sampled_from"] == 3300
    shifted = (PERIOD[1], PERIOD[1] + timedelta(days=7))
    _load(env, 0, 3000, seed=7, shift={"USD_CAP_avg": 1.0}, period=shifted)
    drift = _service(env).run(
        {"period_start": shifted[0], "period_end": shifted[1], "retrain": "never"}, now=shifted[1]
    )
    assert drift["result"]["verdict"] == "drift" and "USD_CAP_avg" in drift["result"]["drifted_features"]


def test_handle_event_refuses_malformed_messages(env, capsys):
    import base64

    data = {"message": {"data": base64.b64encode(b'{"period_days": "x"}').decode(), "messageId": "1"}}
    assert accept(_service(env), Event(pubsub.PUBLISHED, data)) is None
    assert "drift_check_rejected" in capsys.readouterr().out
    assert accept(_service(env), Event("google.cloud.storage.object.v1.finalized", data)) is None
    assert "unexpected event type" in capsys.readouterr().out


def _demo_module():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "scripts" / "demo_drift.py"
    spec = importlib.util.spec_from_file_location("demo_drift", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_drift_function_through_the_running_stack(local_stack_env, artifact):
    """Predictions -> log router -> predictions_log; drift topic -> push -> check_drift -> retrain topic."""
    status = local_stack_env
    if "check_drift" not in status["functions"]:
        pytest.fail(f"the stack did not start check_drift: {status['function_errors']}")
    registry = ModelRegistry(status["buckets"]["models"])
    registry.promote(registry.register(artifact), reason="drift test")
    from pharmaseg.gcp import clients as gcp

    subscriber = gcp.subscriber_client()
    topic = f"projects/{status['project']}/topics/{status['topics']['retrain']}"
    subscription = subscriber.subscription_path(status["project"], f"drift-test-{uuid.uuid4().hex[:6]}")
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        row = _demo_module().check(status, log=lambda *_: None)
        assert row["verdict"] == "drift" and row["retrain_requested"] is True
        assert {"USD_CAP_avg", "PC_GDP_avg"} <= {f["feature"] for f in row["features"] if f["drift"]}
        assert Path(row["report_path"]).is_file() and "data:image/png" in Path(row["report_path"]).read_text()
        deadline, messages = time.monotonic() + 20, []
        while time.monotonic() < deadline and not messages:
            messages = subscriber.pull(subscription=subscription, max_messages=5, timeout=5).received_messages
        assert messages and messages[0].message.attributes["drift_report_id"] == row["report_id"]
        assert json.loads(messages[0].message.data)["reason"].startswith("drift detected")
        # One notification, on the topic the local stack's subscription reads.
        (found,) = take(*stack_subscription(status), keyed(f"drift_found:{row['report_id']}"))
        assert found.details.model_version == row["model_version"] and found.details.retrain_requested
        assert {"USD_CAP_avg", "PC_GDP_avg"} <= set(found.details.drifted_features)
        assert found.links[0].uri == row["report_uri"] and found.links[0].path.startswith("/reports/drift/")
    finally:
        subscriber.delete_subscription(subscription=subscription)


def test_only_inputs_the_production_version_answered_are_compared(env):
    production = env["artifact"]
    other = dataclasses.replace(production, version="9.9.9")  # e.g. a pinned or A/B candidate version
    _load(dict(env, artifact=other), 300, 0, shift={"USD_CAP_avg": 3.0}, seed=8)
    doc = _run(env)
    assert doc["result"]["verdict"] == "insufficient_data" and doc["rows"]["total"] == 0
    _load(env, 300, 0, shift={"USD_CAP_avg": 3.0}, seed=9)
    doc = _run(env)
    assert doc["result"]["verdict"] == "drift" and doc["rows"]["total"] == 300


def test_latest_pointer_loses_to_a_concurrent_newer_writer(env, monkeypatch):
    """Another check writes a newer pointer between our read and our write: the generation
    precondition (honoured by the storage emulator) makes us re-read and step back."""
    from google.cloud.storage.blob import Blob

    bucket = env["settings"].reports_bucket
    base = {"report_id": "a", "run_at": "2030-01-08T00:00:00+00:00"}
    env["gcs"].bucket(bucket).blob(pointer.LATEST_OBJECT).upload_from_string(json.dumps(base))
    original = Blob.upload_from_string
    raced = []

    def race_then_upload(self, *args, **kwargs):
        if self.name == pointer.LATEST_OBJECT and not raced:
            raced.append(True)  # the other check's write lands after our read, before ours
            newer = {"report_id": "c", "run_at": "2030-01-08T02:00:00+00:00"}
            original(env["gcs"].bucket(bucket).blob(pointer.LATEST_OBJECT), json.dumps(newer))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Blob, "upload_from_string", race_then_upload)
    ours = {"report_id": "b", "run_at": "2030-01-08T01:00:00+00:00"}
    assert pointer.write_latest(env["gcs"], bucket, ours) is False
    assert raced and _latest(env)["report_id"] == "c"


def test_the_sample_query_draws_uniformly_from_the_whole_period(env):
    """On the emulator: RAND() < @fraction, ORDER BY RAND(), LIMIT - not the first rows, not twice the same."""
    artifact, settings = env["artifact"], env["settings"]
    n = 4000
    values = np.zeros((n, len(artifact.feature_names)))
    values[:, 0] = np.arange(n)  # the row's rank in time
    times = simulate.timestamps(n, *PERIOD, np.random.default_rng(12))
    table = f"{settings.project}.{settings.dataset}.{cloud_resources.table_name('batch_predictions')}"
    load_ndjson(env["bq"], table, simulate.ndjson(simulate.batch_rows(values, artifact, times)), "batch_predictions")
    refs = methods.references(artifact.reference, artifact.feature_names)
    period = queries.Period(*PERIOD)
    samples = []
    for _ in range(2):
        recent = queries.fetch_recent(
            env["bq"], settings.project, settings.dataset, refs, period,
            model_version=artifact.version, ks_max_rows=500, joint_max_rows=400,
        )  # fmt: skip
        assert recent.sampled_from == n and recent.rows.shape == (400, len(refs))
        samples.append(recent.rows[:, 0])
    for ranks in samples:
        assert len(set(ranks)) == 400  # without replacement
        se = n / math.sqrt(12 * 400)
        assert abs(ranks.mean() - (n - 1) / 2) < 4 * se, "the sample leans to one end of the period"
    assert len(set(samples[0]) & set(samples[1])) < 100  # ~40 expected by chance; a fixed subset gives 400


def test_report_renders_in_chromium_with_the_joint_plot_and_escaped_names(env, tmp_path):
    """What a person sees: the page in headless Chromium, markup in a segment name shown as text."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.fail("chromium is not installed (Debian package chromium)")
    artifact = env["artifact"]
    segments = [dataclasses.replace(s, name=s.name) for s in artifact.segments]
    segments[0] = dataclasses.replace(segments[0], name="<b id='injected'>A & B</b>")
    hostile = dataclasses.replace(artifact, segments=segments, version=None)
    registry = ModelRegistry(env["settings"].models_bucket, client=env["gcs"])
    version = registry.register(hostile)
    registry.promote(version, reason="escaping test")
    env = dict(env, artifact=registry.load(version))
    _load(env, 200, 0, seed=13, draw=simulate.decorrelated)
    doc = _run(env, retrain="never")
    page = tmp_path / "report.html"
    page.write_bytes(_object(env, doc["report_uri"]))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "<b id=" not in dom, "markup from a segment name became an element"
    assert "&lt;b id='injected'&gt;A &amp; B&lt;/b&gt;" in dom  # shown as text
    assert dom.count("data:image/png;base64,") == 11 and 'id="joint"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1100,3000", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    import matplotlib.image

    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).astype(int)
    recent_colour = np.array([0xDD, 0x84, 0x52])  # the plots' "recent" colour: only images draw it
    assert (np.abs(pixels - recent_colour).sum(axis=-1) < 30).sum() > 2000
