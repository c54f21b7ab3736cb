"""BigQuery SQL for the drift check: count, bin and (for small samples only) fetch recent inputs.

The recent inputs are the union of the online prediction log (the Logging sink's table, one
row per prediction, features under ``jsonPayload.features``) and the batch predictions table
(flat feature columns), restricted to ``[start, end)`` and to the rows the production version
(``@model_version``) answered: what the production model received, as the drift check compares
it with that model's training reference. Rows pinned to another version or served by an A/B
candidate are left out, and right after a promotion the check says ``insufficient_data`` until
the new version has seen enough. Answers to a country code alone (``input_kind`` "stored") are
left out too: their features are the model's own training rows, not what the market sends. A
partial input counts for the features it gives (the others are NULL and skipped per feature;
the joint test takes complete rows only). BigQuery does the work:

1. ``counts_sql``: rows per source and per cluster.
2. ``raw_sql``: the raw feature values, only when the count is at most ``ks_max_rows``; the
   per-feature tests and the joint test both use them.
3. ``binned_sql`` (larger periods): per feature, COUNT/SUM/MIN/MAX grouped by the reference's
   decile bin and by a fine equal-width bin over the reference's range: ``9 x (10 + 66)`` rows
   at most, whatever the number of predictions;
   ``sample_sql``: for the joint test, which needs whole rows, a uniform random sample of at most
   ``joint_max_rows`` complete rows: ``RAND() < @fraction`` keeps a little more than that many
   (row-level, unlike ``TABLESAMPLE``, which samples storage blocks), and ``ORDER BY RAND()
   LIMIT`` trims them to the cap without favouring any part of the period.

The SQL sticks to CASE, FLOOR, CAST, LEAST, COUNT, SUM, MIN, MAX, RAND, UNION ALL, GROUP BY,
ORDER BY and LIMIT so that the local emulator (DuckDB behind a sqlglot translation) runs exactly
what BigQuery runs. Bin edges are the artifact's own floats written as literals (never user
input); the period and the sampling fraction are passed as query parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from pharmaseg.check_drift.methods import FINE_BINS, BinnedSample, DriftError, FeatureReference
from pharmaseg.gcp import resources as cloud_resources

if TYPE_CHECKING:
    from pharmaseg.config import DriftSettings

# Oversampling before the trim: 4 standard deviations of the binomial count above the cap, so a
# sample falls short of the cap about once in 30,000 checks (and then has a few rows fewer).
SAMPLE_MARGIN_SD = 4.0


def timestamp(value: Any, name: str) -> datetime:
    """An ISO 8601 time (a message's, a row's) as an aware datetime; DriftError naming ``name`` if not."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise DriftError(f"{name} {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise DriftError("period bounds must be timezone-aware")
        if self.end <= self.start:
            raise DriftError(f"period end {self.end.isoformat()} is not after its start {self.start.isoformat()}")


@dataclass
class Recent:
    """What BigQuery returned for one period."""

    rows_online: int
    rows_batch: int
    cluster_counts: dict[int, int] = field(default_factory=dict)
    raw: dict[str, np.ndarray] | None = None
    binned: dict[str, BinnedSample] | None = None
    rows: np.ndarray | None = None  # (rows, features), NaN where missing: the joint test's sample
    sampled_from: int | None = None  # set when ``rows`` is a random sample of a larger period
    query_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.rows_online + self.rows_batch


def _literal(value: float) -> str:
    value = float(value)
    if not np.isfinite(value):
        raise DriftError(f"bin edge {value} is not finite")
    return repr(value)


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise DriftError(f"{name!r} is not a plain column name")
    return name


def recent_cte(project: str, dataset: str, features: Sequence[str]) -> str:
    """``WITH recent AS (...)``: the production version's online and batch rows of the period, one shape."""
    log_table = f"`{cloud_resources.table_id(project, dataset, 'predictions_log')}`"
    batch_table = f"`{cloud_resources.table_id(project, dataset, 'batch_predictions')}`"
    online_cols = ", ".join(f"jsonPayload.features.{_ident(f)} AS {f}" for f in features)
    batch_cols = ", ".join(_ident(f) for f in features)
    return (
        "WITH recent AS (\n"
        f"  SELECT 'online' AS source, {online_cols}, jsonPayload.cluster AS cluster\n"
        f"  FROM {log_table}\n"
        "  WHERE timestamp >= @start AND timestamp < @end AND jsonPayload.event = 'prediction'\n"
        "    AND jsonPayload.model_version = @model_version\n"
        "    AND IFNULL(jsonPayload.input_kind, '') != 'stored'\n"
        "  UNION ALL\n"
        f"  SELECT 'batch' AS source, {batch_cols}, cluster\n"
        f"  FROM {batch_table}\n"
        "  WHERE scored_at >= @start AND scored_at < @end AND model_version = @model_version\n"
        ")\n"
    )


def counts_sql(project: str, dataset: str, features: Sequence[str]) -> str:
    """Rows per source and cluster."""
    return recent_cte(project, dataset, features) + (
        "SELECT source, cluster, COUNT(*) AS n\nFROM recent\nGROUP BY 1, 2"
    )


def raw_sql(project: str, dataset: str, features: Sequence[str], limit: int) -> str:
    cols = ", ".join(_ident(f) for f in features)
    return recent_cte(project, dataset, features) + f"SELECT {cols}\nFROM recent\nLIMIT {int(limit)}"


def sample_fraction(n: int, limit: int) -> float:
    """Share of the period's rows that ``RAND() < fraction`` keeps: a little over ``limit``."""
    return min(1.0, (limit + SAMPLE_MARGIN_SD * math.sqrt(limit)) / max(n, 1))


def sample_sql(project: str, dataset: str, features: Sequence[str], limit: int) -> str:
    """At most ``limit`` complete rows, uniformly at random: the joint test's sample of a large period."""
    cols = ", ".join(_ident(f) for f in features)
    complete = " AND ".join(f"{_ident(f)} IS NOT NULL" for f in features)
    return recent_cte(project, dataset, features) + (
        f"SELECT {cols}\nFROM recent\nWHERE {complete} AND RAND() < @fraction\nORDER BY RAND()\nLIMIT {int(limit)}"
    )


def decile_case(column: str, edges: Sequence[float]) -> str:
    """Bin = number of edges <= value, as numpy's ``searchsorted(side="right")``."""
    whens = " ".join(f"WHEN {column} < {_literal(e)} THEN {i}" for i, e in enumerate(edges))
    return f"CASE {whens} ELSE {len(edges)} END"


def fine_case(column: str, ref: FeatureReference) -> str:
    """0 below the reference's range, FINE_BINS + 1 at or above its top, 1..FINE_BINS inside."""
    lo, hi, width = _literal(ref.lo), _literal(ref.hi), _literal(ref.width)
    inner = f"LEAST(CAST(FLOOR(({column} - {lo}) / {width}) AS INT64), {FINE_BINS - 1}) + 1"
    return f"CASE WHEN {column} < {lo} THEN 0 WHEN {column} >= {hi} THEN {FINE_BINS + 1} ELSE {inner} END"


def binned_sql(project: str, dataset: str, refs: Sequence[FeatureReference]) -> str:
    """Per feature and bin kind ('decile' or 'fine'): bin, COUNT, SUM, MIN, MAX."""
    parts = []
    for ref in refs:
        col = _ident(ref.name)
        for kind, case in (("decile", decile_case(col, ref.edges)), ("fine", fine_case(col, ref))):
            parts.append(
                f"SELECT '{col}' AS feature, '{kind}' AS kind, {case} AS bin, COUNT(*) AS n,"
                f" SUM({col}) AS total, MIN({col}) AS lo, MAX({col}) AS hi\n"
                f"FROM recent WHERE {col} IS NOT NULL GROUP BY 1, 2, 3"
            )
    return recent_cte(project, dataset, [r.name for r in refs]) + "\nUNION ALL\n".join(parts)


def _params(period: Period, model_version: str | None, fraction: float | None = None) -> list[Any]:
    from google.cloud import bigquery

    params = [
        bigquery.ScalarQueryParameter("start", "TIMESTAMP", period.start),
        bigquery.ScalarQueryParameter("end", "TIMESTAMP", period.end),
        bigquery.ScalarQueryParameter("model_version", "STRING", model_version or ""),
    ]
    if fraction is not None:
        params.append(bigquery.ScalarQueryParameter("fraction", "FLOAT64", fraction))
    return params


def _run(client, sql: str, period: Period, model_version: str | None, fraction: float | None = None) -> list[Any]:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(query_parameters=_params(period, model_version, fraction))
    return list(client.query(sql, job_config=config).result())


def _matrix(rows, features: Sequence[str]) -> np.ndarray:
    """Query rows as a (rows, features) float array, NaN where a value is missing."""
    return np.array([[np.nan if row[f] is None else row[f] for f in features] for row in rows], dtype=float).reshape(
        -1, len(features)
    )


def fetch_recent(
    client,
    project: str,
    dataset: str,
    refs: Sequence[FeatureReference],
    period: Period,
    *,
    model_version: str | None,
    ks_max_rows: int,
    joint_max_rows: int,
    min_rows: int = 0,
) -> Recent:
    """Count; then fetch raw values (n <= ks_max_rows), or binned counts and a sample of at most
    joint_max_rows rows (larger); nothing below min_rows."""
    import time

    features = [r.name for r in refs]
    t0 = time.perf_counter()
    rows = _run(client, counts_sql(project, dataset, features), period, model_version)
    recent = Recent(rows_online=0, rows_batch=0)
    recent.query_seconds["counts"] = time.perf_counter() - t0
    for row in rows:
        if row["source"] == "online":
            recent.rows_online += int(row["n"])
        else:
            recent.rows_batch += int(row["n"])
        if row["cluster"] is not None and int(row["cluster"]) >= 0:
            cluster = int(row["cluster"])
            recent.cluster_counts[cluster] = recent.cluster_counts.get(cluster, 0) + int(row["n"])
    if recent.n < max(min_rows, 1):
        return recent
    t0 = time.perf_counter()
    if recent.n <= ks_max_rows:
        rows = _run(client, raw_sql(project, dataset, features, ks_max_rows), period, model_version)
        recent.rows = _matrix(rows, features)
        recent.raw = {f: column[~np.isnan(column)] for f, column in zip(features, recent.rows.T)}
        recent.query_seconds["raw"] = time.perf_counter() - t0
        return recent
    rows = _run(client, binned_sql(project, dataset, refs), period, model_version)
    recent.query_seconds["binned"] = time.perf_counter() - t0
    recent.binned = binned_from_rows(refs, rows)
    t0 = time.perf_counter()
    fraction = sample_fraction(recent.n, joint_max_rows)
    rows = _run(client, sample_sql(project, dataset, features, joint_max_rows), period, model_version, fraction)
    recent.rows, recent.sampled_from = _matrix(rows, features), recent.n
    recent.query_seconds["sample"] = time.perf_counter() - t0
    return recent


def binned_from_rows(refs: Sequence[FeatureReference], rows) -> dict[str, BinnedSample]:
    """Assemble BinnedSample objects from the rows of ``binned_sql``."""
    out = {}
    for ref in refs:
        out[ref.name] = BinnedSample(
            n=0,
            decile_counts=np.zeros(len(ref.edges) + 1),
            fine_counts=np.zeros(FINE_BINS + 2),
            fine_sums=np.zeros(FINE_BINS + 2),
        )
    for row in rows:
        sample = out[row["feature"]]
        b, n, total = int(row["bin"]), int(row["n"]), float(row["total"])
        if row["kind"] == "decile":
            sample.decile_counts[b] += n
            sample.n += n
            lo, hi = float(row["lo"]), float(row["hi"])
            sample.minimum = lo if sample.minimum is None else min(sample.minimum, lo)
            sample.maximum = hi if sample.maximum is None else max(sample.maximum, hi)
        else:
            sample.fine_counts[b] += n
            sample.fine_sums[b] += total
    return out


# -- the drift check's own history (drift_reports) --------------------------------------------------


def _reports_table(settings: DriftSettings) -> str:
    return cloud_resources.table_id(settings.project, settings.dataset, "drift_reports")


def last_retrain_request(bq, settings: DriftSettings) -> datetime | None:
    """When the last drift-triggered retrain request was published (the cooldown starts there), or None."""
    sql = f"SELECT MAX(run_at) AS last FROM `{_reports_table(settings)}` WHERE retrain_requested = TRUE"
    rows = list(bq.query(sql).result())
    last = rows[0]["last"] if rows else None
    if isinstance(last, str):
        last = timestamp(last, "run_at")
    return last.astimezone(UTC) if last else None


def existing_report(bq, settings: DriftSettings, report_id: str) -> dict[str, Any] | None:
    """The drift_reports row of ``report_id`` if that check already ran (a redelivered message), else None."""
    from google.cloud import bigquery

    sql = (
        f"SELECT report_id, verdict, report_uri, retrain_requested FROM `{_reports_table(settings)}`"
        " WHERE report_id = @id LIMIT 1"
    )
    config_ = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", report_id)])
    rows = list(bq.query(sql, job_config=config_).result())
    return dict(rows[0].items()) if rows else None
