"""Batch scoring: a CSV finalized in the inbox bucket ends up scored in BigQuery, exactly once.

``run`` is the protocol (``BatchRun``: claim, stage and load, commit, publish) over one
``state.RunState``; ``sink`` holds its BigQuery statements, ``retries`` its in-place retries.
``paths`` has the two ways a file is scored: in the function (``scoring`` over ``stream``,
``duplicates`` and ``tables``, written by ``csv_out``) or in BigQuery (``sql``). ``layouts``
recognizes a header, ``countries`` a country code.
"""

from pharmaseg.batch.run import BatchRun, event_too_old, process_object
from pharmaseg.batch.sink import BatchSink
from pharmaseg.batch.state import RunBusy, RunResult
from pharmaseg.config import BatchSettings
from pharmaseg.storage_events import EventError, ObjectRef, parse_event, skip_reason

__all__ = [
    "BatchRun",
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
