"""Appending rows to BigQuery with load jobs, the one way every function writes its records.

Load jobs rather than streaming inserts: no streaming buffer (rows are immediately visible to
DML and exports), no per-row cost, and a job id can make a retried write a no-op on BigQuery.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from pharmaseg.gcp import resources as cloud_resources


def load_ndjson(
    client,
    table_id: str,
    rows: Sequence[dict[str, Any]] | bytes,
    role: str,
    *,
    job_id: str | None = None,
    timeout: float = 300,
) -> Any:
    """Append rows (dicts, or NDJSON bytes) to ``table_id`` with the schema of table ``role``.

    ``load_table_from_file`` rather than ``load_table_from_json``: the latter's multipart
    content type is refused by the local emulator, and both are the same load job on BigQuery.
    """
    from google.cloud import bigquery

    if not isinstance(rows, bytes):
        rows = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        schema=[bigquery.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)],
    )
    job = client.load_table_from_file(io.BytesIO(rows), table_id, job_config=config, job_id=job_id)
    return job.result(timeout=timeout)
