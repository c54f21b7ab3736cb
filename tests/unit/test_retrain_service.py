"""The retrain service's decisions on an in-memory registry: promote, hold, force, never, redelivery, races.

The real GCS registry and BigQuery table are exercised in tests/integration/test_retrain.py;
here a small fake with the same contract (idempotency keys, conditional promotion) keeps the
decision logic fast to test.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from pharmaseg.errors import ConcurrentUpdateError, VersionNotFoundError
from pharmaseg.retraining import handler, service
from pharmaseg.retraining.message import RetrainRequest
from pharmaseg.retraining.service import TrainingFailedError, retrain


class FakeAlias:
    def __init__(self, version):
        self.version = version


class FakeRegistry:
    """The subset of ModelRegistry the service uses, with the same conditional semantics."""

    def __init__(self):
        self.models, self.keys, self.aliases = {}, {}, {}

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

    def load(self, version):
        if version not in self.models:
            raise VersionNotFoundError(version)
        return copy.deepcopy(self.models[version])

    def alias(self, name):
        return FakeAlias(self.aliases[name]) if name in self.aliases else None

    def promote(self, version, alias="production", *, reason="", expected_version=...):
        if expected_version is not ... and self.aliases.get(alias) != expected_version:
            raise ConcurrentUpdateError(f"alias {alias} points at {self.aliases.get(alias)}")
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


def test_fresh_window_is_promoted_over_production(env):
    registry, store, run = env
    run("m1")
    decision = run("m2", window="2012-2021")
    assert decision.decision == "promoted" and decision.production_version == "1.0.0"
    assert registry.aliases["production"] == "1.1.0"


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
    decision = run("m2", window="2012-2021", promotion="never")
    assert decision.decision == "held" and decision.detail.startswith("policy never")
    assert decision.gate.passed and registry.aliases["production"] == "1.0.0"


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

    decision = run("m2", window="2012-2021", _kw={"before_promote": rival_promotes_first})
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
    decision = run("m2", window="2012-2021", _kw={"before_promote": count_attempt})
    assert decision.decision == "held" and "lost promotion races" in decision.detail
    assert attempts["n"] == service.MAX_PROMOTE_ATTEMPTS


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
    from pharmaseg.retraining.gate import GateThresholds

    return handler.Dependencies(
        registry=FakeRegistry(),
        store=FakeStore(),
        storage_client=None,
        thresholds=GateThresholds(),
        defaults={"default_data_uri": "gs://sources/oecd.csv", "default_window": "2011-2020"},
    )


def test_handler_acknowledges_a_malformed_message_and_logs_why(deps, capsys):
    assert handler.handle_event(handler.EVENT_TYPE, event_data({"reason": "r", "k": 0}), "e1", deps) is None
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR" and line["event"] == "retrain_malformed"
    assert "k must be between 2 and 10" in line["error"] and line["message_id"] == "m1"
    assert deps.registry.models == {}


class EmptyStorage:
    """A storage client whose every object is missing."""

    def bucket(self, name):
        return self

    def blob(self, name):
        return self

    def download_as_bytes(self):
        from google.api_core.exceptions import NotFound

        raise NotFound("no such object")


def test_handler_acknowledges_untrainable_data(deps, capsys):
    data = event_data({"reason": "r", "data_uri": "gs://nope/x.csv"})
    deps.storage_client = EmptyStorage()
    assert handler.handle_event(handler.EVENT_TYPE, data, "e1", deps) is None
    assert '"event": "retrain_failed"' in capsys.readouterr().out


def test_handler_refuses_other_event_types(deps):
    with pytest.raises(ValueError, match="messagePublished"):
        handler.handle_event("google.cloud.storage.object.v1.finalized", {}, "e1", deps)


def test_default_data_uri_from_settings(monkeypatch):
    monkeypatch.delenv("PHARMASEG_RETRAIN_DATA_URI", raising=False)
    monkeypatch.delenv("PHARMASEG_SOURCES_BUCKET", raising=False)
    assert handler.default_data_uri() is None
    monkeypatch.setenv("PHARMASEG_SOURCES_BUCKET", "src")
    assert handler.default_data_uri() == "gs://src/oecd_pharma_spending.csv"
    monkeypatch.setenv("PHARMASEG_RETRAIN_DATA_URI", "gs://x/y.csv")
    assert handler.default_data_uri() == "gs://x/y.csv"


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
    first = handler.handle_event(handler.EVENT_TYPE, data, "e1", deps)
    second = handler.handle_event(handler.EVENT_TYPE, again, "e2", deps)
    assert second.version == first.version and second.duplicate
    assert [r["message_id"] for r in deps.store.rows] == ["drift-report:msg-42"]
