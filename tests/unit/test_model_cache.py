"""ModelCache against an in-memory object source: TTL, moves, and GCS trouble after a model is loaded."""

import copy
import hashlib
import json

import pytest

from pharmaseg.errors import VersionNotFoundError
from pharmaseg.model.cache import ModelCache


class MemorySource:
    bucket_name = "memory"

    def __init__(self):
        self.objects, self.failing = {}, False

    def put(self, name, body: bytes):
        generation = self.objects.get(name, (b"", 0))[1] + 1
        self.objects[name] = (body, generation)

    def read(self, name):
        if self.failing:
            raise OSError("GCS unavailable")
        return self.objects.get(name)

    def generation(self, name):
        found = self.read(name)
        return None if found is None else found[1]


def publish(source, artifact, version):
    artifact = copy.deepcopy(artifact)
    artifact.version = version
    body = artifact.to_json()
    source.put(f"models/{version}/model.json", body)
    sha = hashlib.sha256(body).hexdigest()
    source.put("aliases/production.json", json.dumps({"version": version, "sha256": sha}).encode())


def test_a_loaded_model_keeps_serving_while_gcs_fails(original_model):
    source, now = MemorySource(), [0.0]
    cache = ModelCache(source, ttl_seconds=10, clock=lambda: now[0])
    publish(source, original_model[1], "1.0.0")
    assert cache.alias().version == "1.0.0"
    source.failing = True
    now[0] = 11
    assert cache.alias().version == "1.0.0"  # re-check failed: cached model still served
    source.failing = False
    publish(source, original_model[1], "1.1.0")
    now[0] = 15
    assert cache.alias().version == "1.0.0"  # the failed check counted as a check: wait a TTL
    now[0] = 22
    assert cache.alias().version == "1.1.0"


def test_without_a_loaded_model_gcs_trouble_is_an_error(original_model):
    source = MemorySource()
    source.failing = True
    with pytest.raises(OSError):
        ModelCache(source).alias()
    source.failing = False
    with pytest.raises(VersionNotFoundError):
        ModelCache(source).alias()


def test_a_version_that_fails_its_checksum_is_not_reloaded_on_every_request(original_model):
    source, now = MemorySource(), [0.0]
    cache = ModelCache(source, ttl_seconds=10, clock=lambda: now[0])
    publish(source, original_model[1], "1.0.0")
    body, _ = source.objects["models/1.0.0/model.json"]
    source.put("models/1.0.0/model.json", body.replace(b'"window"', b'"window" '))
    reads = []
    source.read = lambda name, read=source.read: reads.append(name) or read(name)
    from pharmaseg.errors import ArtifactError

    for _ in range(5):
        with pytest.raises(ArtifactError):
            cache.version("1.0.0", json.loads(source.objects["aliases/production.json"][0])["sha256"])
    assert reads.count("models/1.0.0/model.json") == 1
    now[0] = 11
    with pytest.raises(ArtifactError):
        cache.version("1.0.0", "0" * 64)
    assert reads.count("models/1.0.0/model.json") == 2
