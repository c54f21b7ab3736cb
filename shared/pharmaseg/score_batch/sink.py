"""BigQuery bookkeeping of batch runs: claim, staged loads, one atomic commit, failure marks.

Design (see docs/batch.md):

1. **Claim.** A MERGE inserts the run's ``batch_runs`` row as ``running`` with ``started_at`` =
   now, or takes over a ``failed`` run or a ``running`` one whose lease expired. One affected
   row = we own the run, and our ``started_at`` is the fencing token. Zero = someone else has
   it or it is finished (``succeeded``/``rejected``): a duplicate delivery adds nothing.
2. **Stage.** Results are loaded with load jobs (WRITE_TRUNCATE) into per-run staging tables
   ``_batch_stage_<run_id>_*``; nothing a reader sees changes.
3. **Commit.** One multi-statement transaction deletes any rows of the run, inserts the staged
   rows and flips the run row to its final status, every statement guarded by "the run row is
   still running with our token". It all happens or none of it does.

Every statement is safe to send twice (``retries.retried`` does when an answer is lost), and
idempotency never relies on job ids (the emulator accepts a reused job id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pharmaseg.gcp.events import ObjectRef
from pharmaseg.gcp.resources import table_id
from pharmaseg.logs import log
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.score_batch.retries import retried
from pharmaseg.score_batch.scoring import Counts
from pharmaseg.score_batch.sql import literal
from pharmaseg.score_batch.state import RunState, Staged
from pharmaseg.score_batch.tables import EXPLANATION_COLUMNS

TERMINAL = ("succeeded", "rejected")
STAGING_PARTS = ("scored", "rejects", "raw", "checked")


def now() -> datetime:
    return datetime.now(UTC)


def ts_literal(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


@dataclass(frozen=True)
class Claim:
    owned: bool
    status: str | None
    started_at: datetime | None


class BatchSink:
    """The three batch tables of one dataset, and the run protocol's statements over them."""

    def __init__(self, client, project: str, dataset: str, *, lease_seconds: float = 900.0):
        self.client = client
        self.project = project
        self.dataset = dataset
        self.lease_seconds = lease_seconds

    def table(self, role: str) -> str:
        return table_id(self.project, self.dataset, role)

    def staging(self, run_id: str, part: str) -> str:
        return f"{self.project}.{self.dataset}._batch_stage_{run_id}_{part}"

    def query(self, sql: str) -> Any:
        def run():
            job = self.client.query(sql)
            job.result()
            return job

        return retried(run, what="bigquery query")

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return retried(lambda: [dict(r.items()) for r in self.client.query(sql).result()], what="bigquery read")

    # -- 1. claim --------------------------------------------------------------------------------

    def status(self, run_id: str) -> dict[str, Any] | None:
        found = self.rows(f"SELECT * FROM `{self.table('batch_runs')}` WHERE run_id = {literal(run_id)}")
        return found[0] if found else None

    def claim(self, ref: ObjectRef) -> Claim:
        started = now()
        expired = ts_literal(datetime.fromtimestamp(started.timestamp() - self.lease_seconds, UTC))
        token = ts_literal(started)
        run_id = literal(ref.run_id)
        job = self.query(
            f"MERGE `{self.table('batch_runs')}` T USING (SELECT {run_id} AS run_id) S "
            f"ON T.run_id = S.run_id "
            f"WHEN NOT MATCHED THEN INSERT (run_id, source_uri, source_generation, status, started_at) "
            f"VALUES ({run_id}, {literal(ref.uri)}, {ref.generation}, 'running', {token}) "
            f"WHEN MATCHED AND (T.status = 'failed' OR (T.status = 'running' AND T.started_at < {expired})) "
            f"THEN UPDATE SET status = 'running', started_at = {token}, error = NULL"
        )
        if job.num_dml_affected_rows == 1:
            return Claim(True, "running", started)
        current = self.status(ref.run_id)
        if current and current["status"] == "running" and current["started_at"] == started:
            # Our token: this MERGE was a retry (``query`` runs a statement again when its answer
            # was lost) whose first try had claimed the run.
            return Claim(True, "running", started)
        return Claim(False, current["status"] if current else None, current["started_at"] if current else None)

    # -- 2. stage --------------------------------------------------------------------------------

    def load_csv(self, uri: str, table: str, schema: list[tuple[str, str]]) -> int:
        """Load a CSV with a header from ``uri`` into ``table`` (replaced); returns the rows loaded."""
        from google.cloud import bigquery

        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.CSV,
            skip_leading_rows=1,
            allow_quoted_newlines=True,
            max_bad_records=0,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            schema=[bigquery.SchemaField(name, kind) for name, kind in schema],
        )

        def run():
            job = self.client.load_table_from_uri(uri, table, job_config=config)
            job.result()
            return int(job.output_rows or 0)

        return retried(run, what=f"load {uri}")

    def drop_staging(self, run_id: str) -> None:
        for part in STAGING_PARTS:
            try:
                self.client.delete_table(self.staging(run_id, part), not_found_ok=True)
            except Exception as exc:  # staging tables are disposable; never fail a committed run for them
                log("WARNING", "could not drop a staging table", table=self.staging(run_id, part), error=repr(exc))

    # -- 3. commit -------------------------------------------------------------------------------

    def commit(
        self,
        state: RunState,
        status: str,
        staged: Staged | None = None,
        *,
        error: str | None = None,
        results_uri: str | None = None,
    ) -> bool:
        """Publish the staged rows (if any) and the run's final row in one transaction; True if we committed it."""
        rid = literal(state.run_id)
        owner = (
            f"EXISTS (SELECT 1 FROM `{self.table('batch_runs')}` WHERE run_id = {rid} "
            f"AND status = 'running' AND started_at = {ts_literal(state.token)})"
        )
        finished = now()
        at = ts_literal(finished)
        statements = [
            f"DELETE FROM `{self.table('batch_predictions')}` WHERE run_id = {rid} AND {owner}",
            f"DELETE FROM `{self.table('batch_rejects')}` WHERE run_id = {rid} AND {owner}",
        ]
        source = f"{literal(state.ref.uri)}, {state.ref.generation}"
        if staged is not None:
            features = ", ".join(FEATURE_NAMES)
            distances = ", ".join(f"distance_{i}" for i in range(staged.k))
            explanation = ", ".join(EXPLANATION_COLUMNS)
            statements += [
                f"INSERT INTO `{self.table('batch_predictions')}` (run_id, source_uri, source_generation, row_number, "
                f"country, {features}, cluster, segment_name, confidence, distances, model_version, scored_at, "
                f"{explanation}) "
                f"SELECT run_id, {source}, row_number, country, {features}, cluster, segment_name, confidence, "
                f"[{distances}], {literal(state.model_version or '')}, {at}, {explanation} "
                f"FROM ({staged.scored_from}) WHERE run_id = {rid} AND {owner}",
                f"INSERT INTO `{self.table('batch_rejects')}` (run_id, source_uri, source_generation, row_number, "
                f"raw_record, reason, rejected_at) SELECT run_id, {source}, row_number, raw_record, reason, {at} "
                f"FROM ({staged.rejects_from}) WHERE run_id = {rid} AND {owner}",
            ]
        counts = staged.counts if staged is not None else Counts()
        final = {
            "layout": state.layout,
            "scoring_path": state.scoring_path,
            "model_version": state.model_version,
            "status": status,
            "rows_read": counts.rows_read,
            "rows_scored": counts.rows_scored,
            "rows_rejected": counts.rows_rejected,
            "finished_at": finished,
            "duration_ms": state.duration_ms(),
            "error": error,
            "results_uri": results_uri,
        }
        assignments = ", ".join(
            f"{name} = {ts_literal(value) if isinstance(value, datetime) else literal(value)}"
            for name, value in final.items()
        )
        statements.append(
            f"UPDATE `{self.table('batch_runs')}` SET {assignments} WHERE run_id = {rid} "
            f"AND status = 'running' AND started_at = {ts_literal(state.token)}"
        )
        self.query("BEGIN TRANSACTION; " + "; ".join(statements) + "; COMMIT TRANSACTION;")
        row = self.status(state.run_id)
        return bool(row and row["status"] == status and row["started_at"] == state.token)

    def mark_failed(self, state: RunState, error: str) -> None:
        """Record why an attempt failed; the run can be claimed again (by a retry) afterwards."""
        self.query(
            f"UPDATE `{self.table('batch_runs')}` SET status = 'failed', error = {literal(error[:2000])}, "
            f"finished_at = {ts_literal(now())} WHERE run_id = {literal(state.run_id)} AND status = 'running' "
            f"AND started_at = {ts_literal(state.token)}"
        )
