"""One drift check, end to end: what ``functions/check_drift/main.py`` calls.

1. resolve the production model (its training reference is the baseline);
2. count, then bin and sample (or, for small samples, fetch) the period's inputs in BigQuery;
3. compute the statistics (per feature, segment shares, joint structure) and the verdict
   (drift / no_drift / insufficient_data);
4. on drift, and when the policy allows, publish a retrain request - unless one was published
   less than ``cooldown_hours`` ago (the last ``retrain_requested`` row of drift_reports);
5. summarise what the version under review would have answered over the period (``shadow``);
6. write the JSON and HTML report to the reports bucket, and the shadow evidence into the
   reviewed version's model report;
7. point ``drift/latest.json`` in the reports bucket at this report (what the strategy page shows);
8. on drift, notify (``pharmaseg.notifications``): before the row, which is what makes a
   redelivery do nothing, so a crash in between notifies twice instead of never;
9. write the check's row to ``drift_reports`` (load job);
10. rebuild the monitoring page (``monitoring/index.html`` and its JSON twin) from the history in
    BigQuery, this check's row included (``history``, ``reports.monitoring_page``);
11. log a WARNING with ``event="drift_detected"`` on drift (a log-based metric alerts on it).

A check triggered by a Pub/Sub message uses the message id as its report id, so a redelivered
message finds its own row and does nothing twice.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pharmaseg.check_drift import history, joint, methods, queries, retrain, rows, shadow, trigger, verdict
from pharmaseg.check_drift import report as reports
from pharmaseg.check_drift.pointer import latest_pointer, write_latest
from pharmaseg.config import DriftSettings
from pharmaseg.gcp import bigquery as bq_load
from pharmaseg.gcp import pubsub
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.logs import log
from pharmaseg.notifications import events
from pharmaseg.notifications.publish import Notifier
from pharmaseg.reports import monitoring_page
from pharmaseg.reports.model_report import add_shadow_evidence
from pharmaseg.reports.objects import MONITORING_JSON, MONITORING_PAGE
from pharmaseg.runtime import Clients, Event, Unprocessable


def _table(settings: DriftSettings, role: str) -> str:
    return cloud_resources.table_id(settings.project, settings.dataset, role)


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
        self._models = None
        self.notifier = Notifier(settings.project, settings.notifications_topic, publisher=lambda: self.publisher)

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
    def models(self):
        """Production's model, read as predict reads it: verified, through the lean GCS reader
        unless a source (a registry) was given; the drift check never writes the registry."""
        if self._models is None:
            from pharmaseg.model.cache import ModelCache

            if self._registry is None:
                from pharmaseg.gcp.gcs_reader import GcsReader

                self._registry = GcsReader(self.settings.models_bucket)
            self._models = ModelCache(self._registry, ttl_seconds=0)
        return self._models

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
            request = trigger.parse_message(message.data)
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
            earlier = queries.existing_report(self.bq, settings, report_id)
            if earlier:
                log(
                    "INFO",
                    f"drift check {report_id} already ran; redelivery ignored",
                    event="drift_check_duplicate",
                    report_id=report_id,
                    verdict=earlier.get("verdict"),
                )
                return {"report_id": report_id, "duplicate": True, **earlier}
        period = trigger.period_for(request, settings, now)
        artifact = self.models.alias(settings.model_alias)
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
        result = verdict.evaluate(
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
        doc["shadow"] = self._shadow(period, artifact)
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
        if doc["shadow"]:
            doc["shadow"]["report_id"] = report_id
            add_shadow_evidence(self.gcs, settings.reports_bucket, doc["shadow"])
        # the pointer before the row: a crash in between leaves no row, so the redelivery redoes both
        write_latest(self.gcs, settings.reports_bucket, latest_pointer(doc, settings.reports_bucket))
        if result.verdict == "drift":
            # A failed publish raises: Pub/Sub redelivers the check, which is cheap to redo and keyed
            # on its message (the same report id, the same notification key, the retrain request it
            # asked for deduplicated by that report id). The retrain request already depends on
            # Pub/Sub in the same way, and a drift nobody hears of is what the notification is for.
            self.notifier.send(events.drift_found(doc), on_failure="raise")
        bq_load.load_ndjson(self.bq, _table(settings, "drift_reports"), [rows.drift_row(doc)], "drift_reports")
        self._rebuild_monitoring(artifact, now, report_id)
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

    def _shadow(self, period, production) -> dict[str, Any] | None:
        """The period's shadow record (``check_drift.shadow``), or None when no version was under review.

        The record is evidence for a person's review, never part of the verdict: a version under review
        that cannot be read is logged and the check goes on without it.
        """
        settings = self.settings
        rows = shadow.fetch(self.bq, settings.project, settings.dataset, period, production.version)
        version = shadow.newest_version(rows)
        if version is None:
            return None
        try:
            reviewed = self.models.version(version)
        except Exception as exc:
            log("WARNING", f"shadow version {version} cannot be read: {exc!r}"[:500], event="shadow_unreadable")
            return None
        record = shadow.summarise(rows, production, reviewed)
        if record is not None:
            record.update(period_start=period.start.isoformat(), period_end=period.end.isoformat())
        return record

    def _rebuild_monitoring(self, production, now: datetime, report_id: str) -> None:
        """Rebuild the monitoring page from the last ``monitoring_days`` of history, this check's row included.

        The page is a view for people; the check's own work (verdict, report, row, retrain request) is
        done by now. A page that cannot be rebuilt (a query refused, a table not created yet, the bucket
        not writable) is logged as a WARNING and the check still succeeds: raising would only make
        Pub/Sub redeliver the message, and the redelivery finds its row and stops before this step, so
        it could not rebuild the page either. The page stays as the previous check left it until the next.
        """
        settings = self.settings
        try:
            since = now - timedelta(days=settings.monitoring_days)
            found = history.fetch(self.bq, settings.project, settings.dataset, since, now)
            doc = history.document(
                found,
                since=since,
                until=now,
                production=production,
                alpha=self.policy.alpha,
                correction=self.policy.correction,
                built_by=report_id,
            )
            _upload(self.gcs, settings.reports_bucket, MONITORING_JSON, reports.to_json(doc), "application/json")
            page = monitoring_page.to_html(doc)
            _upload(self.gcs, settings.reports_bucket, MONITORING_PAGE, page, "text/html; charset=utf-8")
        except Exception as exc:
            log(
                "WARNING",
                f"monitoring page not rebuilt: {exc!r}"[:500],
                event="monitoring_page_failed",
                report_id=report_id,
            )

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
            allowed, why = retrain.cooldown_decision(
                queries.last_retrain_request(self.bq, settings), now, settings.drift_cooldown_hours
            )
            if allowed:
                message = retrain.retrain_message(doc, settings.drift_retrain_promotion)
                published = retrain.publish(
                    self.publisher, settings.project, settings.retrain_topic, message, doc["report_id"]
                )
                decision.update(requested=True, message=message, message_id=published, decision=f"requested ({why})")
            else:
                decision["decision"] = f"not requested: {why}"
        return decision
