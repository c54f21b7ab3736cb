"""The notification: one JSON object in a Pub/Sub message's data, declared once as a msgspec Struct.

Whoever reads the notifications topic (a person through ``pharmaseg notifications``, a chat
bridge, a ticket system) gets the same shape for the four events: ``kind`` says which, ``title``
is one line a person reads, ``summary`` a few sentences, ``details`` the facts a program acts on
(their shape depends on the kind, and carries the kind again so that JSON Schema and msgspec can
tell the shapes apart), ``links`` the reports, ``command`` what a person may run next.

Delivery is at-least-once: the same event may arrive twice (a redelivered retrain, a publish
retried after a lost answer). ``key`` names the event, not the message, so a consumer drops
every message whose key it has already seen.

``SCHEMA`` is the JSON Schema (draft 2020-12) generated from the Struct, for consumers in other
languages. Unknown fields are allowed, so that adding a field never breaks a consumer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

Kind = Literal["version_held", "production_changed", "drift_found", "batch_failed"]
KINDS: tuple[str, ...] = Kind.__args__

# No forbid_unknown_fields: a consumer older than the publisher must still read the fields it knows.
_OPTIONS = {"frozen": True, "kw_only": True}


class Link(Struct, **_OPTIONS):
    """A report: where it is stored, and the path the prediction function serves it at."""

    label: str
    uri: Annotated[str, Meta(pattern="^gs://", description="the object in the reports bucket")]
    path: Annotated[
        str | None,
        Meta(description="/reports/... on the prediction function's URL (what a browser opens); null if not served"),
    ] = None


class Mover(Struct, **_OPTIONS):
    """A country whose segment changes, and its share of the common countries' market value."""

    country: str
    from_segment: str
    to_segment: str
    market_share: Annotated[float, Meta(ge=0, le=1)]


class VersionHeld(Struct, tag_field="kind", tag="version_held", **_OPTIONS):
    """The gate (or policy never) kept a trained version out of production; a person decides."""

    version: str
    production_version: str | None
    window: str | None
    reason: Annotated[str | None, Meta(description="why the retrain was asked for")]
    decision_detail: Annotated[str, Meta(description="why it was held, as model_versions records it")]
    failed_checks: list[str]
    movers: list[Mover]
    message_id: Annotated[str, Meta(description="the retrain request's id (model_versions.message_id)")]


class ProductionChanged(Struct, tag_field="kind", tag="production_changed", **_OPTIONS):
    """The production alias moved: the gate promoted, a policy forced, or a person promoted or rolled back."""

    from_version: str | None
    to_version: str
    decision: Literal["promoted", "forced", "manual_promotion", "rollback"]
    by: Annotated[str | None, Meta(description="who decided, for a person's promotion or rollback")]
    reason: str | None
    movers: list[Mover]
    market_share_moved: Annotated[float, Meta(ge=0, le=1, description="sum of the movers' market shares")]
    message_id: Annotated[str, Meta(description="the decision's model_versions.message_id")]


class DriftFound(Struct, tag_field="kind", tag="drift_found", **_OPTIONS):
    """A drift check's verdict was drift."""

    report_id: str
    model_version: str
    drifted_features: list[str]
    prediction_drift: Annotated[bool, Meta(description="the segment shares moved")]
    joint_drift: Annotated[bool, Meta(description="the features' joint structure moved")]
    rows: int
    period_start: datetime
    period_end: datetime
    retrain_requested: bool


class BatchFailed(Struct, tag_field="kind", tag="batch_failed", **_OPTIONS):
    """An attempt at scoring a batch file failed; the platform delivers the file again."""

    object: Annotated[str, Meta(description="gs://bucket/name of the uploaded file")]
    generation: int
    run_id: str
    reason: str
    attempt_started_at: datetime


Details = VersionHeld | ProductionChanged | DriftFound | BatchFailed


class Notification(Struct, **_OPTIONS):
    """One event a person should hear about, as published on the notifications topic."""

    kind: Kind
    key: Annotated[str, Meta(min_length=1, description="names the event: equal keys are the same event")]
    title: Annotated[str, Meta(min_length=1, description="one line a person reads")]
    summary: str
    occurred_at: Annotated[datetime, Meta(tz=True)]
    details: Details
    links: list[Link] = []
    command: Annotated[str | None, Meta(description="what a person may run next, e.g. the promote command")] = None

    def __post_init__(self) -> None:
        if self.details.__struct_config__.tag != self.kind:
            raise ValueError(f"details of kind {self.details.__struct_config__.tag} in a {self.kind} notification")


def _schema() -> dict[str, Any]:
    generated = msgspec.json.schema(Notification)
    root = generated["$ref"].rsplit("/", 1)[-1]
    defs = dict(generated["$defs"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pharmaseg/notification.json",
        **defs.pop(root),
        "title": "Notification",
        "$defs": defs,
    }


SCHEMA: dict[str, Any] = _schema()


def encode(notification: Notification) -> bytes:
    return msgspec.json.encode(notification)


def decode(data: bytes) -> Notification:
    """A message's data as a Notification; msgspec.ValidationError or DecodeError if it is none."""
    return msgspec.json.decode(data, type=Notification)
