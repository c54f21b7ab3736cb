"""One batch run, one protocol: claim -> stage and load (in the function or in BigQuery) -> commit -> publish.

``process_object`` is what the Cloud Function calls. It never raises for a bad file: such a file
is committed as a ``rejected`` run (and the event acknowledged). It raises only for errors worth
another delivery (transient failures that outlived their retries, a run held by another
attempt), after marking the run ``failed`` so that the retry can claim it again, and notifying
people of the failed attempt (``pharmaseg.notifications``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pyarrow as pa

from pharmaseg.config import BatchSettings
from pharmaseg.errors import DataValidationError
from pharmaseg.gcp.events import ObjectRef, skip_reason
from pharmaseg.logs import log
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.notifications import events
from pharmaseg.notifications.publish import Notifier
from pharmaseg.score_batch import paths
from pharmaseg.score_batch.layouts import FEATURES, detect_layout
from pharmaseg.score_batch.retries import retried
from pharmaseg.score_batch.sink import TERMINAL, BatchSink, now
from pharmaseg.score_batch.state import RejectFile, RunBusy, RunResult, RunState, Staged

HEAD_BYTES = 64 * 1024
# A file that can never score: the run is committed as rejected and the event acknowledged.
_REJECTING = (RejectFile, DataValidationError, pa.ArrowInvalid, UnicodeDecodeError)


def result_name(ref: ObjectRef, settings: BatchSettings, suffix: str = "") -> str:
    relative = ref.name[len(settings.prefix) :] if ref.name.startswith(settings.prefix) else ref.name
    if suffix:
        relative = relative[:-4] + suffix if relative.lower().endswith(".csv") else relative + suffix
    return settings.results_prefix + relative


class BatchRun:
    """One object generation, scored exactly once (docs/batch.md, "Idempotency and atomicity").

    ``execute`` is the whole protocol: claim the run (or find it done, or busy), stage and load
    its rows on one of the two paths (``paths``), commit them with the run's final row in one
    guarded transaction (``BatchSink.commit``), then publish the results CSVs. What the attempt
    learns on the way is in ``state``; ``hook`` is called with "loaded" between the staging and
    the commit (tests inject failures there). ``notifier`` tells people of a failed attempt.
    """

    def __init__(
        self,
        ref: ObjectRef,
        *,
        storage,
        sink: BatchSink,
        load_model: Callable[[], ModelArtifact],
        settings: BatchSettings,
        hook: Callable[[str], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.ref = ref
        self.sink = sink
        self.load_model = load_model
        self.settings = settings
        self.hook = hook
        self.notifier = notifier
        self.bucket = storage.bucket(ref.bucket)
        self.state: RunState | None = None

    def staging_object(self, name: str):
        """An object of this run under the staging prefix of the inbox bucket."""
        return self.bucket.blob(f"{self.settings.staging_prefix}{self.ref.run_id}/{name}")

    def execute(self) -> RunResult:
        run_id = self.ref.run_id
        claim = self.sink.claim(self.ref)
        if not claim.owned:
            if claim.status in TERMINAL:
                log("INFO", "duplicate delivery: run already committed", event="batch_duplicate", run_id=run_id)
                return RunResult("duplicate", run_id)
            raise RunBusy(f"run {run_id} is {claim.status} in another attempt (started {claim.started_at})")
        assert claim.started_at is not None
        self.state = RunState(self.ref, claim.started_at)
        log(
            "INFO",
            "batch run started",
            event="batch_started",
            run_id=run_id,
            source_uri=self.ref.uri,
            generation=self.ref.generation,
        )
        try:
            try:
                result = self._score_and_commit()
            except _REJECTING as exc:
                result = self._commit_rejected(exc)
        except Exception as exc:
            self._mark_failed(exc)
            raise
        finally:
            self.sink.drop_staging(run_id)
        log(
            "INFO",
            f"batch run {result.status}",
            event="batch_finished",
            run_id=run_id,
            status=result.status,
            rows_read=result.rows_read,
            rows_scored=result.rows_scored,
            rows_rejected=result.rows_rejected,
            scoring_path=result.scoring_path,
            error=result.error,
        )
        return result

    def _score_and_commit(self) -> RunResult:
        staged = self._stage()
        if self.hook:
            self.hook("loaded")
        results_uri = f"gs://{self.ref.bucket}/{result_name(self.ref, self.settings)}"
        if not self.sink.commit(self.state, "succeeded", staged, results_uri=results_uri):
            return RunResult("lost", self.ref.run_id, error="another attempt committed or took over this run")
        self._publish(staged)
        counts = staged.counts
        return RunResult(
            "succeeded",
            self.ref.run_id,
            counts.rows_read,
            counts.rows_scored,
            counts.rows_rejected,
            self.state.scoring_path,
            results_uri=results_uri,
            extra=staged.extra,
        )

    def _stage(self) -> Staged:
        """Read the file's head, recognize its layout, load the model and take the path that fits."""
        from google.api_core.exceptions import NotFound

        state, settings = self.state, self.settings
        source = self.bucket.blob(self.ref.name, generation=self.ref.generation)
        try:
            if self.ref.size is None:
                source.reload()
            size = self.ref.size if self.ref.size is not None else int(source.size or 0)
            if size == 0:
                raise RejectFile("the file is empty: expected a header line")
            head = retried(lambda: source.download_as_bytes(start=0, end=HEAD_BYTES - 1), what="read head")
        except NotFound:
            raise RejectFile.gone(self.ref) from None
        if not head:
            raise RejectFile("the file is empty: expected a header line")
        layout = detect_layout(head)
        state.layout = layout.kind
        model = self.load_model()
        state.model_version = model.version
        if layout.kind == FEATURES and size > settings.sql_threshold_bytes:
            state.scoring_path = "bigquery"
            return paths.in_bigquery(self, model, layout)
        state.scoring_path = "function"
        if layout.kind != FEATURES and size > settings.max_panel_bytes:
            raise RejectFile(f"a raw panel file may have at most {settings.max_panel_bytes} bytes; this one has {size}")
        return paths.in_function(self, source, model, layout)

    def _commit_rejected(self, exc: Exception) -> RunResult:
        message = str(exc).splitlines()[0][:1000] if str(exc) else type(exc).__name__
        committed = self.sink.commit(self.state, "rejected", error=message)
        status = "rejected" if committed else "lost"
        return RunResult(status, self.ref.run_id, scoring_path=self.state.scoring_path, error=message)

    def _mark_failed(self, exc: Exception) -> None:
        """Log, notify, then mark the run failed, so that a retry can claim it.

        The notification goes before the mark, so a crash in between notifies without the mark
        (the lease then expires) rather than marks without notifying. A failed publish is only
        logged (``on_failure="log"``): the attempt re-raises its own error anyway, which is what
        brings the event back, and a publish error raised instead would hide it.
        """
        reason = f"{type(exc).__name__}: {exc}"
        log(
            "ERROR",
            "batch run failed; it will be retried",
            event="batch_failed",
            run_id=self.ref.run_id,
            error=repr(exc),
        )
        if self.notifier is not None:
            notification = events.batch_failed(
                uri=self.ref.uri,
                generation=self.ref.generation,
                run_id=self.ref.run_id,
                reason=reason.splitlines()[0][:1000],
                attempt_started_at=self.state.token,
                failed_at=now(),
            )
            self.notifier.send(notification, on_failure="log")
        try:
            self.sink.mark_failed(self.state, reason)
        except Exception as mark_exc:  # the lease then expires instead
            log("ERROR", "could not mark the run failed", run_id=self.ref.run_id, error=repr(mark_exc))

    def _publish(self, staged: Staged) -> None:
        """After the commit: results/<name> (and <name>.rejects.csv) for people who do not use BigQuery."""
        try:
            self.bucket.copy_blob(staged.scored_csv, self.bucket, result_name(self.ref, self.settings))
            if staged.counts.rows_rejected:
                self.bucket.copy_blob(
                    staged.rejects_csv, self.bucket, result_name(self.ref, self.settings, ".rejects.csv")
                )
            for blob in staged.objects:
                blob.delete()
        except Exception as exc:  # the run is committed; BigQuery is the record
            log(
                "WARNING",
                "could not publish the results CSV",
                event="batch_results",
                source_uri=self.ref.uri,
                error=repr(exc),
            )


def process_object(
    ref: ObjectRef,
    *,
    storage,
    sink: BatchSink,
    load_model: Callable[[], ModelArtifact],
    settings: BatchSettings | None = None,
    hook: Callable[[str], None] | None = None,
    notifier: Notifier | None = None,
) -> RunResult:
    """Score one object generation exactly once (see the module docstring and docs/batch.md)."""
    settings = settings or BatchSettings()  # the documented defaults
    reason = skip_reason(ref, settings.prefix)
    if reason:
        log("INFO", f"ignored: {reason}", event="batch_ignored", source_uri=ref.uri, generation=ref.generation)
        return RunResult("ignored", error=reason)
    run = BatchRun(
        ref, storage=storage, sink=sink, load_model=load_model, settings=settings, hook=hook, notifier=notifier
    )
    return run.execute()


def event_too_old(event_time: str | None, max_age_seconds: float, clock: Callable[[], datetime] = now) -> bool:
    """True when an event is older than ``max_age_seconds``: stop retrying it (ack and log)."""
    if not event_time or max_age_seconds <= 0:
        return False
    try:
        at = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (clock() - at).total_seconds() > max_age_seconds
