"""What a batch run carries from one step to the next, and how it can end.

``RunState`` is one attempt's knowledge of its run (the fencing token of its claim, what it has
found out about the file); ``Staged`` is what a scoring path hands to the commit; ``RunResult``
is what ``process_object`` returns. ``RejectFile`` ends a run as rejected (the file will never
score); ``RunBusy`` ends the attempt without touching the run (another attempt holds it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pharmaseg.gcp.events import ObjectRef
from pharmaseg.score_batch.scoring import Counts


class RejectFile(Exception):
    """The file cannot be scored at all; the run is committed as rejected with this reason."""

    @classmethod
    def gone(cls, ref: ObjectRef) -> RejectFile:
        """The generation of the event is no longer there: scoring another would be a different run."""
        return cls(f"generation {ref.generation} of {ref.uri} no longer exists (overwritten or deleted)")


class RunBusy(RuntimeError):
    """Another attempt holds this run's lease; raising makes the platform redeliver later."""


@dataclass
class RunState:
    """One attempt at a run: the sink writes this to the run's ``batch_runs`` row.

    ``token`` is the ``started_at`` our claim wrote: every later write is guarded by it, so an
    attempt that lost the run (its lease expired and another took over) can change nothing.
    """

    ref: ObjectRef
    token: datetime
    started: float = field(default_factory=time.monotonic)
    layout: str | None = None
    scoring_path: str | None = None  # "function" or "bigquery"
    model_version: str | None = None

    @property
    def run_id(self) -> str:
        return self.ref.run_id

    def duration_ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000.0, 3)


@dataclass(frozen=True)
class Staged:
    """A scoring path's output, staged and loaded, waiting for the commit.

    ``scored_from``/``rejects_from`` are SELECTs over the run's staging tables with the staging
    columns (``tables.scored_schema(k)`` and ``tables.REJECTS_SCHEMA``); ``scored_csv`` and
    ``rejects_csv`` are the staging objects that become results/<name> and <name>.rejects.csv
    (both through the spreadsheet rule); ``objects`` are all of the run's staging objects.
    """

    counts: Counts
    k: int
    scored_from: str
    rejects_from: str
    scored_csv: Any
    rejects_csv: Any
    objects: tuple[Any, ...]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    status: str  # succeeded, rejected, duplicate, ignored, lost
    run_id: str | None = None
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    scoring_path: str | None = None
    error: str | None = None
    results_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
