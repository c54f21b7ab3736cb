"""The four events a person hears about, each made into a Notification from the record it leaves.

A retrain decision and a person's promotion or rollback are made from their ``model_versions``
row, a drift check from its report document, a failed batch attempt from its run: the
notification says what the durable record says, and its ``key`` is the record's own identity,
so a redelivery that redoes the work publishes the same key again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pharmaseg.notifications.message import (
    BatchFailed,
    DriftFound,
    Link,
    Mover,
    Notification,
    ProductionChanged,
    VersionHeld,
)
from pharmaseg.reports.objects import REPORT_PATTERN, served_path

PROMOTE = "pharmaseg registry promote {version} --reason '...' --by <you>"
ROLLBACK = "pharmaseg registry rollback --reason '...' --by <you>"


def report_link(label: str, uri: str | None) -> list[Link]:
    """A report's link (none without a report), with the path predict serves it at when it serves it."""
    if not uri:
        return []
    name = uri.removeprefix("gs://").partition("/")[2]
    return [Link(label=label, uri=uri, path=served_path(name) if re.fullmatch(REPORT_PATTERN, name) else None)]


def movers(rows: Iterable[Mapping[str, Any]]) -> list[Mover]:
    """The change log of a ``model_versions`` row (``pipeline.movers_of``), as the message carries it."""
    return [
        Mover(
            country=m["country"],
            from_segment=m["from_segment"],
            to_segment=m["to_segment"],
            market_share=m["market_share"] or 0.0,
        )
        for m in rows
    ]


def _when(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _moved(changes: list[Mover]) -> str:
    if not changes:
        return "no country changes segment"
    share = sum(m.market_share for m in changes)
    named = ", ".join(f"{m.country} ({m.from_segment} -> {m.to_segment}, {m.market_share:.1%})" for m in changes)
    countries = "1 country changes" if len(changes) == 1 else f"{len(changes)} countries change"
    return f"{countries} segment, {share:.1%} of the market: {named}"


def version_held(row: Mapping[str, Any], *, failed_checks: list[str]) -> Notification:
    """A retrain decision ``held``: the version waits for a person, who may promote it."""
    version, production = row["version"], row["production_version"]
    changes = movers(row["movers"])
    share = sum(m.market_share for m in changes)
    title = f"Version {version} held for review" + (
        f": {len(changes)} countries ({share:.1%} of the market) would change segment" if changes else ""
    )
    why = ["its request said never to promote"] if row["policy"] == "never" else []
    why += [f"the gate failed {', '.join(failed_checks)}"] if failed_checks else []
    summary = (
        f"Retraining ({row['reason'] or 'no reason given'}) trained version {version} on window {row['window']}; "
        f"production stays {production or 'unset'}. Held because {' and '.join(why) or row['decision_detail']}. "
        f"Against production, {_moved(changes)}."
    )
    return Notification(
        kind="version_held",
        key=f"version_held:{version}:{row['message_id']}",
        title=title,
        summary=summary,
        occurred_at=_when(row["evaluated_at"]),
        details=VersionHeld(
            version=version,
            production_version=production,
            window=row["window"],
            reason=row["reason"],
            decision_detail=row["decision_detail"],
            failed_checks=list(failed_checks),
            movers=changes,
            message_id=row["message_id"],
        ),
        links=report_link("model report", row.get("report_uri")),
        command=PROMOTE.format(version=version),
    )


_HOW = {
    "promoted": "promoted by the gate",
    "forced": "forced by its retrain request",
    "manual_promotion": "promoted by {by}",
    "rollback": "rolled back by {by}",
}


def production_changed(row: Mapping[str, Any], *, replaced: str | None) -> Notification:
    """A decision that moved production (gate, forced policy, a person's promotion or rollback).

    ``replaced`` is the version production named before, which the row's ``production_version``
    does not say for a redelivery that found its version already promoted.
    """
    version, decision, by = row["version"], row["decision"], row["decided_by"]
    changes = movers(row["movers"])
    how = _HOW[decision].format(by=by)
    title = f"Production changed: {replaced or 'none'} -> {version} ({how})"
    said = f" Why: {row['reason']}." if row["reason"] else ""
    summary = f"Production now serves {version}, {how}.{said} Against {replaced or 'no earlier version'}, " + (
        f"{_moved(changes)}." if replaced else "every country is new."
    )
    return Notification(
        kind="production_changed",
        key=f"production_changed:{version}:{row['message_id']}",
        title=title,
        summary=summary,
        occurred_at=_when(row["evaluated_at"]),
        details=ProductionChanged(
            from_version=replaced,
            to_version=version,
            decision=decision,
            by=by,
            reason=row["reason"],
            movers=changes,
            market_share_moved=min(1.0, sum((m.market_share for m in changes), 0.0)),
            message_id=row["message_id"],
        ),
        links=report_link("model report", row.get("report_uri")),
        command=ROLLBACK if replaced else None,
    )


def drift_found(doc: Mapping[str, Any]) -> Notification:
    """A drift check whose verdict is drift, from its report document (``check_drift.service``)."""
    result, rows, period = doc["result"], doc["rows"], doc["period"]
    features = list(result["drifted_features"])
    moved = ", ".join(features) or "no single feature"
    prediction = bool((result["prediction_drift"] or {}).get("drift"))
    joint = bool((result["joint"] or {}).get("drift"))
    also = [what for what, found in (("segment shares", prediction), ("joint structure", joint)) if found]
    retrain = doc["retrain"]
    return Notification(
        kind="drift_found",
        key=f"drift_found:{doc['report_id']}",
        title=f"Drift found on model {doc['model_version']}: {moved}" + (f" (and {', '.join(also)})" if also else ""),
        summary=(
            f"The drift check of {period['start']} to {period['end']} ({rows['total']} rows) found drift: "
            f"{result['reason']}. Retraining: {retrain['decision']}."
        ),
        occurred_at=_when(doc["run_at"]),
        details=DriftFound(
            report_id=doc["report_id"],
            model_version=doc["model_version"],
            drifted_features=features,
            prediction_drift=prediction,
            joint_drift=joint,
            rows=rows["total"],
            period_start=_when(period["start"]),
            period_end=_when(period["end"]),
            retrain_requested=bool(retrain["requested"]),
        ),
        links=report_link("drift report", doc["report_uri"]),
    )


def batch_failed(
    *, uri: str, generation: int, run_id: str, reason: str, attempt_started_at: datetime, failed_at: datetime
) -> Notification:
    """A failed attempt at a batch run.

    The key is the run's: every attempt at the same file that fails is published (with its own
    reason and start), but it is one event, the file failing, so a consumer that drops duplicates
    hears of the file once, and the alert policy's notifications of it are rate-limited as one.
    """
    return Notification(
        kind="batch_failed",
        key=f"batch_failed:{run_id}",
        title=f"Batch file {uri} failed; it will be delivered again",
        summary=(
            f"Scoring generation {generation} of {uri} (run {run_id}) failed: {reason}. Nothing of this attempt "
            "was committed; the platform redelivers the file's event and the next attempt takes the run over."
        ),
        occurred_at=failed_at,
        details=BatchFailed(
            object=uri, generation=generation, run_id=run_id, reason=reason, attempt_started_at=attempt_started_at
        ),
    )
