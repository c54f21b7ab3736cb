"""What the version under review would have answered over a drift check's period: the shadow record.

The prediction function scores every answer a second time with the version under review and logs
its segment beside production's (``shadow_version``, ``shadow_cluster_name``). Each drift check
reads those lines for its period and summarises them for the person who will decide on that
version: how many requests and countries it saw, how often it disagreed, how much of the market
the disagreement touches (TOTAL_SPEND weights, as the promotion gate weighs movers), and which
countries it would flip. This is evidence from live traffic, where the gate's comparison only has
the training panel.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pharmaseg.check_drift.queries import Period
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model.changes import market_weights


def shadow_sql(project: str, dataset: str) -> str:
    log_table = f"`{cloud_resources.table_id(project, dataset, 'predictions_log')}`"
    return (
        "SELECT jsonPayload.shadow_version AS version, jsonPayload.country AS country,\n"
        "  jsonPayload.cluster_name AS production, jsonPayload.shadow_cluster_name AS shadow, COUNT(*) AS requests\n"
        f"FROM {log_table}\n"
        "WHERE timestamp >= @start AND timestamp < @end AND jsonPayload.event = 'prediction'\n"
        "  AND jsonPayload.model_version = @model_version AND jsonPayload.shadow_version IS NOT NULL\n"
        "GROUP BY version, country, production, shadow"
    )


def fetch(client, project: str, dataset: str, period: Period, production_version: str) -> list[dict[str, Any]]:
    """(version, country, production segment, shadow segment, requests) over the period."""
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("start", "TIMESTAMP", period.start),
            bigquery.ScalarQueryParameter("end", "TIMESTAMP", period.end),
            bigquery.ScalarQueryParameter("model_version", "STRING", production_version),
        ]
    )
    return [dict(row.items()) for row in client.query(shadow_sql(project, dataset), job_config=config).result()]


def newest_version(rows: list[dict[str, Any]]) -> str | None:
    """The period's version under review: the newest one that was shadow scored (an earlier one was
    replaced by a newer hold or candidate during the period)."""
    from pharmaseg.model.cache import parse_version

    versions = {r["version"] for r in rows}
    return max(versions, key=parse_version) if versions else None


def summarise(rows: list[dict[str, Any]], production, shadow) -> dict[str, Any] | None:
    """The shadow record of ``shadow`` (an artifact) over grouped log rows; None when it saw no request."""
    rows = [r for r in rows if r["version"] == shadow.version]
    if not rows:
        return None
    requests = sum(r["requests"] for r in rows)
    per_country: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        per_country[r["country"]][(r["production"], r["shadow"])] += r["requests"]
    countries = sorted(per_country)
    weights, sizes = market_weights(production, shadow, countries)
    total = sum(sizes.values())
    shares = {c: (sizes.get(c, 0.0) / total if total else 0.0) for c in countries}
    disagreeing = {c: sum(n for (a, b), n in pairs.items() if a != b) for c, pairs in per_country.items()}
    flips = []
    for country, pairs in per_country.items():  # a flip: the shadow disagreed on most of the country's requests
        if 2 * disagreeing[country] > sum(pairs.values()):
            (before, after), _ = max(((p, n) for p, n in pairs.items() if p[0] != p[1]), key=lambda x: x[1])
            flips.append({"country": country, "from": before, "to": after, "market_share": shares[country]})
    flips.sort(key=lambda f: (-f["market_share"], f["country"]))
    return {
        "version": shadow.version,
        "production_version": production.version,
        "requests": requests,
        "countries": len(countries),
        "disagreement": sum(disagreeing.values()) / requests,
        "market_weighted_disagreement": sum(
            shares[c] * disagreeing[c] / sum(per_country[c].values()) for c in countries
        ),
        "weights": weights,
        "flips": flips,
    }


def latest_evidence(client, drift_reports_table: str, version: str, *, scan: int = 100) -> dict[str, Any] | None:
    """The newest shadow record about ``version`` among the last ``scan`` drift checks that had one.

    The record is a JSON string column, filtered here rather than in SQL: a few rows, read by a person's
    command, not worth a JSON path function the emulator may not share with BigQuery.
    """
    import json

    sql = f"SELECT shadow FROM `{drift_reports_table}` WHERE shadow IS NOT NULL ORDER BY run_at DESC LIMIT {int(scan)}"
    for row in client.query(sql).result():
        record = json.loads(row["shadow"])
        if record.get("version") == version:
            return record
    return None
