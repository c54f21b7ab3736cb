"""What the retrain function does with one CloudEvent: a retrain request, or a new source file.

- A retrain request (Pub/Sub ``messagePublished`` on the retrain topic) is decoded, validated
  and retrained (``pipeline.retrain``).
- A new OECD file in the sources bucket (Eventarc ``storage.object.v1.finalized``, whose trigger
  filters on that bucket) is stored first (``feature_store.ingest``: the feature store, the
  serving snapshot, production's segment history; nothing when its bytes are already stored),
  then becomes a retrain request for that generation of the file and its latest complete
  window, published to the retrain topic, so that every retrain takes the same path and leaves
  the same record. A file already stored still gets its request, as it did before the store.

A malformed message or data that cannot train raises ``Unprocessable``, which
``pharmaseg.runtime`` logs (ERROR, with the reason) and acknowledges: redelivering it cannot
help. Anything else (an emulator or Google API failure, a concurrent delivery of the same
message still registering) raises, so Pub/Sub redelivers and, after the subscription's
attempts, dead-letters it.
"""

from __future__ import annotations

from typing import Any

from pharmaseg.config import RetrainSettings
from pharmaseg.gcp.events import STORAGE_FINALIZED, EventError, ObjectRef, parse_event, skip_reason
from pharmaseg.gcp.pubsub import PUBLISHED as EVENT_TYPE
from pharmaseg.gcp.pubsub import MalformedMessageError, unwrap
from pharmaseg.logs import log
from pharmaseg.notifications.publish import Notifier
from pharmaseg.retrain.message import MalformedRequestError, decode_request
from pharmaseg.retrain.pipeline import Decision, TrainingFailedError, retrain
from pharmaseg.runtime import Clients, Event, Unprocessable

DEFAULT_DATA_OBJECT = "oecd_pharma_spending.csv"
NEW_SOURCE_REQUESTER = "sources bucket"


def default_data_uri(settings: RetrainSettings) -> str | None:
    """PHARMASEG_RETRAIN_DATA_URI, else the OECD file in the sources bucket, else None."""
    if settings.retrain_data_uri:
        return settings.retrain_data_uri
    bucket = settings.sources_bucket
    return f"gs://{bucket}/{DEFAULT_DATA_OBJECT}" if bucket else None


def request_id(message) -> str:
    """The identity of a request: its message id, or what asked for it.

    The drift check publishes before it records its report, so a redelivered check can publish
    the same request twice under two message ids; keyed on the report, both map to one version
    and one decision. A request for a new source file is keyed on that object generation, for
    the same reason (the storage event itself may be delivered twice).
    """
    report = message.attributes.get("drift_report_id")
    if report:
        return f"drift-report:{report}"
    source = message.attributes.get("source_object")
    return f"source:{source}" if source else message.message_id


class RetrainService:
    """What ``functions/retrain`` runs: one retrain (or one new-source request) per event.

    The clients, the registry, the model_versions table, the report writer and the feature
    store's targets are created on first use (``runtime.Clients``); unit tests pass fakes (a
    registry, a model_versions store, a storage client, feature targets) and hand events to
    ``runtime.accept``.
    """

    event_types = (EVENT_TYPE, STORAGE_FINALIZED)
    refused = "retrain_bad_event"

    def __init__(
        self,
        settings: RetrainSettings,
        *,
        registry: Any = None,
        store: Any = None,
        storage_client: Any = None,
        reports: Any = None,  # ModelReportWriter; None: no report (unit tests), unless deployed
        publisher: Any = None,  # None: created when a new source file needs it
        features: Any = None,  # feature_store.Targets; None: nothing stored (unit tests), unless deployed
    ):
        from pharmaseg.retrain.gate import GateThresholds

        self.settings = settings
        self.clients = Clients(settings.project, storage=storage_client, publisher=publisher)
        self._registry, self._store, self._reports, self._features = registry, store, reports, features
        self._writes_reports = reports is not None
        self._writes_features = features is not None
        self.thresholds = GateThresholds.from_json(settings.gate_thresholds)
        self.notifier = Notifier(settings.project, settings.notifications_topic, publisher=lambda: self.publisher)

    @classmethod
    def deployed(cls, settings: RetrainSettings) -> RetrainService:
        """The service as the function runs it: real clients, created on the first event that needs them."""
        service = cls(settings)
        service._writes_reports = service._writes_features = True
        return service

    @property
    def storage_client(self) -> Any:
        return self.clients.storage

    @storage_client.setter
    def storage_client(self, client: Any) -> None:
        self.clients._storage = client

    @property
    def publisher(self) -> Any:
        return self.clients.publisher

    @publisher.setter
    def publisher(self, client: Any) -> None:
        self.clients._publisher = client

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from pharmaseg.model.registry import ModelRegistry

            self._registry = ModelRegistry(self.settings.models_bucket, client=self.storage_client)
        return self._registry

    @property
    def store(self) -> Any:
        if self._store is None:
            from pharmaseg.gcp import resources as cloud_resources
            from pharmaseg.retrain.pipeline import ModelVersionsTable

            settings = self.settings
            table_id = cloud_resources.table_id(settings.project, settings.dataset, "model_versions")
            self._store = ModelVersionsTable(self.clients.bigquery, table_id)
        return self._store

    @property
    def reports(self) -> Any:
        if self._reports is None and self._writes_reports:
            from pharmaseg.reports.model_report import ModelReportWriter

            settings = self.settings
            self._reports = ModelReportWriter(
                self.storage_client, settings.reports_bucket, borderline_below=settings.borderline_confidence
            )
        return self._reports

    @property
    def features(self) -> Any:
        if self._features is None and self._writes_features:
            from pharmaseg.feature_store.ingest import Targets

            settings = self.settings
            self._features = Targets.connect(
                bigquery_client=self.clients.bigquery,
                storage_client=self.storage_client,
                project=settings.project,
                dataset=settings.dataset,
                models_bucket=settings.models_bucket,
                borderline_below=settings.borderline_confidence,
            )
        return self._features

    @property
    def defaults(self) -> dict[str, Any]:
        """What a request that names no data, window or bootstrap count gets."""
        return {
            "default_data_uri": default_data_uri(self.settings),
            "default_window": self.settings.retrain_window or None,
            "default_bootstrap": self.settings.retrain_bootstrap,
        }

    def handle(self, event: Event) -> Decision | str | None:
        """Handle one event; returns the Decision, the published message id (new source file), or None
        when the event was ignored (another bucket's object, not a CSV)."""
        if event.type == STORAGE_FINALIZED:
            return self._storage_event(event)
        message_id = event.id
        try:
            message = unwrap(event.data, event.id)
            message_id = request_id(message)
            request = decode_request(message.data, **self.defaults)
            return self.retrain(request, message_id, publish_time=message.publish_time)
        except (MalformedMessageError, MalformedRequestError) as exc:
            raise Unprocessable(
                f"retrain message {message_id} is malformed: {exc}",
                log_event="retrain_malformed",
                message_id=message_id,
                error=str(exc),
            ) from exc
        except TrainingFailedError as exc:
            raise Unprocessable(
                f"retrain message {message_id} cannot train: {exc}",
                log_event="retrain_failed",
                message_id=message_id,
                error=str(exc),
            ) from exc

    def retrain(self, request, message_id: str, **kwargs: Any) -> Decision:
        return retrain(
            request,
            message_id,
            registry=self.registry,
            store=self.store,
            thresholds=self.thresholds,
            storage_client=self.storage_client,
            reports=self.reports,
            history=self.features.history if self.features is not None else None,
            notifier=self.notifier,
            **kwargs,
        )

    def _storage_event(self, event: Event) -> str | None:
        try:
            ref = parse_event(event.type, event.data)
        except EventError as exc:
            raise Unprocessable(f"malformed storage event: {exc}", log_event="retrain_bad_event") from exc
        why = skip_reason(ref, "")
        if why:
            log("INFO", f"ignored: {why}", event="retrain_source_ignored", source_uri=ref.uri)
            return None
        return self.request_for_new_source(ref)

    def request_for_new_source(self, ref: ObjectRef) -> str:
        """Store this generation of a new source file, then publish a retrain request for it and its latest
        complete window."""
        from pharmaseg.retrain.pipeline import current_production, read_source, training_window
        from pharmaseg.retrain.publish import publish_request

        uri = f"gs://{ref.bucket}/{ref.name}#{ref.generation}"
        production = current_production(self.registry)
        try:
            source = read_source(uri, self.storage_client)
            window = training_window(None, source, production, self.thresholds)
        except TrainingFailedError as exc:
            raise Unprocessable(
                f"new source file cannot train: {exc}", log_event="retrain_failed", source_uri=uri, error=str(exc)
            ) from exc
        if self.features is not None:
            from pharmaseg.feature_store.ingest import ingest

            ingest(source.data, uri, self.features, generation=ref.generation, production=production)
        if not self.settings.retrain_topic:
            raise RuntimeError("PHARMASEG_RETRAIN_TOPIC must be set for new source files to trigger retraining")
        message_id = publish_request(
            self.settings.project,
            self.settings.retrain_topic,
            publisher=self.publisher,
            attributes={"origin": "sources_bucket", "source_object": f"{ref.bucket}/{ref.name}#{ref.generation}"},
            reason=f"new source data: {uri}",
            data_uri=uri,
            window=str(window),
            requested_by=NEW_SOURCE_REQUESTER,
        )
        log(
            "NOTICE",
            f"new source file {uri}: retrain requested for its latest complete window {window}",
            event="retrain_requested",
            source_uri=uri,
            window=str(window),
            message_id=message_id,
        )
        return message_id
