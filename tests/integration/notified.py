"""The notifications a test's own events put on a topic, read back through a pull subscription.

Several tests share the local stack's subscription (and functions keep notifying in the
background), so a test takes only the messages it is looking for: those are acknowledged, every
other one is handed back at once for whoever wants it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pharmaseg.notifications import Notification, decode

SETTLE_S = 3.0  # after the first match, how long to keep pulling for a second copy


def stack_subscription(status: dict[str, Any]) -> tuple[Any, str]:
    """(subscriber, path) of the local stack's pull subscription on the notifications topic."""
    from pharmaseg.gcp import clients as gcp
    from pharmaseg_dev.stack.provision import pull_subscription

    subscriber = gcp.subscriber_client(endpoint=status["env"]["PUBSUB_EMULATOR_HOST"])
    return subscriber, subscriber.subscription_path(status["project"], pull_subscription("notifications"))


def take(
    subscriber: Any, subscription: str, wanted: Callable[[Notification], bool], *, timeout: float = 60.0
) -> list[Notification]:
    """Every wanted notification that arrives within ``timeout`` (and SETTLE_S after the first).

    Returns as soon as the settling time after the first match has passed, so a test can assert
    there was exactly one.
    """
    found: list[Notification] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=50, return_immediately=True, timeout=10)
        mine, others = [], []
        for received in response.received_messages:
            notification = decode(received.message.data)
            if wanted(notification):
                found.append(notification)
                mine.append(received.ack_id)
            else:
                others.append(received.ack_id)
        if mine:
            subscriber.acknowledge(subscription=subscription, ack_ids=mine)
        if others:
            subscriber.modify_ack_deadline(subscription=subscription, ack_ids=others, ack_deadline_seconds=0)
        if found and deadline > time.monotonic() + SETTLE_S:
            deadline = time.monotonic() + SETTLE_S
        time.sleep(0.3)
    return found


def keyed(key: str) -> Callable[[Notification], bool]:
    return lambda notification: notification.key == key
