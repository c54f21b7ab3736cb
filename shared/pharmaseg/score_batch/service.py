"""What ``functions/score_batch`` runs: one storage event in, one batch run (or a logged refusal) out."""

from __future__ import annotations

from typing import Any

from pharmaseg.config import BatchSettings, SettingsError
from pharmaseg.gcp.events import STORAGE_FINALIZED, EventError, parse_event
from pharmaseg.notifications.publish import Notifier
from pharmaseg.runtime import Clients, Event, Unprocessable
from pharmaseg.score_batch.run import event_too_old, process_object
from pharmaseg.score_batch.state import RunResult


class BatchService:
    """Scores the objects the inbox bucket announces, each generation exactly once.

    The clients are created once per instance, on the first event that needs them
    (``runtime.Clients``); unit tests pass their own (or none, for events refused before any
    client is used).
    """

    event_types = (STORAGE_FINALIZED,)
    refused = "batch_bad_event"

    def __init__(self, settings: BatchSettings, *, storage: Any = None, sink: Any = None, models: Any = None):
        inside = [p for p in (settings.results_prefix, settings.staging_prefix) if p.startswith(settings.prefix)]
        if inside:
            # Objects written there would be announced, and scored, again.
            raise SettingsError(
                f"PHARMASEG_BATCH_RESULTS_PREFIX and PHARMASEG_BATCH_STAGING_PREFIX must lie outside "
                f"PHARMASEG_BATCH_PREFIX {settings.prefix!r}: {', '.join(map(repr, inside))} is inside"
            )
        self.settings = settings
        self.clients = Clients(settings.project, storage=storage)
        self._sink, self._models = sink, models
        self.notifier = Notifier(
            settings.project, settings.notifications_topic, publisher=lambda: self.clients.publisher
        )

    @classmethod
    def deployed(cls, settings: BatchSettings) -> BatchService:
        """The service as the function runs it: real clients, created on the first event that needs them."""
        return cls(settings)

    @property
    def sink(self) -> Any:
        if self._sink is None:
            from pharmaseg.score_batch.sink import BatchSink

            settings = self.settings
            self._sink = BatchSink(
                self.clients.bigquery, settings.project, settings.dataset, lease_seconds=settings.lease_seconds
            )
        return self._sink

    @property
    def models(self) -> Any:
        if self._models is None:
            from pharmaseg.model.cache import ModelCache
            from pharmaseg.model.registry import ModelRegistry

            registry = ModelRegistry(self.settings.models_bucket, self.clients.storage)
            self._models = ModelCache(registry, ttl_seconds=self.settings.alias_ttl_seconds)
        return self._models

    def handle(self, event: Event) -> RunResult:
        """Score the finalized object an event names.

        A malformed event, or one older than PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS, is
        Unprocessable: retrying cannot help.
        """
        try:
            ref = parse_event(event.type, event.data)
        except EventError as exc:
            raise Unprocessable(f"malformed event: {exc}", event_type=event.type) from exc
        if event_too_old(event.time, self.settings.max_event_age_seconds):
            raise Unprocessable(
                "event too old: dropped", log_event="batch_dropped", source_uri=ref.uri, event_time=event.time
            )
        models, alias = self.models, self.settings.model_alias
        return process_object(
            ref,
            storage=self.clients.storage,
            sink=self.sink,
            load_model=lambda: models.alias(alias),
            settings=self.settings,
            notifier=self.notifier,
        )
