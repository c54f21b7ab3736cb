"""``segment_history``: each model's segment for every country and window of a source file.

The table people chart in Connected Sheets or Looker Studio: a row per model version, country,
window and source file, with the segment, its confidence, the runner-up, the margin to a lower
segment and the change from the previous window. A model's history over one source file is
written once (keyed on version and sha256): the same model scoring the same data can only give
the same rows.

``watch`` is a property of the country (its last three windows), not of a window: it is repeated
on every row of the country, so that filtering on it keeps the whole trajectory that put the
country on watch. ``latest_window`` marks the country's latest window, so that counting
countries (on watch, per segment) is a filter on it rather than a subquery.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pharmaseg.feature_store.loads import append, job_id, query
from pharmaseg.model.features import Window
from pharmaseg.model.history import CountryHistory

ROLE = "segment_history"


def history_rows(
    model_version: str, histories: list[CountryHistory], source_sha256: str, scored_at: str
) -> list[dict[str, Any]]:
    """The table's rows of one model's histories (one per country) over one source file."""
    rows = []
    for history in histories:
        if history.model_version not in (None, model_version):
            raise ValueError(
                f"history of {history.country} was scored by model {history.model_version}, not {model_version}"
            )
        for i, scored in enumerate(history.windows):
            window = Window.parse(scored.window)
            rows.append(
                {
                    "model_version": model_version,
                    "country": history.country,
                    "window": scored.window,
                    "window_start": window.start,
                    "window_end": window.end,
                    "latest_window": i == len(history.windows) - 1,
                    "segment": scored.segment,
                    "cluster": scored.cluster,
                    "confidence": scored.confidence,
                    "borderline": scored.borderline,
                    "runner_up": scored.runner_up,
                    "margin_to_lower": scored.margin_to_lower,
                    "change": scored.change,
                    "watch": history.watch,
                    "watch_reason": history.watch_reason,
                    "source_sha256": source_sha256,
                    "scored_at": scored_at,
                }
            )
    return rows


class SegmentHistoryTable:
    """``segment_history`` in BigQuery (``table_id``: project.dataset.table)."""

    def __init__(self, client, table_id: str):
        self.client = client
        self.table_id = table_id

    def written(self, model_version: str, source_sha256: str) -> bool:
        sql = (
            f"SELECT 1 AS found FROM `{self.table_id}`"
            " WHERE model_version = @version AND source_sha256 = @sha256 LIMIT 1"
        )
        return bool(query(self.client, sql, version=model_version, sha256=source_sha256))

    def write(self, model_version: str, histories: list[CountryHistory], source_sha256: str) -> int:
        """Append the histories' rows; 0 when this model's history over this source is already there."""
        scored_at = datetime.now(UTC).isoformat(timespec="microseconds")
        rows = history_rows(model_version, histories, source_sha256, scored_at)
        if not rows or self.written(model_version, source_sha256):
            return 0
        job = job_id(ROLE, model_version, source_sha256)
        return len(rows) if append(self.client, self.table_id, ROLE, rows, job) else 0
