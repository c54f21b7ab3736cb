"""One drift check, end to end: what ``functions/check_drift/main.py`` calls.

1. resolve the production model (its training reference is the baseline);
2. count, then bin and sample (or, for small samples, fetch) the period's inputs in BigQuery;
3. compute the statistics (per feature, segment shares, joint structure) and the verdict
   (drift / no_drift / insufficient_data);
4. on drift, and when the policy allows, publish a retrain request - unless one was published
   less than ``cooldown_hours`` ago (the last ``retrain_requested`` row of drift_reports);
5. write the JSON and HTML report to the reports bucket and one row to ``drift_reports``
   (load job);
6. point ``drift/latest.json`` in the reports bucket at this report (what the strategy page shows);
7. log a WARNING with ``event="drift_detected"`` on drift (a log-based metric alerts on it).

A check triggered by a Pub/Sub message uses the message id as its report id, so a redelivered
message finds its own row and does nothing twice.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pharmaseg import bq as bq_load
from pharmaseg import cloud_resources, pubsub
from pharmaseg.config import DriftSettings
from pharmaseg.drift import joint, methods, queries
from pharmaseg.drift import report as reports
from pharmaseg.logs import log
from pharmaseg.report_objects import LATEST_DRIFT
from pharmaseg.runtime import Clients, Event, Unprocessable

RETRAIN_POLICIES = ("auto", "never")
MESSAGE_FIELDS = {"period_start", "period_end", "period_days", "retrain", "reason"}
LATEST_OBJECT = LATEST_DRIFT


# -- the trigger message ---------------------------------------------------------------------------


def _timestamp(value: Any, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise methods.DriftError(f"{name} {value!r} is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_message(data: bytes | str | dict | None) -> dict[str, Any]:
    """The scheduler's message: empty, or JSON with optional overrides.

    ``{"period_start": ISO, "period_end": ISO}`` or ``{"period_days": 3}`` choose the period;
    ``{"retrain": "never"}`` forbids a retrain request for this run; ``reason`` is recorded.
    """
    if data in (None, b"", ""):
        return {}
    if isinstance(data, (bytes, str)):
        try:
            doc = json.loads(data)
        except ValueError:
            raise methods.DriftError("the drift-check message is not JSON") from None
    else:
        doc = data
    if not isinstance(doc, dict):
        raise methods.DriftError("the drift-check message must be a JSON object")
    unknown = sorted(set(doc) - MESSAGE_FIELDS)
    if unknown:
        raise methods.DriftError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MESSAGE_FIELDS))}")
    out: dict[str, Any] = {}
    if "period_start" in doc or "period_end" in doc:
        if "period_days" in doc:
            raise methods.DriftError("give period_start/period_end or period_days, not both")
        if "period_start" not in doc:
            raise methods.DriftError("period_end needs a period_start")
        out["period_start"] = _timestamp(doc["period_start"], "period_start")
        if "period_end" in doc:
            out["period_end"] = _timestamp(doc["period_end"], "period_end")
    if "period_days" in doc:
        days = doc["period_days"]
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not 0 < days <= 366:
            raise methods.DriftError(f"period_days must be a number in (0, 366], got {days!r}")
        out["period_days"] = float(days)
    if "retrain" in doc:
        if doc["retrain"] not in RETRAIN_POLICIES:
            raise methods.DriftError(f"retrain must be auto or never, got {doc['retrain']!r}")
        out["retrain"] = doc["retrain"]
    if "reason" in doc:
        out["reason"] = str(doc["reason"])[:500]
    return out


def period_for(request: dict[str, Any], settings: DriftSettings, now: datetime) -> queries.Period:
    if "period_start" in request:
        return queries.Period(request["period_start"], request.get("period_end", now))
    days = request.get("period_days", settings.drift_period_days)
    return queries.Period(now - timedelta(days=days), now)


# -- cooldown ----------------------------------------------------------------------------------------


def cooldown_decision(last_request: datetime | None, now: datetime, cooldown_hours: float) -> tuple[bool, str]:
    """(allowed, why): a new request is allowed when none was published within the cooldown."""
    if last_request is None:
        return True, "no earlier drift-triggered retrain request"
    until = last_request + timedelta(hours=cooldown_hours)
    if now < until:
        return False, f"cooldown: last request at {last_request.isoformat()}, next allowed after {until.isoformat()}"
    return True, f"last request at {last_request.isoformat()} is older than the {cooldown_hours:g} h cooldown"


def _table(settings: DriftSettings, role: str) -> str:
    return cloud_resources.table_id(settings.project, settings.dataset, role)


def last_retrain_request(bq, settings: DriftSettings) -> datetime | None:
    sql = f"SELECT MAX(run_at) AS last FROM `{_table(settings, 'drift_reports')}` WHERE retrain_requested = TRUE"
    rows = list(bq.query(sql).result())
    last = rows[0]["last"] if rows else None
    if isinstance(last, str):
        last = _timestamp(last, "run_at")
    return last.astimezone(UTC) if last else None


def existing_report(bq, settings: DriftSettings, report_id: str) -> dict[str, Any] | None:
    from google.cloud import bigquery

    sql = (
        f"SELECT report_id, verdict, report_uri, retrain_requested FROM `{_table(settings, 'drift_reports')}`"
        " WHERE report_id = @id LIMIT 1"
    )
    config_ = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", report_id)])
    rows = list(bq.query(sql, job_config=config_).result())
    return dict(rows[0].items()) if rows else None


# -- writing ----------------------------------------------------------------------------------------


def drift_row(doc: dict[str, Any]) -> dict[str, Any]:
    """The drift_reports row of a report document."""
    result = doc["result"]
    return {
        "report_id": doc["report_id"],
        "run_at": doc["run_at"],
        "model_version": doc["model_version"],
        "period_start": doc["period"]["start"],
        "period_end": doc["period"]["end"],
        "rows_online": doc["rows"]["online"],
        "rows_batch": doc["rows"]["batch"],
        "verdict": result["verdict"],
        "features": [
            {
                "feature": f["feature"],
                "method": f["method"],
                "statistic": f["statistic"],
                "p_value": f["p_value"],
                "p_adjusted": f["p_adjusted"],
                "wasserstein": f["wasserstein"],
                "jensen_shannon": f["jensen_shannon"],
                "psi": f["psi"],
                "drift": f["drift"],
            }
            for f in result["features"]
        ],
        "prediction_drift": json.dumps(result["prediction_drift"], sort_keys=True),
        "joint": _joint_row(result.get("joint")),
        "retrain_requested": doc["retrain"]["requested"],
        "report_uri": doc["report_uri"],
    }


def _joint_row(joint_doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not joint_doc:
        return None
    details = joint_doc["details"]
    return {
        "method": joint_doc["method"],
        "n": joint_doc["n"],
        "sampled_from": details.get("sampled_from"),
        "components": joint_doc["components"],
        "recent_error": details.get("recent_error_mean"),
        "reference_error": details.get("reference_error_mean"),
        "statistic": joint_doc["statistic"],
        "p_value": joint_doc["p_value"],
        "p_adjusted": joint_doc["p_adjusted"],
        "drift": joint_doc["drift"],
    }


def latest_pointer(doc: dict[str, Any], bucket: str) -> dict[str, Any]:
    """``drift/latest.json``: the newest check in a few fields, for pages that show the latest verdict."""
    result = doc["result"]
    drifted = list(result.get("drifted_features") or [])
    if (result.get("joint") or {}).get("drift"):
        drifted.append(methods.JOINT_LABEL)
    prefix = f"gs://{bucket}/"
    return {
        "report_id": doc["report_id"],
        "run_at": doc["run_at"],
        "verdict": result["verdict"],
        "reason": result["reason"],
        "drifted_features": drifted,
        "model_version": doc["model_version"],
        "period": doc["period"],
        "report_uri": doc["report_uri"],
        "json_uri": doc["json_uri"],
        "html_object": doc["report_uri"].removeprefix(prefix),
        "json_object": doc["json_uri"].removeprefix(prefix),
    }


def write_latest(gcs, bucket: str, pointer: dict[str, Any], attempts: int = 3) -> bool:
    """Point ``drift/latest.json`` at this check unless a later check already holds it.

    Two checks can finish out of order (a retried message, a manual run next to the scheduled
    one); the pointer keeps the newest ``run_at``. Reads and the write are conditional on the
    generation seen, so a concurrent writer makes this one read and decide again. Returns
    whether the pointer names this check; after ``attempts`` contended rounds it gives up with a
    warning (the other writer's pointer stands) rather than fail a check whose reports are written.
    """
    from google.api_core.exceptions import NotFound, PreconditionFailed

    ours = _timestamp(pointer["run_at"], "run_at")
    body = json.dumps(pointer, indent=1, sort_keys=True)
    for _ in range(attempts):
        current = gcs.bucket(bucket).get_blob(LATEST_OBJECT)
        generation = current.generation if current is not None else 0
        try:
            if current is not None:
                try:
                    held = json.loads(current.download_as_bytes(if_generation_match=generation))
                    if _timestamp(held["run_at"], "run_at") > ours:
                        return False
                except (ValueError, KeyError, TypeError, methods.DriftError):
                    pass  # an unreadable pointer is replaced
            gcs.bucket(bucket).blob(LATEST_OBJECT).upload_from_string(
                body, content_type="application/json", if_generation_match=generation
            )
            return True
        except (NotFound, PreconditionFailed):
            continue
    log("WARNING", f"{LATEST_OBJECT} contended, left to the other writer", event="drift_latest_contended")
    return False


def retrain_message(doc: dict[str, Any], promotion: str) -> dict[str, Any]:
    """The retrain request (schema: pharmaseg.retraining.message), reason naming what drifted."""
    result = doc["result"]
    reason = f"drift detected by check {doc['report_id']} on model {doc['model_version']}: {result['reason']}"
    return {"reason": reason[:500], "promotion": promotion}


def _publish(publisher, project: str, topic: str, message: dict[str, Any], report_id: str) -> str:
    future = publisher.publish(
        publisher.topic_path(project, topic),
        json.dumps(message).encode(),
        origin="check_drift",
        drift_report_id=report_id,
    )
    return future.result(timeout=30)


def _upload(gcs, bucket: str, name: str, body: bytes | str, content_type: str) -> str:
    gcs.bucket(bucket).blob(name).upload_from_string(body, content_type=content_type)
    return f"gs://{bucket}/{name}"


# -- the run ------------------------------------------------------------------------------------------


class DriftService:
    """What ``functions/check_drift`` runs: one check per message, its clients created once.

    Clients default to the real ones (created on first use, following the emulator variables:
    ``runtime.Clients``); tests pass their own.
    """

    event_types = (pubsub.PUBLISHED,)
    refused = "drift_check_rejected"

    def __init__(self, settings: DriftSettings, *, bq=None, gcs=None, publisher=None, registry=None):
        self.settings = settings
        self.policy = methods.DriftPolicy.of(settings)  # settings that conflict stop the function here
        self.clients = Clients(settings.project, storage=gcs, bigquery=bq, publisher=publisher)
        self._registry = registry

    @classmethod
    def deployed(cls, settings: DriftSettings) -> DriftService:
        """The service as the function runs it: real clients, created on first use."""
        return cls(settings)

    @property
    def bq(self):
        return self.clients.bigquery

    @property
    def gcs(self):
        return self.clients.storage

    @property
    def publisher(self):
        return self.clients.publisher

    @property
    def registry(self):
        if self._registry is None:
            from pharmaseg.registry import ModelRegistry

            self._registry = ModelRegistry(self.settings.models_bucket, client=self.gcs)
        return self._registry

    def handle(self, event: Event) -> dict[str, Any]:
        """A Pub/Sub CloudEvent in, a report out.

        Errors that a retry cannot fix (a malformed message, no production model) are
        Unprocessable, so Pub/Sub does not redeliver forever; anything else (BigQuery or GCS
        unavailable) raises, and the subscription's retry policy tries again.
        """
        from pharmaseg.errors import RegistryError

        message_id = None
        try:
            message = pubsub.unwrap(event.data, event.id)
            message_id = message.message_id
            request = parse_message(message.data)
        except (pubsub.MalformedMessageError, methods.DriftError) as exc:
            raise Unprocessable(f"drift check refused: {exc}", message_id=message_id) from exc
        try:
            return self.run(request, message_id=message_id)
        except (RegistryError, methods.DriftError) as exc:  # no production model, a period that ends first...
            raise Unprocessable(
                f"drift check impossible: {exc}", log_event="drift_check_failed", message_id=message_id
            ) from exc

    def run(
        self, request: dict[str, Any] | None = None, *, message_id: str | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """One drift check; returns the report document (also written to GCS and summarised in BigQuery)."""
        request = request or {}
        now = (now or datetime.now(UTC)).astimezone(UTC)
        settings = self.settings
        started = time.perf_counter()
        report_id = f"msg-{message_id}" if message_id else f"run-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        if message_id:
            earlier = existing_report(self.bq, settings, report_id)
            if earlier:
                log(
                    "INFO",
                    f"drift check {report_id} already ran; redelivery ignored",
                    event="drift_check_duplicate",
                    report_id=report_id,
                    verdict=earlier.get("verdict"),
                )
                return {"report_id": report_id, "duplicate": True, **earlier}
        period = period_for(request, settings, now)
        artifact = self.registry.load(self.registry.resolve(settings.model_alias))
        refs = methods.references(artifact.reference, artifact.feature_names)
        policy = self.policy
        recent = queries.fetch_recent(
            self.bq,
            settings.project,
            settings.dataset,
            refs,
            period,
            model_version=artifact.version,
            ks_max_rows=policy.ks_max_rows,
            joint_max_rows=policy.joint_max_rows,
            min_rows=policy.min_rows,
        )
        t0 = time.perf_counter()
        joint_result = None
        if recent.n >= policy.min_rows:
            joint_result = joint.compare(
                joint.JointReference.from_artifact(artifact),
                recent.rows,
                min_rows=policy.min_rows,
                sampled_from=recent.sampled_from,
            )
        result = methods.evaluate(
            refs,
            n=recent.n,
            raw=recent.raw,
            binned=recent.binned,
            segment_shares=artifact.reference.get("segment_shares", []),
            n_ref=int(artifact.reference.get("n", 0)),
            cluster_counts=[recent.cluster_counts.get(i, 0) for i in range(artifact.k)],
            joint=joint_result,
            policy=policy,
        )
        compute_seconds = time.perf_counter() - t0
        base = f"drift/{now:%Y/%m/%d}/{report_id}"
        doc: dict[str, Any] = {
            "report_id": report_id,
            "run_at": now.isoformat(),
            "model_version": artifact.version,
            "model_window": artifact.window,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "rows": {"online": recent.rows_online, "batch": recent.rows_batch, "total": recent.n},
            "path": "raw" if recent.raw is not None else ("binned" if recent.binned is not None else "none"),
            "request": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in request.items()},
            "result": result.to_dict(),
            "report_uri": f"gs://{settings.reports_bucket}/{base}.html",
            "json_uri": f"gs://{settings.reports_bucket}/{base}.json",
        }
        doc["retrain"] = self._retrain_decision(
            doc, result.verdict, request.get("retrain", settings.drift_retrain), now
        )
        doc["timings_s"] = {**{f"query_{k}": v for k, v in recent.query_seconds.items()}, "compute": compute_seconds}
        supports = {}
        for ref in refs:
            if recent.raw is not None:
                values = recent.raw[ref.name]
                supports[ref.name] = (values, [1.0] * len(values))
            elif recent.binned is not None:
                supports[ref.name] = recent.binned[ref.name].support()
        names = [s.name for s in artifact.segments]
        page = reports.to_html(doc, refs, supports, names, joint_result.errors if joint_result else None)
        doc["timings_s"]["total"] = time.perf_counter() - started
        _upload(self.gcs, settings.reports_bucket, f"{base}.html", page, "text/html; charset=utf-8")
        _upload(self.gcs, settings.reports_bucket, f"{base}.json", reports.to_json(doc), "application/json")
        # the pointer before the row: a crash in between leaves no row, so the redelivery redoes both
        write_latest(self.gcs, settings.reports_bucket, latest_pointer(doc, settings.reports_bucket))
        bq_load.load_ndjson(self.bq, _table(settings, "drift_reports"), [drift_row(doc)], "drift_reports")
        fields = dict(
            report_id=report_id,
            verdict=result.verdict,
            model_version=artifact.version,
            rows=recent.n,
            drifted_features=result.drifted_features,
            prediction_drift=bool(result.prediction.get("drift")),
            joint_drift=result.joint_drift,
            retrain_requested=doc["retrain"]["requested"],
            retrain_decision=doc["retrain"]["decision"],
            report_uri=doc["report_uri"],
        )
        if result.verdict == "drift":
            log("WARNING", f"drift detected: {result.reason}", event="drift_detected", **fields)
        else:
            log("INFO", f"drift check: {result.verdict} ({result.reason})", event="drift_check", **fields)
        return doc

    def _retrain_decision(self, doc: dict[str, Any], verdict: str, policy: str, now: datetime) -> dict[str, Any]:
        """Whether this check asks for a retrain: only on drift, under policy auto, outside the cooldown."""
        settings = self.settings
        decision = {"requested": False, "policy": policy, "message_id": None, "decision": "no drift"}
        if verdict != "drift":
            return decision
        if policy != "auto":
            decision["decision"] = f"not requested: policy {policy}"
        elif not settings.retrain_topic:
            decision["decision"] = "not requested: no retrain topic configured"
        else:
            allowed, why = cooldown_decision(
                last_retrain_request(self.bq, settings), now, settings.drift_cooldown_hours
            )
            if allowed:
                message = retrain_message(doc, settings.drift_retrain_promotion)
                published = _publish(
                    self.publisher, settings.project, settings.retrain_topic, message, doc["report_id"]
                )
                decision.update(requested=True, message=message, message_id=published, decision=f"requested ({why})")
            else:
                decision["decision"] = f"not requested: {why}"
        return decision
