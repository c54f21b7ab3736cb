"""The columns a run writes, the same on both scoring paths: scored rows and rejected rows.

The scored columns are those of the results CSV and of the BigQuery staging table; the rejects
columns those of ``<name>.rejects.csv`` and of the ``batch_rejects`` staging table.
``rejects_table`` is the one place a rejected record becomes a row, whatever rejected it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from pharmaseg.model.explain import TOP_REASONS
from pharmaseg.model.features import FEATURE_NAMES

# The explanation of each prediction (docs/explanations.md, docs/batch.md), flat for spreadsheets.
EXPLANATION_FIELDS: list[tuple[str, pa.DataType]] = [
    ("runner_up_cluster", pa.int64()),
    ("runner_up", pa.string()),
    ("margin", pa.float64()),
    ("what_if_distance", pa.float64()),
    ("borderline", pa.bool_()),
] + [
    field
    for r in range(1, TOP_REASONS + 1)
    for field in ((f"reason_{r}", pa.string()), (f"reason_{r}_share", pa.float64()))
]
EXPLANATION_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EXPLANATION_FIELDS)

REJECTS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("row_number", pa.int64()), ("raw_record", pa.string()), ("reason", pa.string())]
)


def scored_schema(k: int) -> pa.Schema:
    """Columns of the scored CSV (results/<name>) and of the BigQuery staging table (both paths)."""
    return pa.schema(
        [("run_id", pa.string()), ("row_number", pa.int64()), ("country", pa.string())]
        + [(name, pa.float64()) for name in FEATURE_NAMES]
        + [("cluster", pa.int64()), ("segment_name", pa.string()), ("confidence", pa.float64())]
        + [(f"distance_{i}", pa.float64()) for i in range(k)]
        + EXPLANATION_FIELDS
    )


def rejects_table(
    run_id: str, row_numbers: Sequence[int] | np.ndarray, raw_records: Sequence[str | None], reasons: Sequence[str]
) -> pa.Table:
    """Rejected records as rows: each keeps its record number, its raw text and why it was rejected."""
    return pa.table(
        {
            "run_id": [run_id] * len(reasons),
            "row_number": row_numbers,
            "raw_record": raw_records,
            "reason": reasons,
        },
        schema=REJECTS_SCHEMA,
    )


def csv_record(fields: Sequence[object], limit: int) -> str:
    """A record rebuilt from its parsed fields (quoted where CSV needs it), cut to ``limit`` characters."""
    out = []
    for value in fields:
        text = "" if value is None else str(value)
        if any(c in text for c in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out)[:limit]
