"""The feature store: every window of every source file in BigQuery, and what the models made of them.

``store`` appends the features of each source file once (``country_features``) and reads them
back as of any time, or as the exact rows a model was trained on; ``segments_table`` keeps each
model's segment history per country and window (``segment_history``, for Connected Sheets and
Looker Studio); ``ingest`` is the one path a new source file takes into both, and into the
snapshot the prediction function serves.
"""

from pharmaseg.feature_store.histories import HistoryRecorder, country_histories, window_years
from pharmaseg.feature_store.ingest import IngestResult, Targets, ingest
from pharmaseg.feature_store.segments_table import SegmentHistoryTable, history_rows
from pharmaseg.feature_store.store import FeatureStore, feature_rows, feature_timestamp

__all__ = [
    "FeatureStore",
    "HistoryRecorder",
    "IngestResult",
    "SegmentHistoryTable",
    "Targets",
    "country_histories",
    "feature_rows",
    "feature_timestamp",
    "history_rows",
    "ingest",
    "window_years",
]
