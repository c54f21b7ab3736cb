"""The feature store's newest source, as one object the prediction function reads like a model.

The store (``pharmaseg.feature_store``) is a BigQuery table; no request may wait on BigQuery. So
every write to the store also writes this snapshot to the models bucket: per country, the
features of every complete window of the store's length for the newest source file. The
prediction function reads it through its model cache (same TTL), and answers a country code
with ``"window": "latest"`` or ``"window": "2013-2022"``, and ``/countries/{code}/history``, from
it alone. It is a few hundred kilobytes of JSON for the OECD file, read on first use, never on
the cold path.
"""

from __future__ import annotations

import msgspec
import numpy as np

from pharmaseg.model.features import FEATURE_NAMES, Window
from pharmaseg.model.windows import FEATURE_CODE_VERSION, WindowTable

FORMAT = "pharmaseg.feature-snapshot/v1"
OBJECT = "features/latest.json"  # in the models bucket
LATEST = "latest"


class Source(msgspec.Struct, frozen=True):
    """The source file the features come from: its URI (with generation), bytes' sha256, and when it was stored."""

    uri: str
    sha256: str
    ingested_at: str
    generation: int | None = None


class FeatureSnapshot(msgspec.Struct, frozen=True):
    """Every complete window of ``window_years`` of one source: ``countries[code][w]`` is the window
    ending ``first_end + w``, its 9 features (FEATURE_NAMES order) or None when incomplete."""

    source: Source
    window_years: int
    first_end: int
    countries: dict[str, list[list[float] | None]]
    feature_names: list[str] = msgspec.field(default_factory=lambda: list(FEATURE_NAMES))
    feature_code_version: str = FEATURE_CODE_VERSION
    format: str = FORMAT

    @classmethod
    def from_table(cls, table: WindowTable, source: Source) -> FeatureSnapshot:
        countries = {}
        for c, country in enumerate(table.countries):
            rows = [None if np.isnan(row[0]) else row.tolist() for row in table.features[c]]
            if any(row is not None for row in rows):
                countries[country] = rows
        first_end = int(table.ends[0]) if len(table.ends) else 0
        return cls(source=source, window_years=table.years, first_end=first_end, countries=countries)

    def window(self, w: int) -> Window:
        end = self.first_end + w
        return Window(end - self.window_years + 1, end)

    def windows(self, country: str) -> list[tuple[Window, list[float]]]:
        """The country's complete windows, oldest first."""
        rows = self.countries.get(country) or []
        return [(self.window(w), row) for w, row in enumerate(rows) if row is not None]

    def row(self, country: str, which: str) -> tuple[Window, list[float]] | None:
        """The country's features in window ``which`` ("latest" or "START-END"), or None when the
        snapshot has no complete window of that name for it (the caller checked its length)."""
        rows = self.countries.get(country)
        if not rows:
            return None
        if which == LATEST:
            w = next((w for w in range(len(rows) - 1, -1, -1) if rows[w] is not None), None)
        else:
            end = Window.parse(which).end
            w = end - self.first_end if 0 <= end - self.first_end < len(rows) else None
        if w is None or rows[w] is None:
            return None
        return self.window(w), rows[w]


_decoder = msgspec.json.Decoder(FeatureSnapshot)


def decode(data: bytes) -> FeatureSnapshot:
    snapshot = _decoder.decode(data)
    if snapshot.format != FORMAT or snapshot.feature_names != list(FEATURE_NAMES):
        raise ValueError(f"feature snapshot {snapshot.format} with features {snapshot.feature_names} cannot be served")
    return snapshot


def encode(snapshot: FeatureSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)
