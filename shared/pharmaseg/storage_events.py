"""The two shapes of "an object was finalized in a bucket", reduced to one ObjectRef.

Read by score_batch (a CSV dropped into the inbox) and by retrain (a new OECD file in the
sources bucket).

- Production (Eventarc): type ``google.cloud.storage.object.v1.finalized``, data = the object
  resource (``bucket``, ``name``, ``generation``, ``size``, ``contentType``, ...).
- Local stack: fake-gcs-server publishes a GCS notification to Pub/Sub, pushed to the function,
  which sees ``google.cloud.pubsub.topic.v1.messagePublished`` with data =
  ``{"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId", "objectId",
  "objectGeneration"}, "data": <base64 object JSON>}}``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pharmaseg import pubsub

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = pubsub.PUBLISHED
EVENT_TYPES = (STORAGE_FINALIZED, PUBSUB_PUBLISHED)


class EventError(ValueError):
    """The event is not an object-finalize event this function can act on."""


@dataclass(frozen=True)
class ObjectRef:
    """One generation of one object: what a batch run is about."""

    bucket: str
    name: str
    generation: int
    size: int | None = None
    content_type: str | None = None

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    @property
    def run_id(self) -> str:
        """Deterministic: the same (bucket, object, generation) is always the same run."""
        key = f"{self.bucket}\n{self.name}\n{self.generation}".encode()
        return "r" + hashlib.sha256(key).hexdigest()[:31]


def _from_resource(doc: dict[str, Any]) -> ObjectRef:
    try:
        bucket, name, generation = doc["bucket"], doc["name"], int(doc["generation"])
        size = int(doc["size"]) if doc.get("size") not in (None, "") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(f"object resource lacks a valid bucket, name, generation or size: {exc!r}") from None
    if not isinstance(bucket, str) or not isinstance(name, str):
        raise EventError("object resource bucket and name must be strings")
    return ObjectRef(bucket, name, generation, size, doc.get("contentType"))


def parse_event(event_type: str, data: Any) -> ObjectRef | None:
    """The finalized object, or None for a notification of another kind (delete, metadata update)."""
    if event_type == STORAGE_FINALIZED:
        if not isinstance(data, dict):
            raise EventError("storage event data must be the object resource")
        return _from_resource(data)
    if event_type != PUBSUB_PUBLISHED:
        raise EventError(f"unexpected event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
    try:
        message = pubsub.unwrap(data, event_id="unused")  # the run id comes from the object, not the message
    except pubsub.MalformedMessageError as exc:
        raise EventError(str(exc)) from None
    attributes = message.attributes
    if attributes.get("eventType", "OBJECT_FINALIZE") != "OBJECT_FINALIZE":
        return None
    resource: dict[str, Any] = {}
    if message.data:
        try:
            resource = json.loads(message.data)
        except ValueError:
            raise EventError("Pub/Sub message data is not a JSON object resource") from None
        if not isinstance(resource, dict):
            raise EventError("Pub/Sub message data is not a JSON object")
    merged = {
        "bucket": attributes.get("bucketId", resource.get("bucket")),
        "name": attributes.get("objectId", resource.get("name")),
        "generation": attributes.get("objectGeneration", resource.get("generation")),
        "size": resource.get("size"),
        "contentType": resource.get("contentType"),
    }
    return _from_resource(merged)


def skip_reason(ref: ObjectRef, prefix: str, bucket: str | None = None) -> str | None:
    """Why a function leaves this object alone (logged, nothing done), or None to act on it.

    ``bucket`` guards against events from other buckets: on the local stack one notification
    topic carries every bucket's finalizes (fake-gcs-server publishes to a single topic, and the
    Pub/Sub emulator ignores subscription filters), where Eventarc filters by bucket.
    """
    if bucket is not None and ref.bucket != bucket:
        return f"object gs://{ref.bucket}/{ref.name} is outside the bucket {bucket!r}"
    if not ref.name.startswith(prefix):
        return f"object {ref.name!r} is outside the prefix {prefix!r}"
    if ref.name.endswith("/"):
        return f"object {ref.name!r} is a folder placeholder"
    if not ref.name.lower().endswith(".csv"):
        return f"object {ref.name!r} is not a CSV file (name must end in .csv)"
    return None
