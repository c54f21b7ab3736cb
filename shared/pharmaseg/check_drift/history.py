"""The monitoring page's history: what the drift checks, batch runs and promotion decisions of the
last days left in BigQuery, gathered into one document (``reports.monitoring_page`` draws it).

Gathered here, by the drift check, because the prediction function must answer without querying
BigQuery (a query per page view costs seconds and money, and the function has no BigQuery role):
each check rebuilds the page once, after its own row is written, and the function streams it.

Everything that happens in a period is counted against the drift check of that period, because
that check's report is where a person goes next: each point of the page links to it. The segment
counts take the rows the check itself took (production's answers, a code alone left out, see
``queries.recent_cte``), so the page's online and batch counts add up to the report's rows; a batch
run belongs to the period its start falls in, with every reject of that run. A reject's kind is
the field its reason names first (``USD_CAP_avg: 'x' is not a number`` -> ``USD_CAP_avg``): the
full reasons quote the rejected values, one kind per bad row.

The SQL keeps to range joins, CASE, STRPOS, SUBSTR, IFNULL and aggregates, which the local
emulator runs as BigQuery does; the shadow record (a JSON string column) is parsed here. The
period's bounds are passed as parameters so that BigQuery prunes the partitions it reads.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from pharmaseg.gcp import resources as cloud_resources

# Decisions after which production serves the row's version (a rollback row names the version
# production went back to); held and skipped leave production where it was.
PRODUCTION_CHANGES = ("promoted", "forced", "manual_promotion", "rollback")
FORMAT = "pharmaseg.check_drift.history/v1"


def _table(project: str, dataset: str, role: str) -> str:
    return f"`{cloud_resources.table_id(project, dataset, role)}`"


def _checks_cte(project: str, dataset: str) -> str:
    return (
        "WITH checks AS (\n"
        "  SELECT report_id, model_version, period_start, period_end\n"
        f"  FROM {_table(project, dataset, 'drift_reports')}\n"
        "  WHERE run_at >= @since AND run_at <= @until\n"
        ")\n"
    )


def checks_sql(project: str, dataset: str) -> str:
    """Every drift check run in [@since, @until], oldest first."""
    return (
        "SELECT report_id, run_at, model_version, period_start, period_end, rows_online, rows_batch, verdict,\n"
        "  features, joint, retrain_requested, report_uri, shadow\n"
        f"FROM {_table(project, dataset, 'drift_reports')}\n"
        "WHERE run_at >= @since AND run_at <= @until\n"
        "ORDER BY run_at, report_id"
    )


def segments_sql(project: str, dataset: str) -> str:
    """Per check, source (online, batch) and segment: the rows the check took; @first/@last bound the periods."""
    return _checks_cte(project, dataset) + (
        "SELECT c.report_id, 'online' AS source, p.jsonPayload.cluster_name AS segment, COUNT(*) AS n\n"
        f"FROM checks c JOIN {_table(project, dataset, 'predictions_log')} p\n"
        "  ON p.timestamp >= c.period_start AND p.timestamp < c.period_end\n"
        "  AND p.jsonPayload.model_version = c.model_version\n"
        "WHERE p.timestamp >= @first AND p.timestamp < @last AND p.jsonPayload.event = 'prediction'\n"
        "  AND IFNULL(p.jsonPayload.input_kind, '') != 'stored'\n"
        "GROUP BY 1, 2, 3\n"
        "UNION ALL\n"
        "SELECT c.report_id, 'batch' AS source, b.segment_name AS segment, COUNT(*) AS n\n"
        f"FROM checks c JOIN {_table(project, dataset, 'batch_predictions')} b\n"
        "  ON b.scored_at >= c.period_start AND b.scored_at < c.period_end AND b.model_version = c.model_version\n"
        "WHERE b.scored_at >= @first AND b.scored_at < @last\n"
        "GROUP BY 1, 2, 3"
    )


def batch_runs_sql(project: str, dataset: str) -> str:
    """Per check: batch files started in its period, rows they read, files that did not succeed."""
    return _checks_cte(project, dataset) + (
        "SELECT c.report_id, COUNT(*) AS files, SUM(IFNULL(u.rows_read, 0)) AS rows_read,\n"
        "  SUM(CASE WHEN u.status = 'succeeded' THEN 0 ELSE 1 END) AS unscored_files\n"
        f"FROM checks c JOIN {_table(project, dataset, 'batch_runs')} u\n"
        "  ON u.started_at >= c.period_start AND u.started_at < c.period_end\n"
        "WHERE u.started_at >= @first AND u.started_at < @last\n"
        "GROUP BY 1"
    )


def rejects_sql(project: str, dataset: str) -> str:
    """Per check and kind (the field a reason names first): the rejected rows of the period's runs."""
    kind = "CASE WHEN STRPOS(r.reason, ':') > 0 THEN SUBSTR(r.reason, 1, STRPOS(r.reason, ':') - 1) ELSE r.reason END"
    return _checks_cte(project, dataset) + (
        f"SELECT c.report_id, {kind} AS kind, COUNT(*) AS n\n"
        f"FROM checks c JOIN {_table(project, dataset, 'batch_runs')} u\n"
        "  ON u.started_at >= c.period_start AND u.started_at < c.period_end\n"
        f"JOIN {_table(project, dataset, 'batch_rejects')} r ON r.run_id = u.run_id\n"
        "WHERE u.started_at >= @first AND u.started_at < @last AND r.rejected_at >= @first\n"
        "GROUP BY 1, 2"
    )


def decisions_sql(project: str, dataset: str) -> str:
    """Every decision in [@since, @until], and the last one before @since that changed production
    (which version served when the window opened)."""
    columns = "version, evaluated_at, decision, reason, policy, production_version, decision_detail, decided_by, movers"
    changes = ", ".join(f"'{d}'" for d in PRODUCTION_CHANGES)
    table = _table(project, dataset, "model_versions")
    return (
        f"SELECT * FROM (SELECT {columns} FROM {table}\n"
        f"  WHERE evaluated_at < @since AND decision IN ({changes}) ORDER BY evaluated_at DESC LIMIT 1)\n"
        "UNION ALL\n"
        f"SELECT {columns} FROM {table} WHERE evaluated_at >= @since AND evaluated_at <= @until\n"
    )


def _query(client, sql: str, **params: datetime) -> list[dict[str, Any]]:
    from google.cloud import bigquery

    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter(name, "TIMESTAMP", value) for name, value in params.items()]
    )
    return [dict(row.items()) for row in client.query(sql, job_config=config).result()]


def fetch(client, project: str, dataset: str, since: datetime, until: datetime) -> dict[str, list[dict[str, Any]]]:
    """The rows the page is drawn from, per query; the periods' bounds come from the checks found."""
    rows = {"checks": _query(client, checks_sql(project, dataset), since=since, until=until)}
    rows["decisions"] = _query(client, decisions_sql(project, dataset), since=since, until=until)
    if rows["checks"]:
        bounds = {
            "since": since,
            "until": until,
            "first": min(c["period_start"] for c in rows["checks"]),
            "last": max(c["period_end"] for c in rows["checks"]),
        }
        for name, sql in (("segments", segments_sql), ("batch", batch_runs_sql), ("rejects", rejects_sql)):
            rows[name] = _query(client, sql(project, dataset), **bounds)
    return rows


# -- the document -----------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _check(row: dict[str, Any], segments, batch, rejects) -> dict[str, Any]:
    joint = row.get("joint")
    report_id = row["report_id"]
    return {
        "report_id": report_id,
        "run_at": _iso(row["run_at"]),
        "period_start": _iso(row["period_start"]),
        "period_end": _iso(row["period_end"]),
        "model_version": row["model_version"],
        "verdict": row["verdict"],
        "rows": {"online": row["rows_online"] or 0, "batch": row["rows_batch"] or 0},
        "p_adjusted": {f["feature"]: f["p_adjusted"] for f in row.get("features") or []},
        "joint": None
        if not joint
        else {"p_adjusted": joint["p_adjusted"], "statistic": joint["statistic"], "drift": joint["drift"]},
        "retrain_requested": bool(row["retrain_requested"]),
        "report_uri": row["report_uri"],
        "segments": {
            source: {r["segment"]: r["n"] for r in segments if r["report_id"] == report_id and r["source"] == source}
            for source in ("online", "batch")
        },
        "batch": {
            "files": batch.get("files", 0),
            "unscored_files": batch.get("unscored_files", 0),
            "rows_read": batch.get("rows_read", 0),
            "rejects": {r["kind"]: r["n"] for r in rejects if r["report_id"] == report_id},
        },
        "shadow": json.loads(row["shadow"]) if row.get("shadow") else None,
    }


def _decision(row: dict[str, Any]) -> dict[str, Any]:
    movers = [
        {k: m[k] for k in ("country", "from_segment", "to_segment", "market_share")} for m in row.get("movers") or []
    ]
    return {
        "version": row["version"],
        "evaluated_at": _iso(row["evaluated_at"]),
        "decision": row["decision"],
        "reason": row["reason"],
        "policy": row["policy"],
        "decided_by": row["decided_by"],
        "production_version": row["production_version"],
        "detail": row["decision_detail"],
        "movers": movers,
        "moved_share": sum(m["market_share"] or 0.0 for m in movers),
    }


def _serving(first: str | None, decisions: list[dict[str, Any]], since: datetime, until: datetime, current: str):
    """Which version production served from when to when: the version of the last change before the
    window, then one stretch per decision that moved production. Without an earlier change on record
    the window opens with what production was at its first decision (every decision records it), or,
    with no decision at all, with the version serving now."""
    changes = [d for d in decisions if d["decision"] in PRODUCTION_CHANGES]
    if first is None:
        first = decisions[0]["production_version"] if decisions else current
    stretches = [{"version": first, "from": since, "decision": None}] if first else []
    for d in changes:
        stretches.append({"version": d["version"], "from": d["evaluated_at"], "decision": d["decision"]})
    ends = [s["from"] for s in stretches[1:]] + [until]
    return [{**s, "from": _iso(s["from"]), "to": _iso(end)} for s, end in zip(stretches, ends)]


def document(
    rows: dict[str, list[dict[str, Any]]],
    *,
    since: datetime,
    until: datetime,
    production,
    alpha: float,
    correction: str,
    built_by: str,
) -> dict[str, Any]:
    """The page's document (its JSON twin) from ``fetch``'s rows; ``production`` is the serving artifact."""
    batch = {r["report_id"]: r for r in rows.get("batch", [])}
    before = [r["version"] for r in rows["decisions"] if r["evaluated_at"] < since]
    within = sorted((r for r in rows["decisions"] if r["evaluated_at"] >= since), key=lambda r: r["evaluated_at"])
    names = [s.name for s in production.segments]
    shares = production.reference.get("segment_shares") or []
    return {
        "format": FORMAT,
        "built_by": built_by,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "days": (until - since) / timedelta(days=1),
        "policy": {"alpha": alpha, "correction": correction},
        "production": {
            "version": production.version,
            "window": production.window,
            "training_shares": dict(zip(names, map(float, shares))),
        },
        "serving": _serving(before[0] if before else None, within, since, until, production.version),
        "features": list(production.feature_names),
        "checks": [
            _check(r, rows.get("segments", []), batch.get(r["report_id"], {}), rows.get("rejects", []))
            for r in rows["checks"]
        ],
        "decisions": [_decision(r) for r in within],
    }
