"""Versioned model artifacts in a GCS bucket, with aliases that move safely under concurrency.

Layout (bucket = the models bucket):

    models/<version>/model.json       the artifact (immutable: written with if_generation_match=0)
    models/<version>/metadata.json    sha256, size, registration time, headline metrics
    aliases/<alias>.json              {"version", "sha256", "updated_at", "reason", "history": [...]}
    keys/<key>.json                   idempotency claims: a retried request maps to one version

Every alias write is conditional on the generation that was read, so two racing promotions
cannot both win silently: the loser gets ConcurrentUpdateError and can re-read and decide.
Loading verifies the artifact's sha256 against the metadata written at registration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pharmaseg.errors import ConcurrentUpdateError, RegistryError, VersionNotFoundError
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.cache import SEMVER, alias_object, load_verified, parse_version

HISTORY_LIMIT = 50


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class AliasState:
    alias: str
    version: str
    sha256: str
    generation: int
    document: dict[str, Any]


def training_identity(data_sha256: str | None, window: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """What determines a fit: the data's sha256, the window and the training parameters."""
    return {"data_sha256": data_sha256, "window": str(window), "params": params}


def artifact_identity(artifact: ModelArtifact) -> dict[str, Any]:
    lineage = artifact.lineage
    return training_identity(lineage.get("data_sha256"), artifact.window, lineage.get("params"))


class ModelRegistry:
    """Register, list, show, promote and roll back model versions in one bucket."""

    def __init__(self, bucket: str, client=None, *, claim_lease_seconds: float = 900.0):
        self.claim_lease_seconds = claim_lease_seconds
        if client is None:
            from pharmaseg.gcp.clients import storage_client

            client = storage_client()
        self.bucket_name = bucket
        self._client = client
        self._bucket = client.bucket(bucket)

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _precondition_failed():
        from google.api_core.exceptions import PreconditionFailed

        return PreconditionFailed

    @staticmethod
    def _not_found():
        from google.api_core.exceptions import NotFound

        return NotFound

    def read(self, name: str) -> tuple[bytes, int] | None:
        """An object's bytes and generation, or None: the primitive ModelCache reads through."""
        blob = self._bucket.blob(name)
        try:
            data = blob.download_as_bytes()
        except self._not_found():
            return None
        return data, int(blob.generation)

    def generation(self, name: str) -> int | None:
        blob = self._bucket.get_blob(name)
        return None if blob is None else int(blob.generation)

    def _read_json(self, name: str) -> tuple[dict[str, Any], int] | None:
        found = self.read(name)
        return None if found is None else (json.loads(found[0]), found[1])

    def _write_json(self, name: str, doc: dict[str, Any], *, if_generation_match: int | None) -> None:
        self._bucket.blob(name).upload_from_string(
            json.dumps(doc, indent=1, sort_keys=True),
            content_type="application/json",
            if_generation_match=if_generation_match,
        )

    # -- versions --------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Registered versions (those with metadata), oldest first by semantic version."""
        return self._version_dirs(registered_only=True)

    def _version_dirs(self, *, registered_only: bool) -> list[str]:
        names = set()
        for blob in self._client.list_blobs(self.bucket_name, prefix="models/"):
            parts = blob.name.split("/")
            if len(parts) == 3 and SEMVER.fullmatch(parts[1]) and (parts[2] == "metadata.json" or not registered_only):
                names.add(parts[1])
        return sorted(names, key=parse_version)

    def metadata(self, version: str) -> dict[str, Any]:
        parse_version(version)
        found = self._read_json(f"models/{version}/metadata.json")
        if found is None:
            raise VersionNotFoundError(f"model version {version} is not registered in gs://{self.bucket_name}")
        return found[0]

    def _next_version(self, artifact: ModelArtifact) -> str:
        """After the highest number ever used (even by a registration that died half-way)."""
        taken = self._version_dirs(registered_only=False)
        if not taken:
            return "1.0.0"
        major, minor, _ = parse_version(taken[-1])
        registered = self.versions()
        if registered:
            previous = self.load(registered[-1])
            if previous.feature_names != artifact.feature_names or previous.k != artifact.k:
                return f"{major + 1}.0.0"
        return f"{major}.{minor + 1}.0"

    def register(
        self, artifact: ModelArtifact, *, version: str | None = None, idempotency_key: str | None = None
    ) -> str:
        """Store ``artifact`` as a new immutable version and return the version.

        Without ``version`` the next one is chosen (major bump when the feature set or k
        changes, minor otherwise), and a concurrent registration of the same number makes us
        take the next. With ``idempotency_key`` (e.g. a Pub/Sub message id) a repeated call
        returns the version the first call registered instead of creating another.
        """
        key_name = f"keys/{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json" if idempotency_key else None
        if key_name:
            claimed = self._claim(key_name, idempotency_key)
            if claimed is not None:
                return claimed
        for _ in range(20):
            chosen = version or self._next_version(artifact)
            parse_version(chosen)
            artifact.version = chosen
            body = artifact.to_json()
            try:
                self._bucket.blob(f"models/{chosen}/model.json").upload_from_string(
                    body, content_type="application/json", if_generation_match=0
                )
            except self._precondition_failed():
                if version:
                    raise RegistryError(f"model version {version} already exists; versions are immutable") from None
                continue
            self._write_json(
                f"models/{chosen}/metadata.json",
                {
                    "version": chosen,
                    "sha256": hashlib.sha256(body).hexdigest(),
                    "bytes": len(body),
                    "registered_at": _now(),
                    "window": artifact.window,
                    "k": artifact.k,
                    "metrics": {m: artifact.metrics.get(m) for m in ("silhouette", "davies_bouldin", "inertia")},
                    "trigger": artifact.lineage.get("trigger"),
                    "idempotency_key": idempotency_key,
                    **artifact_identity(artifact),
                },
                if_generation_match=0,
            )
            if key_name:
                self._write_json(key_name, {"key": idempotency_key, "version": chosen}, if_generation_match=None)
            return chosen
        raise RegistryError("could not allocate a version number after 20 attempts")

    def _claim(self, key_name: str, key: str) -> str | None:
        """Take the idempotency key, or return the version a previous holder registered.

        A claim without a version older than the lease belongs to a worker that died between
        claiming and registering; it is taken over (conditionally, so only one retry wins)
        rather than blocking every redelivery until the message is dead-lettered.
        """
        claim = {"key": key, "version": None, "claimed_at": _now()}
        try:
            self._write_json(key_name, claim, if_generation_match=0)
            return None
        except self._precondition_failed():
            pass
        found = self._read_json(key_name)
        if found is None:
            raise ConcurrentUpdateError(f"request {key!r}: its claim vanished; retry") from None
        doc, generation = found
        if doc.get("version"):
            return doc["version"]
        # The holder may have died after registering but before recording the version here: then
        # the version is complete (its metadata is written last and names the key), whatever the lease.
        registered = self._registered_under(key)
        if registered is None:
            age = (datetime.now(UTC) - datetime.fromisoformat(doc["claimed_at"])).total_seconds()
            if age < self.claim_lease_seconds:
                raise ConcurrentUpdateError(f"request {key!r} is being registered by another worker")
        taken = {"key": key, "version": registered} if registered else claim
        try:
            self._write_json(key_name, taken, if_generation_match=generation)
        except self._precondition_failed():
            raise ConcurrentUpdateError(f"request {key!r} was taken over by another worker") from None
        return registered

    def _registered_under(self, key: str) -> str | None:
        return next((v for v in reversed(self.versions()) if self.metadata(v).get("idempotency_key") == key), None)

    def version_for_key(self, idempotency_key: str) -> str | None:
        """The version registered under the key, also when its holder died before the key named it."""
        found = self._read_json(f"keys/{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json")
        if found is None:
            return None
        return found[0].get("version") or self._registered_under(idempotency_key)

    def load(self, version: str) -> ModelArtifact:
        """Download a version and verify it is byte-for-byte what was registered."""
        return load_verified(self, version)

    def equivalent(self, identity: dict[str, Any]) -> str | None:
        """The newest registered version trained on the same data, window and parameters, if any.

        Retraining on exactly what produced an existing version can only register a copy of it,
        so a retrain request asks this first. ``identity`` is ``training_identity(...)``'s shape;
        versions registered before their metadata carried it are read from their lineage.
        """
        for version in reversed(self.versions()):
            meta = self.metadata(version)
            known = {k: meta[k] for k in identity if k in meta}
            if len(known) < len(identity):
                known = artifact_identity(self.load(version))
            if known == identity:
                return version
        return None

    # -- aliases ---------------------------------------------------------------------------------

    def alias(self, alias: str) -> AliasState | None:
        found = self._read_json(alias_object(alias))
        if found is None:
            return None
        doc, generation = found
        return AliasState(alias, doc["version"], doc["sha256"], generation, doc)

    def aliases(self) -> dict[str, str]:
        out = {}
        for blob in self._client.list_blobs(self.bucket_name, prefix="aliases/"):
            name = blob.name.removeprefix("aliases/").removesuffix(".json")
            state = self.alias(name)
            if state:
                out[name] = state.version
        return out

    def promote(
        self, version: str, alias: str = "production", *, reason: str = "", expected_version: str | None = ...
    ) -> AliasState:
        """Point ``alias`` at ``version``, conditional on the alias not moving meanwhile.

        ``expected_version`` (when given, None meaning "no alias yet") makes the move conditional
        on what the caller based its decision on, e.g. the production version a gate compared
        against; otherwise the version read just before the write is the condition.
        """
        meta = self.metadata(version)
        current = self.alias(alias)
        if expected_version is not ...:
            actual = current.version if current else None
            if actual != expected_version:
                raise ConcurrentUpdateError(
                    f"alias {alias} points at {actual}, not the expected {expected_version}; re-evaluate"
                )
        history = list(current.document.get("history", [])) if current else []
        if current:
            history.append({"version": current.version, "sha256": current.sha256, "until": _now()})
        return self._set_alias(alias, version, meta["sha256"], reason, history[-HISTORY_LIMIT:], current)

    def _set_alias(self, alias, version, sha256, reason, history, current: AliasState | None) -> AliasState:
        doc = {
            "alias": alias,
            "version": version,
            "sha256": sha256,
            "updated_at": _now(),
            "reason": reason,
            "history": history,
        }
        try:
            self._write_json(alias_object(alias), doc, if_generation_match=current.generation if current else 0)
        except self._precondition_failed():
            raise ConcurrentUpdateError(
                f"alias {alias} was moved by someone else while promoting {version}; nothing changed"
            ) from None
        state = self.alias(alias)
        assert state is not None
        return state

    def rollback(self, alias: str = "production", *, reason: str = "rollback") -> AliasState:
        """Point ``alias`` back at the version it named before the last move."""
        current = self.alias(alias)
        if current is None or not current.document.get("history"):
            raise RegistryError(f"alias {alias} has no previous version to roll back to")
        history = list(current.document["history"])
        previous = history.pop()
        self.metadata(previous["version"])
        return self._set_alias(alias, previous["version"], previous["sha256"], reason, history, current)

    def resolve(self, alias: str) -> str:
        state = self.alias(alias)
        if state is None:
            raise VersionNotFoundError(f"alias {alias} is not set in gs://{self.bucket_name}")
        return state.version
