"""Reading models from their bucket, as every function does: verified loading and a process cache.

The write side (registering, promoting, rolling back) is ``model.registry``; this module is all a
function that only serves models needs (predict ships it without the registry), over any
``ObjectSource``: the registry itself or the lean ``gcp.gcs_reader.GcsReader``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol

from pharmaseg.errors import ArtifactError, RegistryError, VersionNotFoundError
from pharmaseg.logs import log
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.snapshot import OBJECT as SNAPSHOT_OBJECT
from pharmaseg.model.snapshot import FeatureSnapshot
from pharmaseg.model.snapshot import decode as decode_snapshot

REVIEW = "review"  # the alias of the newest version the gate held for a person's review (shadow scored)
SEMVER = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")  # used with fullmatch: no trailing newline
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def parse_version(version: str) -> tuple[int, int, int]:
    match = SEMVER.fullmatch(version or "")
    if not match:
        raise RegistryError(f"{version!r} is not a semantic version MAJOR.MINOR.PATCH")
    return tuple(int(p) for p in match.groups())  # type: ignore[return-value]


def alias_object(alias: str) -> str:
    if not ALIAS_NAME.match(alias):
        raise RegistryError(f"{alias!r} is not a valid alias name")
    return f"aliases/{alias}.json"


class ObjectSource(Protocol):
    """What reading models needs from a bucket: ModelRegistry (full client) or GcsReader (lean)."""

    bucket_name: str

    def read(self, name: str) -> tuple[bytes, int] | None: ...

    def generation(self, name: str) -> int | None: ...


def load_verified(source: ObjectSource, version: str, sha256: str | None = None) -> ModelArtifact:
    """A version's artifact, checked against the sha256 recorded at registration.

    ``sha256`` may come from an alias document (which records the digest of the version it
    names), saving the read of the version's metadata on the serving path.
    """
    parse_version(version)
    if sha256 is None:
        meta = source.read(f"models/{version}/metadata.json")
        if meta is None:
            raise VersionNotFoundError(f"model version {version} is not registered in gs://{source.bucket_name}")
        sha256 = json.loads(meta[0])["sha256"]
    found = source.read(f"models/{version}/model.json")
    if found is None:
        raise VersionNotFoundError(f"model version {version} is not registered in gs://{source.bucket_name}")
    digest = hashlib.sha256(found[0]).hexdigest()
    if digest != sha256:
        raise ArtifactError(f"model version {version} fails its checksum: {digest} != {sha256}")
    artifact = ModelArtifact.from_json(found[0])
    artifact.version = version
    return artifact


class ModelCache:
    """A process-wide cache of loaded models that notices when an alias moves.

    Versions are immutable, so a loaded version is kept (a few of them). An alias is re-checked
    at most once every ``ttl_seconds`` with one metadata read of its object's generation; a
    request never waits on GCS unless the alias moved or the TTL expired. ``source`` is any
    ObjectSource: the prediction function passes a lean GcsReader.
    """

    def __init__(
        self,
        source: ObjectSource,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_versions: int = 4,
    ):
        self.source = source
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._max_versions = max_versions
        self._lock = threading.Lock()
        self._versions: dict[str, ModelArtifact] = {}
        self._failures: dict[str, tuple[Exception, float]] = {}  # version -> (why it failed, when)
        # alias -> (generation, version, sha256, checked_at); generation None remembers an unset alias
        self._aliases: dict[str, tuple[int | None, str | None, str | None, float]] = {}
        self._snapshot: tuple[int | None, FeatureSnapshot | None, float] | None = (
            None  # generation, snapshot, checked_at
        )

    def version(self, version: str, sha256: str | None = None) -> ModelArtifact:
        """A loaded version; one that failed to load is not retried before the TTL (no GCS per request)."""
        loaded = self._versions.get(version)  # a dict read is atomic: no lock on the hit path
        if loaded is not None:
            return loaded
        now = self._clock()
        with self._lock:
            if version in self._versions:
                return self._versions[version]
            failed = self._failures.get(version)
        if failed and now - failed[1] < self.ttl_seconds:
            raise failed[0]
        try:
            artifact = load_verified(self.source, version, sha256)
        except (ArtifactError, VersionNotFoundError) as exc:
            with self._lock:
                self._failures[version] = (exc, now)
            raise
        with self._lock:
            self._failures.pop(version, None)
            self._versions[version] = artifact
            while len(self._versions) > self._max_versions:
                self._versions.pop(next(iter(self._versions)))
        return artifact

    def _check(self, alias: str, cached) -> tuple[int | None, str | None, str | None]:
        """(generation, version, sha256) of the alias now: one metadata read if it did not move."""
        name = alias_object(alias)
        generation = self.source.generation(name) if cached else None
        if cached and generation is not None and generation == cached[0]:
            return generation, cached[1], cached[2]
        found = self.source.read(name)  # first use (one read gives content and generation) or it moved
        if found is None:
            return None, None, None
        doc = json.loads(found[0])
        return found[1], doc["version"], doc["sha256"]

    def alias(self, alias: str = "production") -> ModelArtifact:
        """The model an alias names; an unset alias is remembered for the TTL too.

        The hit path (every request within the TTL) reads the cache without the lock: entries
        are replaced whole, never mutated, and a dict read is atomic.
        """
        now = self._clock()
        cached = self._aliases.get(alias)
        if cached and now - cached[3] < self.ttl_seconds:
            generation, version, sha256 = cached[:3]
        else:
            try:
                generation, version, sha256 = self._check(alias, cached)
            except Exception as exc:
                if not cached or cached[1] is None:
                    raise
                # GCS trouble must not take down a process that already serves a model: keep
                # the cached version and try again after the next TTL.
                log(
                    "WARNING",
                    f"alias {alias} re-check failed, serving cached {cached[1]}: {exc!r}",
                    event="alias_check_failed",
                    alias=alias,
                    version=cached[1],
                )
                generation, version, sha256 = cached[:3]
            with self._lock:
                self._aliases[alias] = (generation, version, sha256, now)
        if version is None:
            raise VersionNotFoundError(f"alias {alias} is not set in gs://{self.source.bucket_name}")
        return self.version(version, sha256)

    def snapshot(self) -> FeatureSnapshot | None:
        """The feature store's snapshot (``model.snapshot``), or None before the first source file was stored.

        Checked like an alias: at most once per TTL, one metadata read, and read again only when its
        generation moved. A snapshot that fails to read keeps the one already served.
        """
        now = self._clock()
        cached = self._snapshot
        if cached and now - cached[2] < self.ttl_seconds:
            return cached[1]
        try:
            generation = self.source.generation(SNAPSHOT_OBJECT) if cached and cached[1] is not None else None
            if cached and generation is not None and generation == cached[0]:
                fresh = (generation, cached[1], now)
            else:
                found = self.source.read(SNAPSHOT_OBJECT)
                fresh = (None, None, now) if found is None else (found[1], decode_snapshot(found[0]), now)
        except Exception as exc:
            if not cached or cached[1] is None:
                raise
            log(
                "WARNING",
                f"feature snapshot re-check failed, serving the cached one: {exc!r}",
                event="snapshot_check_failed",
            )
            fresh = (cached[0], cached[1], now)
        self._snapshot = fresh
        return fresh[1]
