"""Batch scoring: a CSV finalized in the inbox bucket ends up scored in BigQuery, exactly once.

``run`` is the protocol (``BatchRun``: claim, stage and load, commit, publish) over one
``state.RunState``; ``sink`` holds its BigQuery statements, ``retries`` its in-place retries.
``paths`` has the two ways a file is scored: in the function (``scoring`` over ``stream``,
``duplicates`` and ``tables``, written by ``csv_out``) or in BigQuery (``sql``). ``layouts``
recognizes a header, ``countries`` a country code.
"""

from pharmaseg.config import BatchSettings
from pharmaseg.gcp.events import EventError, ObjectRef, parse_event, skip_reason
from pharmaseg.score_batch.run import BatchRun, event_too_old, process_object
from pharmaseg.score_batch.sink import BatchSink
from pharmaseg.score_batch.state import RunBusy, RunResult

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
