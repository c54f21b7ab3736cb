"""The CSV files a run stages: the rows BigQuery loads and the results people open.

Both paths write the scored rows and the rejects as CSV with a header. What people open
(results/<name> and <name>.rejects.csv) goes through the spreadsheet rule
(``pharmaseg.reports.spreadsheet_safety``); what BigQuery loads into ``batch_rejects`` keeps each record
as it came, because that table is the audit record.
"""

from __future__ import annotations

import csv
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from pharmaseg.reports.spreadsheet_safety import safe_cell, safe_table
from pharmaseg.score_batch.retries import retried
from pharmaseg.score_batch.tables import REJECTS_SCHEMA, scored_schema

EXPORT_PAGE_ROWS = 10_000


class CsvOut:
    """Writes scored and rejected blocks (the function path's ``scoring.Output``) to binary streams.

    The scored CSV is both loaded into BigQuery and published: its text cells are the run id, a
    validated country key (it starts with A-Z) and a segment name, which the spreadsheet rule
    never changes; it goes through the rule all the same, so that no cell can bypass it. The
    rejects are written raw for BigQuery and, if ``published_rejects`` is given, a second time
    through the rule for results/<name>.rejects.csv.
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


def export_query_csv(client, sql_text: str, blob, schema: pa.Schema, chunk: int) -> None:
    """Page a query's rows into a CSV object: the function holds one page, however large the file.

    The BigQuery path's CSVs are only ever published (BigQuery keeps the staged rows), so their
    text cells go through the spreadsheet rule here, and are always quoted (a carriage return in
    a cell would otherwise split its record). On BigQuery an extract job would do this without
    the function; the local emulator does not run extract jobs, so the same paging serves both.
    """
    rows = retried(lambda: client.query(sql_text).result(page_size=EXPORT_PAGE_ROWS), what="bigquery read")
    with blob.open("w", chunk_size=chunk, content_type="text/csv", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
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
