"""The retrain service's decisions on an in-memory registry: promote, hold, force, never, redelivery, races.

The real GCS registry and BigQuery table are exercised in tests/integration/test_retrain.py;
here a small fake with the same contract (idempotency keys, conditional promotion) keeps the
decision logic fast to test.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import replace

import pytest

from pharmaseg.config import RetrainSettings
from pharmaseg.errors import ConcurrentUpdateError, PharmasegError, VersionNotFoundError
from pharmaseg.retrain import pipeline, service
from pharmaseg.retrain.gate import GateThresholds
from pharmaseg.retrain.message import RetrainRequest
from pharmaseg.retrain.pipeline import TrainingFailedError, retrain
from pharmaseg.runtime import Event, accept
from tests.fake_publisher import FakePublisher as NotificationsPublisher

# The 2012-2021 window passes every check but the market-weighted ones (the USA and Germany move);
# with those set aside it is a candidate the gate promotes, which is what the race tests need.
MARKETS_ASIDE = GateThresholds(min_market_agreement=0.0, key_market_share=1.0)


class FakeAlias:
    def __init__(self, version, history):
        self.version = version
        self.document = {"version": version, "history": [{"version": v} for v in history]}


class FakeRegistry:
    """The subset of ModelRegistry the service uses, with the same conditional semantics."""

    def __init__(self):
        self.models, self.keys, self.aliases, self.history = {}, {}, {}, {}

    def version_for_key(self, key):
        return self.keys.get(key)

    def register(self, artifact, *, idempotency_key=None):
        if idempotency_key in self.keys:
            return self.keys[idempotency_key]
        version = f"1.{len(self.models)}.0"
        artifact.version = version
        self.models[version] = copy.deepcopy(artifact)
        if idempotency_key:
            self.keys[idempotency_key] = version
        return version

    def equivalent(self, identity):
        from pharmaseg.model.registry import artifact_identity

        return next((v for v, a in reversed(self.models.items()) if artifact_identity(a) == identity), None)

    def load(self, version):
        if version not in self.models:
            raise VersionNotFoundError(version)
        return copy.deepcopy(self.models[version])

    def alias(self, name):
        return FakeAlias(self.aliases[name], self.history.get(name, [])) if name in self.aliases else None

    def promote(self, version, alias="production", *, reason="", expected_version=...):
        if expected_version is not ... and self.aliases.get(alias) != expected_version:
            raise ConcurrentUpdateError(f"alias {alias} points at {self.aliases.get(alias)}")
        if alias in self.aliases:
            self.history.setdefault(alias, []).append(self.aliases[alias])
        self.aliases[alias] = version


class FakeStore:
    def __init__(self):
        self.rows = []

    def find(self, version, message_id):
        return next((r for r in self.rows if (r["version"], r["message_id"]) == (version, message_id)), None)

    def record(self, row):
        if self.find(row["version"], row["message_id"]) is None:
            self.rows.append(row)


@pytest.fixture
def env(oecd_path):
    registry, store = FakeRegistry(), FakeStore()

    def run(message_id, **fields):
        kwargs = fields.pop("_kw", {})
        request = RetrainRequest(
            **{"reason": "test", "data_uri": str(oecd_path), "window": "2011-2020", "n_bootstrap": 10, **fields}
        )
        return retrain(request, message_id, registry=registry, store=store, **kwargs)

    return registry, store, run


def test_first_model_is_promoted_and_named_candidate(env):
    registry, store, run = env
    decision = run("m1")
    assert decision.decision == "promoted" and decision.production_version is None
    assert registry.aliases == {"production": "1.0.0", "candidate": "1.0.0"}
    row = store.rows[0]
    assert row["message_id"] == "m1" and row["policy"] == "auto" and row["profile_fit"] is True
    assert json.loads(row["gate"])["passed"] is True
    assert registry.load("1.0.0").lineage["trigger"]["message_id"] == "m1"


def test_fresh_window_moving_the_usa_and_germany_is_held_for_review(env):
    registry, store, run = env
    run("m1")
    decision = run("m2", window="2012-2021")
    assert decision.decision == "held" and decision.production_version == "1.0.0"
    assert decision.detail.startswith("held for review: gate failed: market_agreement, key_market_moves")
    assert "USA (" in decision.detail and "DEU (" in decision.detail
    assert registry.aliases["production"] == "1.0.0" and registry.aliases["candidate"] == "1.0.0"
    movers = {m["country"]: m for m in store.rows[-1]["movers"]}
    assert set(movers) == {"USA", "DEU"}
    assert movers["USA"]["from_segment"] == "High-Value Pharma Markets"
    assert movers["USA"]["to_segment"] == "Stable Moderate Markets"
    assert movers["USA"]["market_share"] > movers["DEU"]["market_share"] > 0.05
    assert 0 <= movers["USA"]["confidence_after"] <= 1 and store.rows[-1]["decided_by"] == "gate"


class FakeBucket:
    """The reports bucket, in memory: object name -> bytes or text."""

    def __init__(self):
        self.objects = {}

    def bucket(self, name):
        return self

    def blob(self, name):
        objects = self.objects

        class Blob:
            def upload_from_string(self, data, content_type=None):
                objects[name] = data

        return Blob()


def test_the_report_of_a_held_version_redraws_history_on_the_data_it_was_trained_on(env):
    from pharmaseg.reports.model_report import ModelReportWriter

    registry, store, run = env
    storage = FakeBucket()
    reports = ModelReportWriter(storage, "reports", borderline_below=0.15)
    run("m1", _kw={"reports": reports})
    run("m2", window="2012-2021", _kw={"reports": reports})
    history = json.loads(storage.objects["models/1.1.0/report.json"])["history"]
    assert history["window_years"] == 10 and history["windows"][-1] == "2013-2022"
    assert history["redraw"]["production_version"] == "1.0.0" and history["redraw"]["changed"] > 0
    assert json.loads(storage.objects["models/1.0.0/report.json"])["history"]["redraw"] is None


def test_the_same_data_window_and_parameters_are_skipped_and_register_nothing(env):
    registry, store, run = env
    run("m1")
    decision = run("m2")  # the same file, window and parameters as 1.0.0
    assert decision.decision == "skipped" and decision.version == "1.0.0"
    assert decision.detail.startswith("skipped: no new data") and "version 1.0.0" in decision.detail
    assert list(registry.models) == ["1.0.0"] and store.rows[-1]["decision"] == "skipped"
    assert run("m3", seed=7).decision != "skipped"  # other parameters are new


def test_a_request_without_a_window_trains_the_latest_complete_window(env):
    registry, store, run = env
    run("m1")  # 2011-2020
    decision = run("m2", window=None)
    assert registry.load(decision.version).window == "2012-2021"
    assert run("m3", window=None).decision == "skipped"  # asked again: nothing new


def test_lowest_inertia_candidate_is_held_and_stays_registered(env):
    registry, store, run = env
    run("m1")
    decision = run("m2", n_init=50)
    assert decision.decision == "held"
    assert "silhouette" in decision.gate.failed and "gate failed: silhouette" in decision.detail
    assert registry.aliases["production"] == "1.0.0"
    assert "1.1.0" in registry.models  # left in the registry for a person to inspect
    assert registry.aliases["candidate"] == "1.0.0"  # but never given A/B traffic
    assert [r["decision"] for r in store.rows] == ["promoted", "held"]


def test_force_promotes_a_failing_candidate(env):
    registry, _, run = env
    run("m1")
    decision = run("m2", k=4, promotion="force")
    assert decision.decision == "forced" and "despite failed checks" in decision.detail
    assert registry.aliases["production"] == decision.version


def test_never_registers_without_promoting(env):
    registry, store, run = env
    run("m1")
    decision = run("m2", seed=1, promotion="never")
    assert decision.decision == "held" and decision.detail.startswith("policy never")
    assert registry.aliases["production"] == "1.0.0" and "1.1.0" in registry.models


def test_redelivery_returns_the_first_decision(env):
    registry, store, run = env
    first = run("m1")
    again = run("m1")
    assert again.duplicate and again.version == first.version and again.decision == "promoted"
    assert len(registry.models) == 1 and len(store.rows) == 1


def test_redelivery_after_a_crash_before_the_record_completes_it(env):
    registry, store, run = env
    run("m1")
    store.rows.clear()  # the first delivery died after promoting, before writing its row
    decision = run("m1")
    assert not decision.duplicate and decision.decision == "promoted"
    assert "already production" in decision.detail
    assert len(registry.models) == 1 and len(store.rows) == 1


def test_loser_of_a_promotion_race_re_evaluates_against_the_new_production(env, oecd_path):
    registry, store, run = env
    run("m1")
    rival = registry.load("1.0.0")
    rival.window = "2012-2021"

    def rival_promotes_first():
        if registry.aliases["production"] == "1.0.0":
            registry.promote(registry.register(copy.deepcopy(rival), idempotency_key="rival"), "production")

    decision = run("m2", window="2012-2021", _kw={"before_promote": rival_promotes_first, "thresholds": MARKETS_ASIDE})
    assert "production moved" in decision.detail
    assert decision.production_version == registry.keys["rival"]  # judged against the winner
    assert decision.decision in ("promoted", "held")


def test_always_losing_the_race_is_held_and_says_so(env):
    registry, store, run = env
    run("m1")

    attempts = {"n": 0}

    def count_attempt():
        attempts["n"] += 1

    original = registry.promote

    def always_conflicting(version, alias="production", **kw):
        if alias == "production":
            raise ConcurrentUpdateError("moved")
        return original(version, alias, **kw)

    registry.promote = always_conflicting
    decision = run("m2", window="2012-2021", _kw={"before_promote": count_attempt, "thresholds": MARKETS_ASIDE})
    assert decision.decision == "held" and "lost promotion races" in decision.detail
    assert attempts["n"] == pipeline.MAX_PROMOTE_ATTEMPTS


# -- notifications -------------------------------------------------------------------------------


def notified(store, fail=None, log=lambda *args, **fields: None):
    """A notifier publishing to a fake client; each message with the rows recorded when it went out."""
    from pharmaseg.notifications import Notifier, decode

    sent = []
    publisher = NotificationsPublisher(fail=fail, on_publish=lambda: sent.append(len(store.rows)))
    notifier = Notifier("p", "notifications", publisher=lambda: publisher, log=log)

    def messages():
        return [(decode(data), rows) for (_, data, _), rows in zip(publisher.published, sent)]

    return notifier, messages


def test_a_promotion_and_a_held_version_are_notified_before_their_rows(env):
    registry, store, run = env
    notifier, messages = notified(store)
    run("m1", _kw={"notifier": notifier})
    run("m2", window="2012-2021", _kw={"notifier": notifier})
    (first, rows_then), (held, rows_later) = messages()
    assert (first.kind, first.details.from_version, first.details.to_version) == ("production_changed", None, "1.0.0")
    assert first.details.decision == "promoted" and first.details.by == "gate" and rows_then == 0
    assert held.kind == "version_held" and held.key == "version_held:1.1.0:m2" and rows_later == 1
    assert held.details.failed_checks == ["market_agreement", "key_market_moves"]
    assert {m.country for m in held.details.movers} == {"USA", "DEU"} and held.details.production_version == "1.0.0"


def test_a_skipped_request_notifies_nobody(env):
    _, store, run = env
    notifier, messages = notified(store)
    run("m1")
    assert run("m2", _kw={"notifier": notifier}).decision == "skipped" and messages() == []


def test_a_redelivery_after_a_crash_notifies_the_same_change_again(env):
    registry, store, run = env
    notifier, messages = notified(store)
    run("m1")
    run("m2", window="2012-2021", _kw={"notifier": notifier, "thresholds": MARKETS_ASIDE})
    store.rows.pop()  # the first delivery died after notifying, before writing its row
    again = run("m2", window="2012-2021", _kw={"notifier": notifier, "thresholds": MARKETS_ASIDE})
    assert "already production" in again.detail
    first, second = (notification for notification, _ in messages())
    assert first.key == second.key == "production_changed:1.1.0:m2"  # a duplicate the consumer drops
    assert second.details.from_version == first.details.from_version == "1.0.0"  # from the alias history


def test_a_notification_that_cannot_be_published_loses_no_decision(env, capsys):
    _, store, run = env
    notifier, _ = notified(store, fail=RuntimeError("pubsub down"), log=pipeline.log)  # the function's log lines
    decision = run("m1", _kw={"notifier": notifier})
    assert decision.decision == "promoted" and [r["decision"] for r in store.rows] == ["promoted"]
    failed = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"notification_failed"' in x]
    assert len(failed) == 1 and "pubsub down" in failed[0]["error"]


def test_data_that_cannot_train_is_a_training_failure(env):
    _, _, run = env
    with pytest.raises(TrainingFailedError, match="window 2030-2031"):
        run("m1", window="2030-2031")


# -- the handler ---------------------------------------------------------------------------------


def event_data(payload, message_id="m1"):
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"message": {"data": base64.b64encode(raw).decode(), "messageId": message_id, "attributes": {}}}


@pytest.fixture
def deps(oecd_path):
    settings = RetrainSettings(project="p", retrain_data_uri="gs://sources/oecd.csv", retrain_window="2011-2020")
    return service.RetrainService(settings, registry=FakeRegistry(), store=FakeStore(), storage_client=None)


def test_handler_acknowledges_a_malformed_message_and_logs_why(deps, capsys):
    assert accept(deps, Event(service.EVENT_TYPE, event_data({"reason": "r", "k": 0}), id="e1")) is None
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR" and line["event"] == "retrain_malformed"
    assert "k must be between 2 and 10" in line["error"] and line["message_id"] == "m1"
    assert deps.registry.models == {}


class EmptyStorage:
    """A storage client whose every object is missing."""

    def bucket(self, name):
        return self

    def blob(self, name, generation=None):
        self.generation = generation
        return self

    def download_as_bytes(self):
        from google.api_core.exceptions import NotFound

        raise NotFound("no such object")


def test_handler_acknowledges_untrainable_data(deps, capsys):
    data = event_data({"reason": "r", "data_uri": "gs://nope/x.csv"})
    deps.storage_client = EmptyStorage()
    assert accept(deps, Event(service.EVENT_TYPE, data, id="e1")) is None
    assert '"event": "retrain_failed"' in capsys.readouterr().out


def test_handler_acknowledges_other_event_types_and_logs_why(deps, capsys):
    assert accept(deps, Event("google.cloud.storage.object.v1.deleted", {}, id="e1")) is None
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR" and line["event"] == "retrain_bad_event"
    assert "unexpected event type" in line["message"] and "messagePublished" in line["message"]


class FakePublisher:
    def __init__(self):
        self.published = []

    def topic_path(self, project, topic):
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic, data, **attributes):
        from concurrent.futures import Future

        self.published.append((topic, json.loads(data), attributes))
        future = Future()
        future.set_result(f"msg-{len(self.published)}")
        return future


def listen_to_sources(retrain_service):
    """The service as deployed with a sources bucket ``src`` and a retrain topic, publishing to a fake."""
    retrain_service.publisher = FakePublisher()
    retrain_service.settings = replace(retrain_service.settings, retrain_topic="retrain", sources_bucket="src")


def source_event(bucket, name="oecd_pharma_spending.csv", generation=7):
    return {"bucket": bucket, "name": name, "generation": str(generation), "size": "100"}


def test_a_new_source_file_publishes_a_request_for_that_generation_and_its_latest_window(deps, oecd_path):
    deps.storage_client = FileStorage(oecd_path)
    listen_to_sources(deps)
    message_id = accept(deps, Event(service.STORAGE_FINALIZED, source_event("src"), id="e1"))
    assert message_id == "msg-1"
    topic, request, attributes = deps.publisher.published[0]
    assert topic == "projects/p/topics/retrain"
    assert request["data_uri"] == "gs://src/oecd_pharma_spending.csv#7" and request["window"] == "2012-2021"
    assert attributes["source_object"] == "src/oecd_pharma_spending.csv#7"
    assert deps.storage_client.generation == 7  # the very generation that was announced was read
    assert deps.registry.models == {}  # the request is trained when it arrives, not here


@pytest.mark.parametrize(
    "event, why",
    [
        (source_event("src", name="README.txt"), "not a CSV file"),
        (source_event("src", name="archive/"), "folder placeholder"),
    ],
)
def test_storage_events_of_other_objects_are_ignored(deps, event, why, capsys):
    listen_to_sources(deps)
    assert accept(deps, Event(service.STORAGE_FINALIZED, event, id="e1")) is None
    assert deps.publisher.published == [] and why in capsys.readouterr().out


def test_default_data_uri_from_settings():
    assert service.default_data_uri(RetrainSettings()) is None
    assert service.default_data_uri(RetrainSettings(sources_bucket="src")) == "gs://src/oecd_pharma_spending.csv"
    both = RetrainSettings(sources_bucket="src", retrain_data_uri="gs://x/y.csv")
    assert service.default_data_uri(both) == "gs://x/y.csv"


def test_bad_gate_thresholds_stop_the_function_at_start():
    with pytest.raises(PharmasegError, match="unknown gate threshold"):
        service.RetrainService(
            RetrainSettings(gate_thresholds='{"min_arii": 0.8}'), registry=None, store=None, storage_client=None
        )


class FileStorage(EmptyStorage):
    """A storage client whose every object is the OECD file."""

    def __init__(self, path):
        self.path = path

    def download_as_bytes(self):
        return self.path.read_bytes()


def test_a_drift_request_published_twice_is_one_version_and_one_decision(deps, oecd_path):
    deps.storage_client = FileStorage(oecd_path)
    data = event_data({"reason": "drift detected", "n_bootstrap": 2}, message_id="m-first")
    data["message"]["attributes"] = {"origin": "check_drift", "drift_report_id": "msg-42"}
    again = event_data({"reason": "drift detected", "n_bootstrap": 2}, message_id="m-second")
    again["message"]["attributes"] = dict(data["message"]["attributes"])
    first = accept(deps, Event(service.EVENT_TYPE, data, id="e1"))
    second = accept(deps, Event(service.EVENT_TYPE, again, id="e2"))
    assert second.version == first.version and second.duplicate
    assert [r["message_id"] for r in deps.store.rows] == ["drift-report:msg-42"]


# -- the feature store ---------------------------------------------------------------------------


class StoreWatchingPublisher(FakePublisher):
    """Notes how many feature rows were stored when each request was published."""

    def __init__(self, store):
        super().__init__()
        self.store, self.rows_stored = store, []

    def publish(self, topic, data, **attributes):
        self.rows_stored.append(len(self.store.rows))
        return super().publish(topic, data, **attributes)


def test_a_new_source_file_is_stored_before_its_request_and_stored_again_still_gets_one(oecd_path):
    from tests.unit.memory_tables import targets

    features = targets()
    deps = service.RetrainService(
        RetrainSettings(project="p", models_bucket="models"),
        registry=FakeRegistry(),
        store=FakeStore(),
        storage_client=FileStorage(oecd_path),
        features=features,
    )
    listen_to_sources(deps)
    deps.publisher = StoreWatchingPublisher(features.store)
    assert accept(deps, Event(service.STORAGE_FINALIZED, source_event("src"), id="e1")) == "msg-1"
    assert deps.publisher.rows_stored == [1350]
    assert {r["source_uri"] for r in features.store.rows} == {"gs://src/oecd_pharma_spending.csv#7"}
    assert ("models", "features/latest.json") in features.storage_client.objects
    assert features.history.table.rows == []  # no production model yet: no history to write

    again = accept(deps, Event(service.STORAGE_FINALIZED, source_event("src", name="copy.csv", generation=9), id="e2"))
    assert again == "msg-2" and deps.publisher.rows_stored == [1350, 1350]
    assert deps.publisher.published[1][1]["data_uri"] == "gs://src/copy.csv#9"


def test_a_registered_candidate_writes_its_history_over_its_training_file_once(env, oecd_path):
    from pharmaseg.feature_store import HistoryRecorder
    from pharmaseg.model.sources import sha256_of
    from tests.unit.memory_tables import MemoryHistory

    registry, _, run = env
    history = HistoryRecorder(MemoryHistory(), 0.2)
    run("m1", _kw={"history": history})
    rows = history.table.rows
    assert {(r["model_version"], r["source_sha256"]) for r in rows} == {("1.0.0", sha256_of(oecd_path.read_bytes()))}
    assert {r["window_end"] - r["window_start"] for r in rows} == {9}
    assert {r["window"] for r in rows if r["latest_window"]} >= {"2012-2021", "2013-2022"}
    deu = next(r for r in rows if (r["country"], r["window"]) == ("DEU", "2011-2020"))
    model = registry.load("1.0.0")
    assert deu["segment"] == model.segment(model.assignments["DEU"]).name

    run("m1", _kw={"history": history})  # a redelivery
    skipped = run("m2", _kw={"history": history})  # the same data, window and parameters
    assert skipped.decision == "skipped" and history.table.rows == rows
