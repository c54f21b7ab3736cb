"""What ``functions/score_batch`` runs: one storage event in, one batch run (or a logged refusal) out."""

from __future__ import annotations

from typing import Any

from pharmaseg.batch.run import event_too_old, process_object
from pharmaseg.batch.state import RunResult
from pharmaseg.config import BatchSettings, SettingsError
from pharmaseg.logs import log
from pharmaseg.storage_events import EventError, parse_event


class BatchService:
    """Scores the objects the inbox bucket announces, each generation exactly once.

    ``from_env`` builds the clients once per instance, on the first event that needs them;
    unit tests pass their own (or none, for events refused before any client is used).
    """

    def __init__(self, settings: BatchSettings, *, storage=None, sink=None, models=None):
        inside = [p for p in (settings.results_prefix, settings.staging_prefix) if p.startswith(settings.prefix)]
        if inside:
            # Objects written there would be announced, and scored, again.
            raise SettingsError(
                f"PHARMASEG_BATCH_RESULTS_PREFIX and PHARMASEG_BATCH_STAGING_PREFIX must lie outside "
                f"PHARMASEG_BATCH_PREFIX {settings.prefix!r}: {', '.join(map(repr, inside))} is inside"
            )
        self.settings = settings
        self._storage, self._sink, self._models = storage, sink, models

    @classmethod
    def deployed(cls, settings: BatchSettings) -> BatchService:
        """The service as the function runs it: real clients, created on the first event that needs them."""
        return cls(settings)

    def _clients(self):
        if self._storage is None:
            from pharmaseg.batch.sink import BatchSink
            from pharmaseg.gcp import bigquery_client, storage_client
            from pharmaseg.registry import ModelCache, ModelRegistry

            settings = self.settings
            self._storage = storage_client(settings.project)
            self._sink = BatchSink(
                bigquery_client(settings.project),
                settings.project,
                settings.dataset,
                lease_seconds=settings.lease_seconds,
            )
            registry = ModelRegistry(settings.models_bucket, self._storage)
            self._models = ModelCache(registry, ttl_seconds=settings.alias_ttl_seconds)
        return self._storage, self._sink, self._models

    def handle(self, event_type: str, data: Any, event_time: str | None = None) -> RunResult | None:
        """Score the finalized object an event names; None when the event is acknowledged unscored.

        A malformed event, another bucket's object or an event older than
        PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS is logged and acknowledged: retrying cannot help.
        """
        try:
            ref = parse_event(event_type, data)
        except EventError as exc:
            log("ERROR", f"malformed event: {exc}", event="batch_bad_event", event_type=event_type)
            return None
        if event_too_old(event_time, self.settings.max_event_age_seconds):
            log("ERROR", "event too old: dropped", event="batch_dropped", source_uri=ref.uri, event_time=event_time)
            return None
        storage, sink, models = self._clients()
        alias = self.settings.model_alias
        return process_object(
            ref, storage=storage, sink=sink, load_model=lambda: models.alias(alias), settings=self.settings
        )
