"""Cloud Function: a CSV finalized in the inbox bucket is scored into BigQuery exactly once."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config
from pharmaseg.batch import BatchSettings, BatchSink, EventError, event_too_old, parse_event, process_object
from pharmaseg.logs import log
from pharmaseg.storage_events import skip_reason

_clients: dict = {}


def _settings() -> BatchSettings:
    """Read the function's settings from the environment."""
    return BatchSettings(
        prefix=config.setting("PHARMASEG_BATCH_PREFIX"),
        results_prefix=config.setting("PHARMASEG_BATCH_RESULTS_PREFIX"),
        staging_prefix=config.setting("PHARMASEG_BATCH_STAGING_PREFIX"),
        sql_threshold_bytes=config.setting("PHARMASEG_BATCH_SQL_THRESHOLD_BYTES"),
        max_panel_bytes=config.setting("PHARMASEG_BATCH_MAX_PANEL_BYTES"),
        block_size=config.setting("PHARMASEG_BATCH_BLOCK_BYTES"),
        raw_limit=config.setting("PHARMASEG_BATCH_RAW_RECORD_LIMIT"),
        window=config.setting("PHARMASEG_BATCH_WINDOW") or None,
        borderline_confidence=config.setting("PHARMASEG_BORDERLINE_CONFIDENCE"),
    )


def _lazy() -> dict:
    """Create the clients and the model cache once per instance."""
    if not _clients:
        from pharmaseg.gcp import bigquery_client, storage_client
        from pharmaseg.registry import ModelCache, ModelRegistry

        project = config.setting("GOOGLE_CLOUD_PROJECT")
        storage = storage_client(project)
        registry = ModelRegistry(config.setting("PHARMASEG_MODELS_BUCKET"), storage)
        _clients.update(
            storage=storage,
            sink=BatchSink(
                bigquery_client(project),
                project,
                config.setting("PHARMASEG_DATASET"),
                lease_seconds=config.setting("PHARMASEG_BATCH_LEASE_SECONDS"),
            ),
            cache=ModelCache(registry, ttl_seconds=config.setting("PHARMASEG_ALIAS_TTL_SECONDS")),
        )
    return _clients


@functions_framework.cloud_event
def score_batch(cloud_event: CloudEvent) -> None:
    """Score the finalized object named by a storage or Pub/Sub-notification event."""
    try:
        ref = parse_event(cloud_event["type"], cloud_event.data)
    except EventError as exc:  # a malformed event stays malformed: acknowledge it, don't retry for a day
        log("ERROR", f"malformed event: {exc}", event="batch_bad_event", event_type=cloud_event["type"])
        return
    if ref is None:
        log("INFO", "ignored: not an object-finalize notification", event="batch_ignored")
        return
    other_bucket = skip_reason(ref, "", config.setting("PHARMASEG_INBOX_BUCKET"))
    if other_bucket:
        log("INFO", f"ignored: {other_bucket}", event="batch_ignored", source_uri=ref.uri)
        return
    if event_too_old(cloud_event.get("time"), config.setting("PHARMASEG_BATCH_MAX_EVENT_AGE_SECONDS")):
        log(
            "ERROR",
            "event too old: dropped",
            event="batch_dropped",
            source_uri=ref.uri,
            event_time=cloud_event.get("time"),
        )
        return
    clients = _lazy()
    alias = config.setting("PHARMASEG_MODEL_ALIAS")
    process_object(
        ref,
        storage=clients["storage"],
        sink=clients["sink"],
        load_model=lambda: clients["cache"].alias(alias),
        settings=_settings(),
    )
