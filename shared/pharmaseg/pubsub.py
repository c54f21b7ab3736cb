"""The Pub/Sub message inside a ``messagePublished`` CloudEvent, decoded once for every function.

Eventarc (production) and functions-framework with an emulator push subscription (local stack)
deliver the same envelope: ``{"message": {"data": <base64>, "attributes", "messageId",
"publishTime"}, "subscription"}``. A message that cannot be decoded will never decode, so callers
log and acknowledge ``MalformedMessageError`` instead of letting Pub/Sub redeliver it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pharmaseg.errors import PharmasegError

PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


class MalformedMessageError(PharmasegError):
    """The event carries no decodable Pub/Sub message."""


@dataclass(frozen=True)
class PubSubMessage:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: str | None


def unwrap(event_data: Any, event_id: str | None = None) -> PubSubMessage:
    """The message of a ``messagePublished`` event; the CloudEvent id stands in for a missing message id."""
    if not isinstance(event_data, dict) or not isinstance(event_data.get("message"), dict):
        raise MalformedMessageError("the event carries no Pub/Sub message (data.message is missing)")
    message = event_data["message"]
    message_id = message.get("messageId") or message.get("message_id") or event_id
    if not message_id:
        raise MalformedMessageError("the Pub/Sub message has no messageId")
    try:
        data = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise MalformedMessageError("message.data is not valid base64") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise MalformedMessageError("message.attributes is not an object")
    return PubSubMessage(
        message_id=str(message_id),
        data=data,
        attributes={str(k): str(v) for k, v in attributes.items()},
        publish_time=message.get("publishTime") or message.get("publish_time"),
    )
