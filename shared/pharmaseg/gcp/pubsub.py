"""The Pub/Sub message inside a ``messagePublished`` CloudEvent, decoded once for every function.

Eventarc delivers ``{"message": {"data": <base64>, "attributes", "messageId", "message_id",
"publishTime", "publish_time"}, "subscription"}`` (the local stack's relay sends the same). A
message that cannot be decoded will never decode, so callers log and acknowledge
``MalformedMessageError`` instead of letting Pub/Sub redeliver it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pharmaseg.errors import PharmasegError
from pharmaseg.messages import problems

PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class MalformedMessageError(PharmasegError):
    """The event carries no decodable Pub/Sub message."""


class PubSubMessage(msgspec.Struct, frozen=True, rename="camel"):
    """``data.message`` of the event: ``data`` is base64 in JSON and bytes here."""

    message_id: str
    data: bytes = b""
    attributes: dict[str, str] = {}
    publish_time: str | None = None


class PushEnvelope(msgspec.Struct, frozen=True):
    """The event's data: the message and the subscription that delivered it."""

    message: PubSubMessage
    subscription: str = ""


SCHEMA: dict[str, Any] = msgspec.json.schema(PushEnvelope)


def unwrap(event_data: Any, event_id: str | None = None) -> PubSubMessage:
    """The message of a ``messagePublished`` event; the CloudEvent id stands in for a missing message id."""
    if not isinstance(event_data, dict) or not isinstance(event_data.get("message"), dict):
        raise MalformedMessageError("the event carries no Pub/Sub message (data.message is missing)")
    message = dict(event_data["message"])
    message["messageId"] = message.get("messageId") or message.get("message_id") or event_id
    message["publishTime"] = message.get("publishTime") or message.get("publish_time")
    message = {k: v for k, v in message.items() if k in _FIELDS and v is not None}
    if "attributes" in message and isinstance(message["attributes"], dict):
        message["attributes"] = {str(k): str(v) for k, v in message["attributes"].items()}
    try:
        return msgspec.convert(message, PubSubMessage)
    except msgspec.ValidationError:
        named = problems(PubSubMessage, message)
        raise MalformedMessageError(
            "; ".join(WORDING.get(name, f"message.{name}: {why}") for name, why in named)
        ) from None


_FIELDS = {f.encode_name for f in msgspec.structs.fields(PubSubMessage)}
# What each refused field means to a person reading the log.
WORDING = {
    "messageId": "the Pub/Sub message has no messageId",
    "data": "message.data is not valid base64",
    "attributes": "message.attributes is not an object",
}
