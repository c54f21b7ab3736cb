"""What the retrain function does with one CloudEvent: decode, validate, retrain, acknowledge.

A malformed message or data that cannot train is logged (ERROR, with the reason) and
acknowledged by returning normally: redelivering it cannot help. Anything else (an emulator or
Google API failure, a concurrent delivery of the same message still registering) raises, so
Pub/Sub redelivers and, after the subscription's attempts, dead-letters it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pharmaseg import config
from pharmaseg.logs import log
from pharmaseg.pubsub import PUBLISHED as EVENT_TYPE
from pharmaseg.pubsub import MalformedMessageError, unwrap
from pharmaseg.retraining.message import MalformedRequestError, decode_request
from pharmaseg.retraining.service import Decision, TrainingFailedError, retrain

DEFAULT_DATA_OBJECT = "oecd_pharma_spending.csv"


@dataclass
class Dependencies:
    registry: Any
    store: Any
    storage_client: Any
    thresholds: Any
    defaults: dict[str, Any]


_deps: Dependencies | None = None


def default_data_uri() -> str | None:
    """PHARMASEG_RETRAIN_DATA_URI, else the OECD file in the sources bucket, else None."""
    uri = config.setting("PHARMASEG_RETRAIN_DATA_URI")
    if uri:
        return uri
    bucket = config.setting("PHARMASEG_SOURCES_BUCKET")
    return f"gs://{bucket}/{DEFAULT_DATA_OBJECT}" if bucket else None


def dependencies() -> Dependencies:
    """Clients and settings, created once per process (lazy globals: the first event pays)."""
    global _deps
    if _deps is None:
        from pharmaseg import gcp, resources
        from pharmaseg.registry import ModelRegistry
        from pharmaseg.retraining.gate import GateThresholds
        from pharmaseg.retraining.service import ModelVersionsTable

        project = config.required("GOOGLE_CLOUD_PROJECT")
        storage = gcp.storage_client(project)
        table_id = f"{project}.{config.setting('PHARMASEG_DATASET')}.{resources.table_name('model_versions')}"
        _deps = Dependencies(
            registry=ModelRegistry(config.required("PHARMASEG_MODELS_BUCKET"), client=storage),
            store=ModelVersionsTable(gcp.bigquery_client(project), table_id),
            storage_client=storage,
            thresholds=GateThresholds.from_json(config.setting("PHARMASEG_GATE_THRESHOLDS")),
            defaults={
                "default_data_uri": default_data_uri(),
                "default_window": config.setting("PHARMASEG_RETRAIN_WINDOW"),
                "default_bootstrap": int(config.setting("PHARMASEG_RETRAIN_BOOTSTRAP")),
            },
        )
    return _deps


def request_id(message) -> str:
    """The identity of a request: its message id, or the drift report that asked for it.

    The drift check publishes before it records its report, so a redelivered check can publish
    the same request twice under two message ids; keyed on the report, both map to one version
    and one decision.
    """
    report = message.attributes.get("drift_report_id")
    return f"drift-report:{report}" if report else message.message_id


def handle_event(event_type: str, data: Any, event_id: str | None = None, deps: Dependencies | None = None):
    """Handle one ``messagePublished`` event; returns the Decision, or None when acknowledged unprocessed."""
    if event_type != EVENT_TYPE:
        raise ValueError(f"expected a {EVENT_TYPE} event, got {event_type!r}")
    deps = deps or dependencies()
    message_id = event_id
    try:
        message = unwrap(data, event_id)
        message_id = request_id(message)
        request = decode_request(message.data, **deps.defaults)
        return handle_request(request, message_id, deps, publish_time=message.publish_time)
    except (MalformedMessageError, MalformedRequestError) as exc:
        log(
            "ERROR",
            f"retrain message {message_id} is malformed: {exc}",
            event="retrain_malformed",
            message_id=message_id,
            error=str(exc),
        )
    except TrainingFailedError as exc:
        log(
            "ERROR",
            f"retrain message {message_id} cannot train: {exc}",
            event="retrain_failed",
            message_id=message_id,
            error=str(exc),
        )
    return None


def handle_request(request, message_id: str, deps: Dependencies, **kwargs: Any) -> Decision:
    return retrain(
        request,
        message_id,
        registry=deps.registry,
        store=deps.store,
        thresholds=deps.thresholds,
        storage_client=deps.storage_client,
        **kwargs,
    )
