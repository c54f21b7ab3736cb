"""An object finalized in a bucket, as Eventarc announces it, reduced to one ObjectRef.

Read by score_batch (a CSV dropped into the inbox) and by retrain (a new OECD file in the sources
bucket). Eventarc's Cloud Storage trigger delivers type ``google.cloud.storage.object.v1.finalized``
with the object resource as data (``bucket``, ``name``, ``generation``, ``size``, ``contentType``,
...), and only for the bucket the trigger filters on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from pharmaseg.messages import decode

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"


class EventError(ValueError):
    """The event is not an object-finalize event this function can act on."""


class ObjectRef(msgspec.Struct, frozen=True, rename={"content_type": "contentType"}):
    """One generation of one object: what a batch run is about.

    Declares the fields of the object resource (Eventarc's ``StorageObjectData``) that the
    functions read; the resource's other fields are ignored. GCS writes ``generation`` and
    ``size`` as strings, so decoding converts them (``strict=False``).
    """

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


SCHEMA: dict[str, Any] = msgspec.json.schema(ObjectRef)


def parse_event(event_type: str, data: Any) -> ObjectRef:
    """The finalized object the event names; EventError for another event or every bad field of the resource."""
    if event_type != STORAGE_FINALIZED:
        raise EventError(f"unexpected event type {event_type!r}; expected {STORAGE_FINALIZED}")
    if not isinstance(data, dict):
        raise EventError("storage event data must be the object resource")
    return decode(ObjectRef, {k: v for k, v in data.items() if v != ""}, EventError, strict=False)


def skip_reason(ref: ObjectRef, prefix: str) -> str | None:
    """Why a function leaves this object alone (logged, nothing done), or None to act on it."""
    if not ref.name.startswith(prefix):
        return f"object {ref.name!r} is outside the prefix {prefix!r}"
    if ref.name.endswith("/"):
        return f"object {ref.name!r} is a folder placeholder"
    if not ref.name.lower().endswith(".csv"):
        return f"object {ref.name!r} is not a CSV file (name must end in .csv)"
    return None
