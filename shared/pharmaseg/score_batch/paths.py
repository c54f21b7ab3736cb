"""The two scoring paths. Each turns a run's file into staged rows for the commit (``state.Staged``).

- ``in_function``: stream the file from GCS, validate and score it with numpy
  (``scoring``), write the scored and rejects CSVs to staging/<run_id>/, load them into the
  run's staging tables. Memory is bounded by the block size.
- ``in_bigquery`` (features files above ``sql_threshold_bytes``): BigQuery loads the object
  itself, SQL generated from the model scores it (``sql``), the CSVs to publish are paged out.

Neither writes anything a reader of the batch tables sees; the commit does that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from pharmaseg.config import BatchSettings
from pharmaseg.gcp.events import ObjectRef
from pharmaseg.logs import log
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.score_batch import sql
from pharmaseg.score_batch.csv_out import CsvOut, export_query_csv
from pharmaseg.score_batch.layouts import FEATURES, Layout
from pharmaseg.score_batch.retries import retried
from pharmaseg.score_batch.scoring import Counts, score_features, score_panel
from pharmaseg.score_batch.sink import BatchSink
from pharmaseg.score_batch.state import RejectFile, RunState, Staged
from pharmaseg.score_batch.tables import REJECTS_SCHEMA, scored_schema


class StagingRun(Protocol):
    """What the two paths need of a run (``run.BatchRun`` is one): they stage, the run commits."""

    settings: BatchSettings
    sink: BatchSink
    state: RunState
    ref: ObjectRef
    bucket: Any

    def staging_object(self, name: str) -> Any: ...


PROGRESS_ROWS = 100_000
# GCS reads and writes move this much per request: few round trips, bounded memory.
IO_CHUNK_BYTES = 8 * 1024 * 1024
_BQ_TYPES = {pa.string(): "STRING", pa.int64(): "INTEGER", pa.float64(): "FLOAT", pa.bool_(): "BOOLEAN"}


def bq_schema(schema: pa.Schema) -> list[tuple[str, str]]:
    return [(f.name, _BQ_TYPES[f.type]) for f in schema]


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


def in_function(run: StagingRun, source, model: ModelArtifact, layout: Layout) -> Staged:
    """Score ``source`` (the event's generation) in the function and stage the results."""
    from google.api_core.exceptions import NotFound

    settings, sink, run_id = run.settings, run.sink, run.state.run_id
    scored, rejects, published = (run.staging_object(n) for n in ("scored.csv", "rejects.csv", "rejects.published.csv"))

    def write_staged() -> Counts:  # one pass over the file; a retry starts it again from the top
        chunk = IO_CHUNK_BYTES
        with (
            scored.open("wb", chunk_size=chunk, content_type="text/csv") as s_out,
            rejects.open("wb", chunk_size=chunk, content_type="text/csv") as r_out,
            published.open("wb", chunk_size=chunk, content_type="text/csv") as p_out,
        ):
            out = CsvOut(s_out, r_out, model.k, p_out)
            if layout.kind == FEATURES:
                with source.open("rb", chunk_size=chunk) as stream:
                    counts = score_features(
                        stream,
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
                counts = score_panel(
                    source.download_as_bytes(),
                    layout,
                    model,
                    run_id,
                    out,
                    window=settings.window,
                    block_size=settings.block_size,
                    raw_limit=settings.raw_limit,
                    borderline_confidence=settings.borderline_confidence,
                )
            out.close()
        return counts

    try:
        counts = retried(write_staged, what="score and stage")
    except NotFound:
        raise RejectFile.gone(run.ref) from None
    scored_table, rejects_table = sink.staging(run_id, "scored"), sink.staging(run_id, "rejects")
    loaded = (
        sink.load_csv(f"gs://{run.ref.bucket}/{scored.name}", scored_table, bq_schema(scored_schema(model.k))),
        sink.load_csv(f"gs://{run.ref.bucket}/{rejects.name}", rejects_table, bq_schema(REJECTS_SCHEMA)),
    )
    if loaded != (counts.predictions, counts.rows_rejected):
        raise RuntimeError(
            f"staging loaded {loaded[0]}+{loaded[1]} rows, expected {counts.predictions}+{counts.rows_rejected}"
        )
    return Staged(
        counts,
        model.k,
        scored_from=f"SELECT * FROM `{scored_table}`",
        rejects_from=f"SELECT * FROM `{rejects_table}`",
        scored_csv=scored,
        rejects_csv=published,
        objects=(scored, rejects, published),
        extra={"window": counts.window, "layout": layout.kind},
    )


def in_bigquery(run: StagingRun, model: ModelArtifact, layout: Layout) -> Staged:
    """Large files: BigQuery loads the object itself and scores it with SQL generated from the model."""
    from google.api_core.exceptions import BadRequest

    settings, sink, ref, run_id = run.settings, run.sink, run.ref, run.state.run_id
    raw_table, scored_table = sink.staging(run_id, "raw"), sink.staging(run_id, "scored")
    try:
        rows_read = sink.load_csv(ref.uri, raw_table, [(c, "STRING") for c in layout.columns])
    except BadRequest as exc:
        raise RejectFile(
            f"the BigQuery path needs every row to have the header's {layout.width} fields: {exc.message}"[:1000]
        ) from None
    live = run.bucket.get_blob(ref.name)
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
    if totals["n"] != rows_read:
        raise RuntimeError(f"SQL scoring produced {totals['n']} rows for {rows_read} loaded")
    counts = Counts(
        rows_read=rows_read, rows_scored=int(totals["scored"]), rows_rejected=int(totals["n"] - totals["scored"])
    )
    scored_columns = ", ".join(scored_schema(model.k).names)
    rejects_columns = ", ".join(REJECTS_SCHEMA.names)
    scored_from = f"SELECT {scored_columns} FROM `{scored_table}` WHERE reason IS NULL"
    rejects_from = f"SELECT {rejects_columns} FROM `{scored_table}` WHERE reason IS NOT NULL"
    scored, rejects = run.staging_object("scored.csv"), run.staging_object("rejects.csv")
    chunk = IO_CHUNK_BYTES
    export_query_csv(sink.client, f"{scored_from} ORDER BY row_number", scored, scored_schema(model.k), chunk)
    export_query_csv(sink.client, f"{rejects_from} ORDER BY row_number", rejects, REJECTS_SCHEMA, chunk)
    return Staged(
        counts,
        model.k,
        scored_from=scored_from,
        rejects_from=rejects_from,
        scored_csv=scored,
        rejects_csv=rejects,
        objects=(scored, rejects),
    )
