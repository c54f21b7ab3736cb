"""The feature store's tables and the models bucket in memory, with the contracts of the real ones.

``MemoryStore`` and ``MemoryHistory`` append once per key as ``FeatureStore`` and
``SegmentHistoryTable`` do on BigQuery (tests/integration/test_feature_store.py checks those).
"""

from __future__ import annotations

from pharmaseg.feature_store import HistoryRecorder, Targets, feature_rows, history_rows


class MemoryStore:
    """FeatureStore's contract: rows appended once per (sha256, window length)."""

    def __init__(self):
        self.rows = []

    def stored(self, sha256, years):
        return any(r["source_sha256"] == sha256 and r["window_end"] - r["window_start"] + 1 == years for r in self.rows)

    def write(self, table, source):
        if self.stored(source.sha256, table.years):
            return 0
        rows = feature_rows(table, source)
        self.rows += rows
        return len(rows)


class MemoryHistory:
    def __init__(self, fail=False):
        self.rows, self.fail = [], fail

    def write(self, model_version, histories, source_sha256):
        if self.fail:
            raise ConnectionError("BigQuery unavailable")
        if any((r["model_version"], r["source_sha256"]) == (model_version, source_sha256) for r in self.rows):
            return 0
        rows = history_rows(model_version, histories, source_sha256, "2024-05-01T12:00:00Z")
        self.rows += rows
        return len(rows)


class MemoryBucket:
    """A storage client and bucket in one: uploads are kept by (bucket, name)."""

    def __init__(self):
        self.objects, self._bucket = {}, None

    def bucket(self, name):
        self._bucket = name
        return self

    def blob(self, name):
        self._name = name
        return self

    def upload_from_string(self, data, content_type=None):
        self.objects[(self._bucket, self._name)] = (data, content_type)


def targets(history=None):
    return Targets(MemoryStore(), HistoryRecorder(history or MemoryHistory(), 0.2), MemoryBucket(), "models")
