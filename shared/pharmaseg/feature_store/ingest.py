"""A new source file into the feature store, the serving snapshot and production's segment history.

The retrain function (on every new file in the sources bucket) and ``pharmaseg features ingest``
run this one function. The file is validated as training validates it (any bad row refuses the
whole file), its windows are those of production's length (10 years without a production
model), and a file already stored under that length and the current feature code writes nothing.

The store's rows are written last: they are what marks a file as stored, so an ingestion that
fails after writing the snapshot or the segment history is redone in full by the redelivered
event, while one that stored its rows is never redone.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from pharmaseg.feature_store.histories import HistoryRecorder, window_years
from pharmaseg.feature_store.segments_table import SegmentHistoryTable
from pharmaseg.feature_store.store import FeatureStore
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.logs import log
from pharmaseg.model import snapshot
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.features import DEFAULT_WINDOW
from pharmaseg.model.sources import sha256_of
from pharmaseg.model.windows import FEATURE_CODE_VERSION, all_windows


@dataclass(frozen=True)
class Targets:
    """Where an ingestion writes: the store, the segment history, and the models bucket (the snapshot)."""

    store: FeatureStore
    history: HistoryRecorder
    storage_client: Any
    models_bucket: str

    @classmethod
    def connect(
        cls,
        *,
        bigquery_client: Any,
        storage_client: Any,
        project: str,
        dataset: str,
        models_bucket: str,
        borderline_below: float,
    ) -> Targets:
        """The product's tables in ``project.dataset`` (names from resources.json)."""
        return cls(
            store=FeatureStore(bigquery_client, cloud_resources.table_id(project, dataset, "country_features")),
            history=HistoryRecorder(
                SegmentHistoryTable(bigquery_client, cloud_resources.table_id(project, dataset, "segment_history")),
                borderline_below,
            ),
            storage_client=storage_client,
            models_bucket=models_bucket,
        )


@dataclass(frozen=True)
class IngestResult:
    """What one ingestion wrote; ``skipped`` says why it wrote nothing."""

    source: snapshot.Source
    years: int
    rows_written: int = 0
    snapshot_written: bool = False
    history_rows: int = 0
    production_version: str | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "source": msgspec.structs.asdict(self.source)}


def ingest(
    data: bytes,
    uri: str,
    targets: Targets,
    *,
    generation: int | None = None,
    production: ModelArtifact | None = None,
) -> IngestResult:
    """Store one source file (its bytes, as read from ``uri``); DataValidationError names the first bad row."""
    from pharmaseg.model.panel import read_panel

    panel = read_panel(io.BytesIO(data), strict=True)
    years = window_years(production) if production is not None else len(DEFAULT_WINDOW.years)
    table = all_windows(panel.rows, years)
    ingested_at = datetime.now(UTC).isoformat(timespec="microseconds")
    source = snapshot.Source(uri=uri, sha256=sha256_of(data), ingested_at=ingested_at, generation=generation)
    version = production.version if production is not None else None
    fields = {"source_uri": uri, "source_sha256": source.sha256, "window_years": years}
    if len(table.ends) == 0:
        reason = f"the file has no {years}-year window"
        log("WARNING", f"features of {uri} not stored: {reason}", event="features_not_stored", **fields)
        return IngestResult(source, years, production_version=version, skipped=reason)
    if targets.store.stored(source.sha256, years):
        reason = f"already stored ({years}-year windows, {FEATURE_CODE_VERSION})"
        log("INFO", f"features of {uri}: {reason}", event="features_already_stored", **fields)
        return IngestResult(source, years, production_version=version, skipped=reason)
    features = snapshot.FeatureSnapshot.from_table(table, source)
    targets.storage_client.bucket(targets.models_bucket).blob(snapshot.OBJECT).upload_from_string(
        snapshot.encode(features), content_type="application/json"
    )
    history = targets.history.record(production, table, source.sha256) if production is not None else 0
    rows = targets.store.write(table, source)
    result = IngestResult(source, years, rows, True, history, version)
    first, last = table.window(0), table.window(len(table.ends) - 1)
    log(
        "NOTICE",
        f"stored the features of {uri}: {rows} rows ({len(table.countries)} countries, windows {first} .. {last}), "
        f"gs://{targets.models_bucket}/{snapshot.OBJECT}"
        + (f", {history} segment-history rows of production {version}" if version else ""),
        event="features_stored",
        rows=rows,
        history_rows=history,
        production_version=version,
        **fields,
    )
    return result
