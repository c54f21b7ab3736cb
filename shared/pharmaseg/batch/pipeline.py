"""One batch run, end to end: object -> claim -> score (in the function or in BigQuery) -> commit.

``process_object`` is what the Cloud Function calls. It never raises for a bad file: such a file
is committed as a ``rejected`` run (and the event acknowledged). It raises only for errors worth
another delivery (transient failures that outlived their retries, a run held by another
attempt), after marking the run ``failed`` so that the retry can claim it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from pharmaseg.artifact import ModelArtifact
from pharmaseg.batch import sql
from pharmaseg.batch.layouts import FEATURES, Layout, detect_layout
from pharmaseg.batch.retries import retried
from pharmaseg.batch.scoring import DEFAULT_BORDERLINE_CONFIDENCE, Counts, score_features, score_panel
from pharmaseg.batch.sink import TERMINAL, BatchSink, now
from pharmaseg.batch.tables import REJECTS_SCHEMA, scored_schema
from pharmaseg.errors import DataValidationError
from pharmaseg.logs import log
from pharmaseg.spreadsheet_safety import safe_cell, safe_table
from pharmaseg.storage_events import ObjectRef, skip_reason

HEAD_BYTES = 64 * 1024
PROGRESS_ROWS = 100_000
_BQ_TYPES = {pa.string(): "STRING", pa.int64(): "INTEGER", pa.float64(): "FLOAT", pa.bool_(): "BOOLEAN"}


@dataclass(frozen=True)
class BatchSettings:
    prefix: str = "incoming/"
    results_prefix: str = "results/"
    staging_prefix: str = "staging/"
    sql_threshold_bytes: int = 100 * 1024 * 1024
    max_panel_bytes: int = 64 * 1024 * 1024
    block_size: int = 4 * 1024 * 1024
    io_chunk_bytes: int = 8 * 1024 * 1024
    raw_limit: int = 1024
    window: str | None = None
    borderline_confidence: float = DEFAULT_BORDERLINE_CONFIDENCE


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


class RejectFile(Exception):
    """The file cannot be scored at all; the run is committed as rejected with this reason."""


class RunBusy(RuntimeError):
    """Another attempt holds this run's lease; raising makes the platform redeliver later."""


class _CsvOut:
    """Writes scored and rejected blocks as CSV (with a header) to binary streams.

    The scored CSV is both loaded into BigQuery and published: its text cells are the run id, a
    validated country key (it starts with A-Z) and a segment name, which the spreadsheet rule
    never changes; it goes through the rule all the same, so that no cell can bypass it. The
    rejects are written raw for BigQuery (the audit record keeps the record as it came) and, if
    ``published_rejects`` is given, a second time through the rule for results/<name>.rejects.csv.
    """

    def __init__(self, scored_stream, rejects_stream, k: int, published_rejects=None):
        self.scored_writer = pcsv.CSVWriter(scored_stream, scored_schema(k))
        self.rejects_writer = pcsv.CSVWriter(rejects_stream, REJECTS_SCHEMA)
        self.published_writer = (
            pcsv.CSVWriter(published_rejects, REJECTS_SCHEMA) if published_rejects is not None else None
        )

    def scored(self, table: pa.Table) -> None:
        if table.num_rows:
            self.scored_writer.write_table(safe_table(table))

    def rejected(self, table: pa.Table) -> None:
        if table.num_rows:
            self.rejects_writer.write_table(table)
            if self.published_writer is not None:
                self.published_writer.write_table(safe_table(table))

    def close(self) -> None:
        self.scored_writer.close()
        self.rejects_writer.close()
        if self.published_writer is not None:
            self.published_writer.close()


def _progress(run_id: str) -> Callable[[Counts], None]:
    """A ``batch_progress`` log line per PROGRESS_ROWS rows read: a long run is seen advancing, and
    a run that died shows how far it got."""
    reported = 0

    def report(counts: Counts) -> None:
        nonlocal reported
        if counts.rows_read // PROGRESS_ROWS > reported:
            reported = counts.rows_read // PROGRESS_ROWS
            log(
                "INFO",
                "batch run progress",
                event="batch_progress",
                run_id=run_id,
                rows_read=counts.rows_read,
                rows_rejected=counts.rows_rejected,
            )

    return report


def bq_schema(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, _BQ_TYPES[f.type]) for f in schema]


def result_name(ref: ObjectRef, settings: BatchSettings, suffix: str = "") -> str:
    relative = ref.name[len(settings.prefix) :] if ref.name.startswith(settings.prefix) else ref.name
    if suffix:
        relative = relative[:-4] + suffix if relative.lower().endswith(".csv") else relative + suffix
    return settings.results_prefix + relative


def process_object(
    ref: ObjectRef,
    *,
    storage,
    sink: BatchSink,
    load_model: Callable[[], ModelArtifact],
    settings: BatchSettings = BatchSettings(),
    hook: Callable[[str], None] | None = None,
) -> RunResult:
    """Score one object generation exactly once (see the module docstring and docs/batch.md)."""
    reason = skip_reason(ref, settings.prefix)
    if reason:
        log("INFO", f"ignored: {reason}", event="batch_ignored", source_uri=ref.uri, generation=ref.generation)
        return RunResult("ignored", error=reason)
    run_id = ref.run_id
    claim = sink.claim(run_id, ref.uri, ref.generation)
    if not claim.owned:
        if claim.status in TERMINAL:
            log("INFO", "duplicate delivery: run already committed", event="batch_duplicate", run_id=run_id)
            return RunResult("duplicate", run_id)
        raise RunBusy(f"run {run_id} is {claim.status} in another attempt (started {claim.started_at})")
    token = claim.started_at
    assert token is not None
    started = time.monotonic()
    log(
        "INFO", "batch run started", event="batch_started", run_id=run_id, source_uri=ref.uri, generation=ref.generation
    )
    run: dict[str, Any] = {"layout": None, "scoring_path": None, "model_version": None}
    try:
        try:
            result = _score(ref, run_id, token, storage, sink, load_model, settings, hook, run, started)
        except (RejectFile, DataValidationError, pa.ArrowInvalid, UnicodeDecodeError) as exc:
            result = _reject(ref, run_id, token, sink, run, started, exc)
    except Exception as exc:
        log("ERROR", "batch run failed; it will be retried", event="batch_failed", run_id=run_id, error=repr(exc))
        try:
            sink.mark_failed(run_id, token, f"{type(exc).__name__}: {exc}")
        except Exception as mark_exc:  # the lease then expires instead
            log("ERROR", "could not mark the run failed", run_id=run_id, error=repr(mark_exc))
        raise
    finally:
        sink.drop_staging(run_id)
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


def _final(run: dict[str, Any], status: str, counts: Counts, started: float, **more: Any) -> dict[str, Any]:
    return {
        **run,
        "status": status,
        "rows_read": counts.rows_read,
        "rows_scored": counts.rows_scored,
        "rows_rejected": counts.rows_rejected,
        "finished_at": now(),
        "duration_ms": round((time.monotonic() - started) * 1000.0, 3),
        **more,
    }


def _reject(ref, run_id, token, sink: BatchSink, run, started, exc) -> RunResult:
    message = str(exc).splitlines()[0][:1000] if str(exc) else type(exc).__name__
    final = _final(run, "rejected", Counts(), started, error=message, results_uri=None)
    committed = sink.commit(run_id, token, final)
    return RunResult("rejected" if committed else "lost", run_id, scoring_path=run.get("scoring_path"), error=message)


def _score(ref, run_id, token, storage, sink, load_model, settings, hook, run, started) -> RunResult:
    from google.api_core.exceptions import NotFound

    bucket = storage.bucket(ref.bucket)
    blob = bucket.blob(ref.name, generation=ref.generation)
    try:
        if ref.size is None:
            blob.reload()
        size = ref.size if ref.size is not None else int(blob.size or 0)
        if size == 0:
            raise RejectFile("the file is empty: expected a header line")
        head = retried(lambda: blob.download_as_bytes(start=0, end=HEAD_BYTES - 1), what="read head")
    except NotFound:
        raise RejectFile(
            f"generation {ref.generation} of {ref.uri} no longer exists (overwritten or deleted)"
        ) from None
    if size == 0 or not head:
        raise RejectFile("the file is empty: expected a header line")
    layout = detect_layout(head)
    run["layout"] = layout.kind
    model = load_model()
    run["model_version"] = model.version
    if layout.kind == FEATURES and size > settings.sql_threshold_bytes:
        run["scoring_path"] = "bigquery"
        return _score_in_bigquery(ref, run_id, token, sink, model, layout, settings, hook, run, started, bucket)
    run["scoring_path"] = "function"
    if layout.kind != FEATURES and size > settings.max_panel_bytes:
        raise RejectFile(f"a raw panel file may have at most {settings.max_panel_bytes} bytes; this one has {size}")
    staged_scored = bucket.blob(f"{settings.staging_prefix}{run_id}/scored.csv")
    staged_rejects = bucket.blob(f"{settings.staging_prefix}{run_id}/rejects.csv")
    published_rejects = bucket.blob(f"{settings.staging_prefix}{run_id}/rejects.published.csv")

    def write_staged() -> Counts:
        chunk = settings.io_chunk_bytes
        with (
            staged_scored.open("wb", chunk_size=chunk, content_type="text/csv") as s_out,
            staged_rejects.open("wb", chunk_size=chunk, content_type="text/csv") as r_out,
            published_rejects.open("wb", chunk_size=chunk, content_type="text/csv") as p_out,
        ):
            out = _CsvOut(s_out, r_out, model.k, p_out)
            if layout.kind == FEATURES:
                with blob.open("rb", chunk_size=chunk) as source:
                    counts = score_features(
                        source,
                        layout,
                        model,
                        run_id,
                        out,
                        block_size=settings.block_size,
                        raw_limit=settings.raw_limit,
                        on_block=_progress(run_id),
                        borderline_confidence=settings.borderline_confidence,
                    )
            else:
                data = blob.download_as_bytes()
                counts = score_panel(
                    data,
                    layout,
                    model,
                    run_id,
                    out,
                    window=settings.window,
                    raw_limit=settings.raw_limit,
                    borderline_confidence=settings.borderline_confidence,
                )
            out.close()
        return counts

    try:
        counts = retried(write_staged, what="score and stage")
    except NotFound:
        raise RejectFile(
            f"generation {ref.generation} of {ref.uri} no longer exists (overwritten or deleted)"
        ) from None
    scored_table = sink.staging(run_id, "scored")
    rejects_table = sink.staging(run_id, "rejects")
    loaded_scored = sink.load_csv(
        f"gs://{ref.bucket}/{staged_scored.name}", scored_table, bq_schema(scored_schema(model.k))
    )
    loaded_rejects = sink.load_csv(f"gs://{ref.bucket}/{staged_rejects.name}", rejects_table, bq_schema(REJECTS_SCHEMA))
    if (loaded_scored, loaded_rejects) != (counts.predictions, counts.rows_rejected):
        raise RuntimeError(
            f"staging loaded {loaded_scored}+{loaded_rejects} rows, "
            f"expected {counts.predictions}+{counts.rows_rejected}"
        )
    if hook:
        hook("loaded")
    return _commit_and_publish(
        ref,
        run_id,
        token,
        sink,
        model,
        settings,
        run,
        started,
        counts,
        bucket,
        (staged_scored, published_rejects),
        [staged_scored, staged_rejects, published_rejects],
        scored_from=f"SELECT * FROM `{scored_table}`",
        rejects_from=f"SELECT * FROM `{rejects_table}`",
        path="function",
        extra={"window": counts.window, "layout": layout.kind},
    )


def _commit_and_publish(
    ref,
    run_id,
    token,
    sink: BatchSink,
    model,
    settings,
    run,
    started,
    counts: Counts,
    bucket,
    published: tuple[Any, Any],
    staged: list[Any],
    *,
    scored_from: str,
    rejects_from: str,
    path: str,
    extra=None,
) -> RunResult:
    """Both paths end alike: one conditional commit of the staged rows, then the results CSVs.

    ``published`` = the staging objects that become results/<name> and <name>.rejects.csv (both
    already through the spreadsheet rule); ``staged`` = every staging object, removed after.
    """
    results_uri = f"gs://{ref.bucket}/{result_name(ref, settings)}"
    final = _final(run, "succeeded", counts, started, error=None, results_uri=results_uri)
    committed = sink.commit(
        run_id,
        token,
        final,
        scored_from=scored_from,
        rejects_from=rejects_from,
        source_uri=ref.uri,
        generation=ref.generation,
        model_version=model.version or "",
        k=model.k,
    )
    if not committed:
        return RunResult("lost", run_id, error="another attempt committed or took over this run")
    _publish_results(bucket, published, staged, ref, settings, counts)
    return RunResult(
        "succeeded",
        run_id,
        counts.rows_read,
        counts.rows_scored,
        counts.rows_rejected,
        path,
        results_uri=results_uri,
        extra=extra or {},
    )


def _publish_results(bucket, published, staged, ref, settings, counts: Counts) -> None:
    """After the commit: results/<name> (and <name>.rejects.csv) for people who do not use BigQuery."""
    scored, rejects = published
    try:
        bucket.copy_blob(scored, bucket, result_name(ref, settings))
        if counts.rows_rejected:
            bucket.copy_blob(rejects, bucket, result_name(ref, settings, ".rejects.csv"))
        for blob in staged:
            blob.delete()
    except Exception as exc:  # the run is committed; BigQuery is the record
        log("WARNING", "could not publish the results CSV", event="batch_results", source_uri=ref.uri, error=repr(exc))


def _score_in_bigquery(
    ref, run_id, token, sink: BatchSink, model, layout: Layout, settings, hook, run, started, bucket
):
    """Large files: BigQuery loads the object itself and scores it with SQL generated from the model."""
    from google.api_core.exceptions import BadRequest

    raw_table = sink.staging(run_id, "raw")
    scored_table = sink.staging(run_id, "scored")
    try:
        rows_read = sink.load_csv(ref.uri, raw_table, [(c, "STRING") for c in layout.columns])
    except BadRequest as exc:
        raise RejectFile(
            f"the BigQuery path needs every row to have the header's {layout.width} fields: {exc.message}"[:1000]
        ) from None
    live = bucket.get_blob(ref.name)
    if live is None or int(live.generation) != ref.generation:
        raise RejectFile(f"generation {ref.generation} of {ref.uri} was replaced while it was being loaded")
    for statement in sql.score_staged_features(
        model,
        raw_table,
        sink.staging(run_id, "checked"),
        scored_table,
        run_id,
        list(layout.columns),
        settings.raw_limit,
        settings.borderline_confidence,
    ):
        sink.query(statement)
    totals = sink.rows(f"SELECT COUNT(*) AS n, COUNTIF(reason IS NULL) AS scored FROM `{scored_table}`")[0]
    counts = Counts(
        rows_read=rows_read, rows_scored=int(totals["scored"]), rows_rejected=int(totals["n"] - totals["scored"])
    )
    if totals["n"] != rows_read:
        raise RuntimeError(f"SQL scoring produced {totals['n']} rows for {rows_read} loaded")
    staged_scored = bucket.blob(f"{settings.staging_prefix}{run_id}/scored.csv")
    staged_rejects = bucket.blob(f"{settings.staging_prefix}{run_id}/rejects.csv")
    scored_columns = scored_schema(model.k).names
    _export_csv(
        sink,
        f"SELECT {', '.join(scored_columns)} FROM `{scored_table}` WHERE reason IS NULL ORDER BY row_number",
        staged_scored,
        scored_schema(model.k),
        settings.io_chunk_bytes,
    )
    _export_csv(
        sink,
        f"SELECT {', '.join(REJECTS_SCHEMA.names)} FROM `{scored_table}` WHERE reason IS NOT NULL ORDER BY row_number",
        staged_rejects,
        REJECTS_SCHEMA,
        settings.io_chunk_bytes,
    )
    if hook:
        hook("loaded")
    return _commit_and_publish(
        ref,
        run_id,
        token,
        sink,
        model,
        settings,
        run,
        started,
        counts,
        bucket,
        (staged_scored, staged_rejects),
        [staged_scored, staged_rejects],
        scored_from=f"SELECT {', '.join(scored_columns)} FROM `{scored_table}` WHERE reason IS NULL",
        rejects_from=f"SELECT {', '.join(REJECTS_SCHEMA.names)} FROM `{scored_table}` WHERE reason IS NOT NULL",
        path="bigquery",
    )


EXPORT_PAGE_ROWS = 10_000


def _export_csv(sink: BatchSink, sql_text: str, blob, schema: pa.Schema, chunk: int) -> None:
    """Page a query's rows into a CSV object: the function holds one page, however large the file.

    The object is only ever published (BigQuery keeps the staged rows), so its text cells go
    through the spreadsheet rule here. (In BigQuery an extract job would do this without the
    function; the local emulator does not run extract jobs, so the same paging code serves both.)
    """
    import csv

    rows = retried(lambda: sink.client.query(sql_text).result(page_size=EXPORT_PAGE_ROWS), what="bigquery read")
    with blob.open("w", chunk_size=chunk, content_type="text/csv", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)  # a CR in a cell is quoted too
        writer.writerow(schema.names)
        text = [i for i, f in enumerate(schema) if pa.types.is_string(f.type)]
        for page in rows.pages:
            for row in page:
                values = [_csv_text(v) for v in row.values()]  # SELECT order = the schema's
                for i in text:
                    values[i] = safe_cell(values[i])
                writer.writerow(values)


def _csv_text(value: Any) -> Any:
    """Booleans as the function path's CSV writes them."""
    return ("true" if value else "false") if isinstance(value, bool) else value


def event_too_old(event_time: str | None, max_age_seconds: float, clock: Callable[[], datetime] = now) -> bool:
    """True when an event is older than ``max_age_seconds``: stop retrying it (ack and log)."""
    if not event_time or max_age_seconds <= 0:
        return False
    try:
        at = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (clock() - at).total_seconds() > max_age_seconds
