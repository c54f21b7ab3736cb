"""What the event-driven functions share: the event, the acknowledge-or-retry rule, the clients.

``functions/score_batch``, ``functions/retrain`` and ``functions/check_drift`` each build one
service when their module loads and hand every CloudEvent to ``deliver``::

    _service = BatchService.deployed(config.load("score_batch"))

    @functions_framework.cloud_event
    def score_batch(cloud_event: CloudEvent) -> None:
        runtime.deliver(_service, cloud_event)

**Acknowledged or retried.** Eventarc redelivers an event whose function answered 5xx, so the
whole choice is whether ``deliver`` returns or raises:

- ``Unprocessable`` (a malformed message, data that cannot train, a stale event, no production
  model to compare with) is logged at ERROR with the service's own ``event`` name and the
  reason, and the event is acknowledged: a retry would meet the same message and fail the same
  way, until Pub/Sub dead-letters it or Eventarc gives up after 24 hours.
- Any other exception (GCS, BigQuery or Pub/Sub unavailable, a concurrent delivery still
  registering) propagates: the function answers 5xx and the event comes back.

**An event of another type** is ``Unprocessable`` too, for all three functions: logged at ERROR
under the service's ``refused`` event name, naming the type received and the types accepted,
and acknowledged. The type is fixed by the trigger that delivered the event, so a redelivery
carries the same type and can never succeed; raising would only turn one misrouted event into
5 deliveries and a dead letter (Pub/Sub) or 24 hours of retries (Eventarc storage triggers)
without ever processing it. The ERROR line is what makes the misconfigured trigger visible.
(score_batch already acknowledged; retrain and check_drift used to raise ``ValueError``.)

**Clients** are created on first use (``Clients``), as Google's lazy-globals sample does: an
event refused before it needs one never pays for a client, and a test passes its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from pharmaseg.errors import Unprocessable
from pharmaseg.logs import log

__all__ = ["Clients", "Event", "Service", "Unprocessable", "accept", "deliver"]


@dataclass(frozen=True)
class Event:
    """A CloudEvent reduced to what the services use."""

    type: str
    data: Any = None
    id: str | None = None
    time: str | None = None
    source: str | None = None
    subject: str | None = None

    @classmethod
    def of(cls, cloud_event: Any) -> Event:
        """The Event of a ``cloudevents`` CloudEvent (functions-framework's argument)."""
        return cls(
            type=cloud_event["type"],
            data=cloud_event.data,
            id=cloud_event.get("id"),
            time=cloud_event.get("time"),
            source=cloud_event.get("source"),
            subject=cloud_event.get("subject"),
        )


class Service(Protocol):
    """What ``deliver`` runs: one event in, a result (or None) out."""

    event_types: tuple[str, ...]  # the CloudEvent types the function's triggers deliver
    refused: str  # the log event of an unprocessable event that names none of its own

    def handle(self, event: Event) -> Any: ...


def accept(service: Service, event: Event) -> Any:
    """Handle one event under the rule: Unprocessable is logged and acknowledged (None), the rest raises."""
    try:
        if event.type not in service.event_types:
            raise Unprocessable(
                f"unexpected event type {event.type!r}; expected {' or '.join(service.event_types)}",
                event_type=event.type,
            )
        return service.handle(event)
    except Unprocessable as exc:
        log("ERROR", str(exc), event=exc.log_event or service.refused, **exc.fields)
        return None


def deliver(service: Service, cloud_event: Any) -> Any:
    """What a function's handler does: the CloudEvent to ``accept``."""
    return accept(service, Event.of(cloud_event))


class Clients:
    """The Google clients of one function instance, each created on first use (``pharmaseg.gcp.clients``).

    Pass a client to use it instead (tests); ``project`` is the functions' GOOGLE_CLOUD_PROJECT.
    """

    def __init__(self, project: str | None, *, storage: Any = None, bigquery: Any = None, publisher: Any = None):
        self.project = project
        self._storage, self._bigquery, self._publisher = storage, bigquery, publisher

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from pharmaseg.gcp import clients as gcp

            self._storage = gcp.storage_client(self.project)
        return self._storage

    @property
    def bigquery(self) -> Any:
        if self._bigquery is None:
            from pharmaseg.gcp import clients as gcp

            self._bigquery = gcp.bigquery_client(self.project)
        return self._bigquery

    @property
    def publisher(self) -> Any:
        if self._publisher is None:
            from pharmaseg.gcp import clients as gcp

            self._publisher = gcp.publisher_client()
        return self._publisher
