"""Publish a notification to the notifications topic, and write its log line.

Every notification is first written as a log line (``event=notification_<kind>``, with its key,
title and details), then published. The line comes first because Terraform's log-based alert
policies match it: email and Slack channels hear of the event even when Pub/Sub does not take
the message. Without a topic (``PHARMASEG_NOTIFICATIONS_TOPIC`` empty) only the line is written.

Delivery is at-least-once. The callers publish *before* the durable record of their work (the
``model_versions`` row, the ``drift_reports`` row, the run's ``failed`` mark): a crash between
the two makes the redelivered event redo the work and publish the same ``key`` again (a
duplicate the consumer drops), where the opposite order would find the record written and
publish nothing (a loss).

Whether a failed publish fails the work is each caller's choice, made explicit by ``on_failure``:
``"raise"`` lets the exception through, so the event is redelivered and the work redone;
``"log"`` writes an ERROR line (``event=notification_failed``) and returns None, so the work's
result is kept and only the Pub/Sub message is missing (the log line and its alert remain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from pharmaseg import logs
from pharmaseg.notifications.message import Notification, encode

SEVERITY = {"version_held": "NOTICE", "production_changed": "NOTICE", "drift_found": "WARNING", "batch_failed": "ERROR"}
PUBLISH_TIMEOUT_S = 30


def log_event(kind: str) -> str:
    """The ``event`` of a notification's log line: what Terraform's alert policies match."""
    return f"notification_{kind}"


def _publisher_client() -> Any:
    from pharmaseg.gcp.clients import publisher_client

    return publisher_client()


class Notifier:
    """Publishes notifications to one topic of one project (or only logs them, without a topic).

    ``publisher`` makes the Pub/Sub client, called on the first publish only: a function that
    never notifies never pays for the client. ``log`` writes the lines (``pharmaseg.logs.log``'s
    signature); the CLI passes its own, because its stdout is a person's terminal (or JSON a
    script parses), not Cloud Logging.
    """

    def __init__(
        self,
        project: str | None,
        topic: str | None,
        *,
        publisher: Callable[[], Any] = _publisher_client,
        log: Callable[..., None] = logs.log,
    ):
        self.project, self.topic = project, topic or None
        self._make_publisher, self._publisher = publisher, None
        self.log = log

    def send(self, notification: Notification, *, on_failure: Literal["raise", "log"]) -> str | None:
        """Log the notification's line, then publish it; the Pub/Sub message id (None: no topic, or failed)."""
        self.log(
            SEVERITY[notification.kind],
            notification.title,
            event=log_event(notification.kind),
            key=notification.key,
            details=msgspec.to_builtins(notification.details),
            links=msgspec.to_builtins(notification.links),
            topic=self.topic,
        )
        if self.topic is None:
            return None
        try:
            return self._publish(notification)
        except Exception as exc:
            if on_failure == "raise":
                raise
            self.log(
                "ERROR",
                f"notification {notification.key} not published to {self.topic}: {exc!r}",
                event="notification_failed",
                key=notification.key,
                kind=notification.kind,
                topic=self.topic,
                error=repr(exc),
            )
            return None

    def _publish(self, notification: Notification) -> str:
        """The message id; ``kind`` and ``key`` are attributes too, for subscription filters."""
        if self._publisher is None:
            self._publisher = self._make_publisher()
        future = self._publisher.publish(
            self._publisher.topic_path(self.project, self.topic),
            encode(notification),
            kind=notification.kind,
            key=notification.key,
        )
        return future.result(timeout=PUBLISH_TIMEOUT_S)
