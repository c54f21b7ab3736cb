"""``country_features``: the features of every window of every source file, appended once, read as of any time.

One row per country, window and source file, for every window of the store's length in which the
country has at least one year; the 9 features are NULL unless every year is there. A source file
is stored once per window length and feature code version (its sha256 is the key), so the table
only grows when the data or the feature code changes, and a model's training rows stay readable
forever under its lineage's ``feature_set_id``.

``feature_timestamp`` is 00:00 UTC on 31 December of the window's last year: the features of
2011-2020 describe a period that ends then and cannot be known earlier, so a point-in-time join
against labels or events at time t only ever picks windows that had ended by t. ``ingested_at``
is the other clock: when the file reached the store, which is what ``as_of`` reads by.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pharmaseg.feature_store.loads import append, job_id, query
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.snapshot import Source
from pharmaseg.model.windows import FEATURE_CODE_VERSION, WindowTable, feature_set_id

ROLE = "country_features"


def feature_timestamp(year: int) -> str:
    """When the features of a window ending in ``year`` became observable (see the module's docstring)."""
    return f"{year}-12-31T00:00:00Z"


def feature_rows(table: WindowTable, source: Source) -> list[dict[str, Any]]:
    """The table's rows for one source: a country's windows with at least one year, oldest first."""
    rows = []
    for c, country in enumerate(table.countries):
        for w in range(len(table.ends)):
            present = int(table.present[c, w])
            if present == 0:
                continue
            window = table.window(w)
            complete = present == table.years
            values = table.features[c, w].tolist() if complete else [None] * len(FEATURE_NAMES)
            rows.append(
                {
                    "country": country,
                    "window": str(window),
                    "window_start": window.start,
                    "window_end": window.end,
                    **dict(zip(FEATURE_NAMES, values)),
                    "years_present": present,
                    "complete": complete,
                    "feature_timestamp": feature_timestamp(window.end),
                    "ingested_at": source.ingested_at,
                    "source_uri": source.uri,
                    "source_generation": source.generation,
                    "source_sha256": source.sha256,
                    "feature_code_version": FEATURE_CODE_VERSION,
                    "feature_set_id": feature_set_id(source.sha256, window),
                }
            )
    return rows


class FeatureStore:
    """``country_features`` in BigQuery (``table_id``: project.dataset.table)."""

    def __init__(self, client, table_id: str):
        self.client = client
        self.table_id = table_id

    def stored(self, sha256: str, years: int) -> bool:
        """Whether this source file's ``years``-long windows are stored under the current feature code."""
        sql = (
            f"SELECT 1 AS found FROM `{self.table_id}` WHERE source_sha256 = @sha256 AND feature_code_version = @code"
            " AND window_end - window_start + 1 = @years LIMIT 1"
        )
        return bool(query(self.client, sql, sha256=sha256, code=FEATURE_CODE_VERSION, years=years))

    def write(self, table: WindowTable, source: Source) -> int:
        """Append the source's rows; 0 when they are already stored (or a concurrent write stored them)."""
        if self.stored(source.sha256, table.years):
            return 0
        rows = feature_rows(table, source)
        if not rows:
            return 0
        job = job_id(ROLE, source.sha256, table.years, FEATURE_CODE_VERSION)
        return len(rows) if append(self.client, self.table_id, ROLE, rows, job) else 0

    def latest(self, *, years: int | None = None) -> list[dict[str, Any]]:
        """Per country, its latest complete window from the newest ingestion that has one (sorted by country)."""
        return self._latest(None, years)

    def as_of(self, timestamp: datetime, *, years: int | None = None) -> list[dict[str, Any]]:
        """``latest`` as it read at ``timestamp``: only rows ingested at or before it count."""
        return self._latest(timestamp, years)

    def _latest(self, timestamp: datetime | None, years: int | None) -> list[dict[str, Any]]:
        conditions, params = ["complete"], {}
        if timestamp is not None:
            conditions.append("ingested_at <= @as_of")
            params["as_of"] = timestamp
        if years is not None:
            conditions.append("window_end - window_start + 1 = @years")
            params["years"] = years
        sql = (
            f"SELECT * FROM `{self.table_id}` WHERE {' AND '.join(conditions)}"
            " QUALIFY ROW_NUMBER() OVER ("
            "PARTITION BY country ORDER BY ingested_at DESC, window_end DESC, feature_set_id) = 1"
            " ORDER BY country"
        )
        return query(self.client, sql, **params)

    def training_set(self, set_id: str) -> dict[str, list[float]]:
        """The complete rows of one feature set, per country in FEATURE_NAMES order: a model's training rows."""
        columns = ", ".join(FEATURE_NAMES)
        sql = (
            f"SELECT country, {columns} FROM `{self.table_id}`"
            " WHERE feature_set_id = @set_id AND complete ORDER BY country"
        )
        return {row["country"]: [row[name] for name in FEATURE_NAMES] for row in query(self.client, sql, set_id=set_id)}
