"""The model registry against fake-gcs-server: versions, aliases, checksums, races, caching."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from pharmaseg.errors import ArtifactError, ConcurrentUpdateError, RegistryError, VersionNotFoundError
from pharmaseg.gcp.gcs_reader import GcsReader
from pharmaseg.model.cache import ModelCache
from pharmaseg.model.registry import ModelRegistry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(request):
    """One trained artifact (original procedure) shared by the module; tests copy it."""
    from tests.models import trained

    return trained(n_bootstrap=2)[1]


@pytest.fixture
def registry(gcs):
    client = gcs.client()
    bucket = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}")
    return ModelRegistry(bucket.name, client=client)


def test_register_assigns_semantic_versions_and_records_checksums(registry, model):
    first = registry.register(copy.deepcopy(model))
    second = registry.register(copy.deepcopy(model))
    assert (first, second) == ("1.0.0", "1.1.0")
    other_k = copy.deepcopy(model)
    other_k.centroids = np.vstack([other_k.centroids, other_k.centroids[:1]])
    other_k.segments = [*other_k.segments, other_k.segments[0]]
    assert registry.register(other_k) == "2.0.0"
    assert registry.versions() == ["1.0.0", "1.1.0", "2.0.0"]
    meta = registry.metadata("1.0.0")
    loaded = registry.load("1.0.0")
    assert meta["sha256"] == loaded.sha256() and loaded.version == "1.0.0"
    assert loaded.assignments == model.assignments
    with pytest.raises(RegistryError, match="already exists"):
        registry.register(copy.deepcopy(model), version="1.0.0")
    with pytest.raises(VersionNotFoundError):
        registry.load("9.9.9")


def test_load_refuses_a_tampered_artifact(registry, model):
    version = registry.register(copy.deepcopy(model))
    blob = registry._bucket.blob(f"models/{version}/model.json")
    doc = json.loads(blob.download_as_bytes())
    doc["centroids"][0][0] += 1.0
    blob.upload_from_string(json.dumps(doc))
    with pytest.raises(ArtifactError, match="fails its checksum"):
        registry.load(version)


def test_promote_history_and_rollback(registry, model):
    v1 = registry.register(copy.deepcopy(model))
    v2 = registry.register(copy.deepcopy(model))
    assert registry.alias("production") is None
    registry.promote(v1, reason="first")
    state = registry.promote(v2, reason="second")
    assert state.version == v2 and [h["version"] for h in state.document["history"]] == [v1]
    assert registry.rollback().version == v1
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback()
    with pytest.raises(VersionNotFoundError):
        registry.promote("7.0.0")
    with pytest.raises(ConcurrentUpdateError, match="not the expected"):
        registry.promote(v2, expected_version=v2)
    assert registry.aliases() == {"production": v1}


def test_racing_promotions_cannot_both_win(registry, model):
    v1, v2, v3 = (registry.register(copy.deepcopy(model)) for _ in range(3))
    registry.promote(v1)
    barrier = threading.Barrier(2)
    read_alias = registry.alias
    seen = threading.local()

    def alias_then_wait(name):
        state = read_alias(name)
        if not getattr(seen, "waited", False):
            seen.waited = True
            barrier.wait(timeout=10)  # both promoters have read the same generation before either writes
        return state

    registry.alias = alias_then_wait
    outcomes: dict[str, str] = {}

    def promote(version):
        try:
            registry.promote(version)
            outcomes[version] = "won"
        except ConcurrentUpdateError:
            outcomes[version] = "lost"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (v2, v3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    registry.alias = read_alias
    assert sorted(outcomes.values()) == ["lost", "won"]
    winner = next(v for v, o in outcomes.items() if o == "won")
    state = registry.alias("production")
    assert state.version == winner
    assert [h["version"] for h in state.document["history"]] == [v1]


def test_idempotency_key_maps_retries_to_one_version(registry, model):
    a = registry.register(copy.deepcopy(model), idempotency_key="message-1")
    b = registry.register(copy.deepcopy(model), idempotency_key="message-1")
    c = registry.register(copy.deepcopy(model), idempotency_key="message-2")
    assert a == b != c
    assert registry.versions() == [a, c]
    assert registry.version_for_key("message-1") == a


class CountingReader(GcsReader):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls = 0

    def read(self, name):
        self.calls += 1
        return super().read(name)

    def generation(self, name):
        self.calls += 1
        return super().generation(name)


def test_cache_notices_alias_moves_after_ttl_without_reading_gcs_every_time(registry, model):
    v1 = registry.register(copy.deepcopy(model))
    v2 = registry.register(copy.deepcopy(model))
    reader = CountingReader(registry.bucket_name)
    now = [0.0]
    cache = ModelCache(reader, ttl_seconds=30, clock=lambda: now[0])
    with pytest.raises(VersionNotFoundError, match="not set"):
        cache.alias("production")
    now[0] = 31
    registry.promote(v1)
    assert cache.alias("production").version == v1
    reads = reader.calls
    for _ in range(100):
        assert cache.alias("production").version == v1
    assert reader.calls == reads  # within the TTL: no GCS round trip
    registry.promote(v2)
    assert cache.alias("production").version == v1  # still within the TTL
    now[0] = 62
    assert cache.alias("production").version == v2
    now[0] = 93
    calls = reader.calls
    assert cache.alias("production").version == v2
    assert reader.calls == calls + 1  # alias unchanged: one generation read, nothing downloaded


def test_lean_reader_and_full_client_load_the_same_verified_artifact(registry, model):
    version = registry.register(copy.deepcopy(model))
    registry.promote(version)
    lean = ModelCache(GcsReader(registry.bucket_name)).alias("production")
    full = ModelCache(registry).alias("production")
    assert lean.to_json() == full.to_json() == registry.load(version).to_json()
    blob = registry._bucket.blob(f"models/{version}/model.json")
    blob.upload_from_string(blob.download_as_bytes().replace(b'"window"', b'"window" '))
    with pytest.raises(ArtifactError, match="fails its checksum"):
        ModelCache(GcsReader(registry.bucket_name)).alias("production")
    assert GcsReader(registry.bucket_name).read("no/such/object") is None


def test_cli_registry_commands(gcs, model, tmp_path):
    client = gcs.client()
    bucket = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}").name
    artifact = tmp_path / "model.json"
    artifact.write_bytes(model.to_json())
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs.url, "PHARMASEG_MODELS_BUCKET": bucket}
    cli = str(Path(sys.executable).parent / "pharmaseg")

    def run(*args):
        return subprocess.run([cli, "registry", *args], env=env, capture_output=True, text=True, timeout=60)

    # Promotions by hand, recorded in BigQuery, are tested in test_registry_cli.py.
    first = run("register", str(artifact))
    assert first.stdout.strip() == "1.0.0" and "no model report written" in first.stderr
    assert run("register", str(artifact)).stdout.strip() == "1.1.0"
    ModelRegistry(bucket, client=client).promote("1.1.0", reason="test")
    listed = json.loads(run("list", "--json").stdout)
    assert [(r["version"], r["aliases"]) for r in listed] == [("1.0.0", []), ("1.1.0", ["production"])]
    shown = json.loads(run("show", "production").stdout)
    assert shown["version"] == "1.1.0" and shown["assignments"]["DEU"] == "High-Value Pharma Markets"
    assert shown["report"] is None  # no reports bucket given
    missing = run("diff", "1.0.0", "3.0.0")
    assert missing.returncode == 2 and "3.0.0 is not registered" in missing.stderr


def test_a_registration_that_died_half_way_does_not_block_numbering(registry, model):
    registry._bucket.blob("models/1.0.0/model.json").upload_from_string(b"{}")  # no metadata: a crash
    assert registry.register(copy.deepcopy(model)) == "1.1.0"
    assert registry.versions() == ["1.1.0"]


def test_a_stale_claim_is_taken_over_after_the_lease(gcs, model):
    client = gcs.client()
    name = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}").name
    patient = ModelRegistry(name, client=client, claim_lease_seconds=3600)
    key = "keys/" + hashlib.sha256(b"message-9").hexdigest() + ".json"
    patient._bucket.blob(key).upload_from_string(
        json.dumps({"key": "message-9", "version": None, "claimed_at": "2026-01-01T00:00:00+00:00"})
    )
    impatient = ModelRegistry(name, client=client, claim_lease_seconds=0)
    with pytest.raises(ConcurrentUpdateError, match="being registered"):
        ModelRegistry(name, client=client, claim_lease_seconds=10**9).register(
            copy.deepcopy(model), idempotency_key="message-9"
        )
    version = impatient.register(copy.deepcopy(model), idempotency_key="message-9")
    assert patient.register(copy.deepcopy(model), idempotency_key="message-9") == version
    assert patient.versions() == [version]


def test_a_holder_that_died_after_registering_is_not_registered_twice(gcs, model):
    client = gcs.client()
    name = client.create_bucket(f"models-{uuid.uuid4().hex[:12]}").name
    registry = ModelRegistry(name, client=client, claim_lease_seconds=0)
    version = registry.register(copy.deepcopy(model), idempotency_key="message-7")
    key = "keys/" + hashlib.sha256(b"message-7").hexdigest() + ".json"
    stale = {"key": "message-7", "version": None, "claimed_at": "2026-01-01T00:00:00+00:00"}
    registry._bucket.blob(key).upload_from_string(json.dumps(stale))  # as if the key write was lost
    assert registry.register(copy.deepcopy(model), idempotency_key="message-7") == version
    assert registry.versions() == [version]
    assert registry.version_for_key("message-7") == version
