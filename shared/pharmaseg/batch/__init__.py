"""Batch scoring: a CSV finalized in the inbox bucket ends up scored in BigQuery, exactly once.

``events`` reads both event shapes, ``layouts`` recognizes the header, ``scoring`` streams and
scores in the function, ``sql`` scores large files in BigQuery, ``sink`` owns the run protocol
and ``pipeline`` ties them together for ``functions/score_batch``.
"""

from pharmaseg.batch.pipeline import BatchSettings, RunBusy, RunResult, event_too_old, process_object
from pharmaseg.batch.sink import BatchSink
from pharmaseg.storage_events import EventError, ObjectRef, parse_event, skip_reason

__all__ = [
    "BatchSettings",
    "BatchSink",
    "EventError",
    "ObjectRef",
    "RunBusy",
    "RunResult",
    "event_too_old",
    "parse_event",
    "process_object",
    "skip_reason",
]
