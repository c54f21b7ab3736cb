"""Retrain on request: read data, train, register a candidate and its segment history, gate, promote, report,
record, log.

What is trained: the request's window, else the data's latest complete window as long as
production's (``pharmaseg.model.panel.latest_complete_window``). A request whose data (sha256), window
and parameters are those of an already registered version is recorded ``skipped`` and trains
nothing: it could only register a copy.

Idempotency and races (details in docs/retraining.md):

- The Pub/Sub message id is the registry's idempotency key, so a redelivered message maps to
  the version the first delivery registered (training is deterministic given the request, so
  nothing is lost by re-training before the registry answers). If that version already has a
  decision row for this message id, the redelivery only logs and returns it.
- Promotion is conditional on the production version the gate compared against
  (``expected_version``). The loser of a race gets ConcurrentUpdateError, re-reads production,
  re-runs the gate against the new production and promotes only if it still passes; after
  ``MAX_PROMOTE_ATTEMPTS`` lost races it is held. Every outcome is a row in ``model_versions``.
- The row is written by a BigQuery load job of one NDJSON line with a job id derived from
  (version, message id), after checking that no row for that pair exists.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pharmaseg.errors import ConcurrentUpdateError, PharmasegError
from pharmaseg.logs import log
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.cache import REVIEW
from pharmaseg.model.changes import ModelComparison
from pharmaseg.model.registry import ModelRegistry, training_identity
from pharmaseg.notifications import events
from pharmaseg.notifications.publish import Notifier
from pharmaseg.reports.segment_history import HistoryInput
from pharmaseg.retrain.gate import GateResult, GateThresholds, evaluate
from pharmaseg.retrain.message import RetrainRequest

PRODUCTION = "production"
CANDIDATE = "candidate"
MAX_PROMOTE_ATTEMPTS = 3
PROMOTED, HELD, FORCED, SKIPPED = "promoted", "held", "forced", "skipped"
HELD_FOR_REVIEW = "held for review"


class TrainingFailedError(PharmasegError):
    """The request was valid but its data cannot train a model (missing object, window too short)."""


class DecisionStore(Protocol):
    def find(self, version: str, message_id: str) -> dict[str, Any] | None: ...

    def record(self, row: dict[str, Any]) -> None: ...


class HistoryWriter(Protocol):
    """Writes a model's segment history over a source's windows (``feature_store.HistoryRecorder``)."""

    def record(self, model: ModelArtifact, windows: Any, source_sha256: str) -> int: ...


class ReportPublisher(Protocol):
    """Writes a version's model report (HTML + JSON) and returns the HTML's gs:// URI."""

    def publish(
        self,
        candidate: ModelArtifact,
        production: ModelArtifact | None,
        decision: dict[str, Any],
        *,
        history: HistoryInput | None = None,
    ) -> str: ...


@dataclass
class Decision:
    version: str
    decision: str
    production_version: str | None
    gate: GateResult | None
    detail: str
    row: dict[str, Any] = field(default_factory=dict)
    duplicate: bool = False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- the model_versions table ----------------------------------------------------------------------


class ModelVersionsTable:
    """``model_versions`` in BigQuery: one row per (version, message id), appended by load jobs."""

    def __init__(self, client, table_id: str):
        self.client = client
        self.table_id = table_id

    def find(self, version: str, message_id: str) -> dict[str, Any] | None:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("version", "STRING", version),
                bigquery.ScalarQueryParameter("message_id", "STRING", message_id),
            ]
        )
        sql = f"SELECT * FROM `{self.table_id}` WHERE version = @version AND message_id = @message_id LIMIT 1"
        rows = list(self.client.query(sql, job_config=config).result())
        return dict(rows[0].items()) if rows else None

    def record(self, row: dict[str, Any]) -> None:
        from google.api_core.exceptions import Conflict

        from pharmaseg.gcp.bigquery import load_ndjson

        if self.find(row["version"], row["message_id"]) is not None:
            return
        key = hashlib.sha256(f"{row['version']}\n{row['message_id']}".encode()).hexdigest()[:32]
        try:
            load_ndjson(self.client, self.table_id, [row], "model_versions", job_id=f"model_versions_{key}", timeout=60)
        except Conflict:
            pass  # BigQuery already ran this very load: the row is there


# -- orchestration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """The training data of one request, read once: its bytes' sha256, the validated panel, the bytes
    (a new source file is stored from them too)."""

    uri: str
    sha256: str
    panel: Any  # pharmaseg.model.panel.Panel
    data: bytes = field(repr=False)


def read_source(uri: str, storage_client=None) -> Source:
    """Read and validate the request's data; any data problem is a TrainingFailedError."""
    from pharmaseg.model.panel import read_panel
    from pharmaseg.model.sources import read_bytes, sha256_of

    try:
        data = read_bytes(uri, storage_client)
        return Source(uri, sha256_of(data), read_panel(io.BytesIO(data), strict=True), data)
    except PharmasegError as exc:
        raise TrainingFailedError(f"cannot train on {uri}: {exc}") from None


def training_window(window: str | None, source: Source, production: ModelArtifact | None, thresholds):
    """``window`` if given, else the latest complete window of the data as long as production's."""
    from pharmaseg.model.features import DEFAULT_WINDOW, Window
    from pharmaseg.model.panel import latest_complete_window

    try:
        if window:
            return Window.parse(window)
        years = len(Window.parse(production.window).years) if production is not None else len(DEFAULT_WINDOW.years)
        return latest_complete_window(source.panel, years, thresholds.min_country_ratio)
    except PharmasegError as exc:
        raise TrainingFailedError(f"cannot choose a training window in {source.uri}: {exc}") from None


def _params(request: RetrainRequest) -> dict[str, int]:
    return {"k": request.k, "seed": request.seed, "n_init": request.n_init, "n_bootstrap": request.n_bootstrap}


def train_candidate(request: RetrainRequest, source: Source, window, message_id: str, *, publish_time=None):
    """Train on the request's data and window; data that cannot train is a TrainingFailedError."""
    from pharmaseg.model.panel import panel_features
    from pharmaseg.model.training import TrainingParams, train

    try:
        return train(
            panel_features(source.panel, window),
            TrainingParams(**_params(request)),
            source_uri=source.uri,
            source_sha256=source.sha256,
            rows_read=len(source.panel.rows),
            trigger={
                "kind": "pubsub",
                "message_id": message_id,
                "publish_time": publish_time,
                "reason": request.reason,
                "requested_by": request.requested_by,
                "promotion": request.promotion,
            },
        )
    except PharmasegError as exc:
        raise TrainingFailedError(f"cannot train on {source.uri} window {window}: {exc}") from None


def _point_alias(registry: ModelRegistry, alias: str, version: str, message_id: str) -> None:
    """Move ``alias`` (candidate, or review) to ``version`` unless a newer version already holds it."""
    from pharmaseg.model.cache import parse_version

    for _ in range(5):
        current = registry.alias(alias)
        if current is not None and parse_version(current.version) >= parse_version(version):
            return
        try:
            registry.promote(
                version,
                alias,
                reason=f"retrain {message_id}",
                expected_version=current.version if current else None,
            )
            return
        except ConcurrentUpdateError:
            continue


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null: BigQuery's JSON has no NaN (metrics may come from any artifact)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def movers_of(changes: ModelComparison | None) -> list[dict[str, Any]]:
    """The change log of a decision: every common country whose segment name changes."""
    if changes is None:
        return []
    return [
        {
            "country": m.country,
            "from_segment": m.before,
            "to_segment": m.after,
            "market_share": m.market_share,
            "confidence_before": m.confidence_before,
            "confidence_after": m.confidence_after,
        }
        for m in changes.movers
    ]


def decision_row(
    *,
    version: str,
    decision: str,
    message_id: str,
    detail: str,
    production_version: str | None,
    reason: str | None,
    policy: str | None,
    decided_by: str | None,
    artifact: ModelArtifact | None = None,
    gate: GateResult | None = None,
    report_uri: str | None = None,
    changes: ModelComparison | None = None,
) -> dict[str, Any]:
    """One ``model_versions`` row: every decision about a version (gate, person, skip) has this shape.

    ``changes`` is the comparison against the version replaced; by default the gate's.
    """
    if changes is None and gate is not None:
        changes = gate.comparison
    lineage = artifact.lineage if artifact is not None else {}
    return {
        "version": version,
        "evaluated_at": _now(),
        "decision": decision,
        "reason": reason,
        "policy": policy,
        "message_id": message_id,
        "production_version": production_version,
        "metrics": json.dumps(_json_safe(artifact.metrics), sort_keys=True) if artifact is not None else None,
        "gate": json.dumps(_json_safe(gate.to_dict()) if gate else None),  # checks in the gate's order
        "profile_fit": bool(artifact.metrics.get("profile_fit")) if artifact is not None else None,
        "data_uri": lineage.get("data_uri"),
        "data_sha256": lineage.get("data_sha256"),
        "window": artifact.window if artifact is not None else None,
        "decision_detail": detail,
        "movers": _json_safe(movers_of(changes)),
        "decided_by": decided_by,
        "report_uri": report_uri,
    }


def _held_for_review(gate: GateResult) -> str:
    detail = f"{HELD_FOR_REVIEW}: gate failed: {', '.join(gate.failed)}"
    if gate.comparison is not None and gate.comparison.movers:
        moved = ", ".join(f"{m.country} ({m.market_share:.1%} of market)" for m in gate.comparison.movers)
        detail += f"; moved: {moved}"
    return detail


def decide(
    registry: ModelRegistry,
    candidate: ModelArtifact,
    policy: str,
    thresholds: GateThresholds,
    message_id: str,
    *,
    before_promote: Callable[[], None] | None = None,
    production: ModelArtifact | None = None,
) -> tuple[str, GateResult | None, str, ModelArtifact | None]:
    """Gate the candidate against the current production and promote per ``policy``.

    Returns (decision, gate result of the last evaluation, detail, the production it was judged
    against). ``production`` is the one already loaded, reused while the alias still names it
    (versions never change). ``before_promote`` is a test hook run between the gate and the
    conditional promotion (where races happen).
    """
    notes: list[str] = []
    gate: GateResult | None = None
    for attempt in range(1, MAX_PROMOTE_ATTEMPTS + 1):
        state = registry.alias(PRODUCTION)
        if state is None:
            production = None
        elif production is None or production.version != state.version:
            production = registry.load(state.version)
        if production is not None and production.version == candidate.version:
            gate = evaluate(candidate, production, thresholds)
            decision = FORCED if policy == "force" else PROMOTED
            return decision, gate, "; ".join([*notes, "already production (an earlier delivery promoted it)"]), None
        gate = evaluate(candidate, production, thresholds)
        failed = ", ".join(gate.failed)
        if policy == "never":
            detail = "policy never: registered for inspection" + (f"; gate failed: {failed}" if failed else "")
            return HELD, gate, "; ".join([*notes, detail]), production
        if policy == "auto" and not gate.passed:
            return HELD, gate, "; ".join([*notes, _held_for_review(gate)]), production
        if before_promote is not None:
            before_promote()
        reason = f"retrain {message_id}: " + ("forced" if policy == "force" else "gate passed")
        try:
            registry.promote(
                candidate.version,
                PRODUCTION,
                reason=reason,
                expected_version=production.version if production else None,
            )
        except ConcurrentUpdateError as exc:
            notes.append(f"attempt {attempt}: production moved ({exc}); re-evaluated")
            continue
        if policy == "force":
            forced = "forced" + (f" despite failed checks: {failed}" if failed else "")
            return FORCED, gate, "; ".join([*notes, forced]), production
        return PROMOTED, gate, "; ".join([*notes, "gate passed"]), production
    notes.append(f"held after {MAX_PROMOTE_ATTEMPTS} lost promotion races")
    return HELD, gate, "; ".join(notes), production


def current_production(registry: ModelRegistry) -> ModelArtifact | None:
    state = registry.alias(PRODUCTION)
    return registry.load(state.version) if state else None


def _log_decision(decision: Decision, request: RetrainRequest, message_id: str, window, seconds: float) -> None:
    gate = decision.gate
    log(
        "NOTICE" if decision.decision in (PROMOTED, FORCED) else "WARNING" if decision.decision == HELD else "INFO",
        f"retrain {message_id}: version {decision.version} {decision.decision}"
        + (f" (production was {decision.production_version})" if decision.production_version else "")
        + f": {decision.detail}",
        event="retrain_decision",
        message_id=message_id,
        version=decision.version,
        decision=decision.decision,
        policy=request.promotion,
        production_version=decision.production_version,
        gate_passed=gate.passed if gate else None,
        failed_checks=gate.failed if gate else [],
        movers=decision.row.get("movers", []),
        report_uri=decision.row.get("report_uri"),
        window=str(window),
        seconds=round(seconds, 2),
    )


def retrain(
    request: RetrainRequest,
    message_id: str,
    *,
    registry: ModelRegistry,
    store: DecisionStore,
    thresholds: GateThresholds | None = None,
    storage_client=None,
    reports: ReportPublisher | None = None,
    history: HistoryWriter | None = None,
    publish_time: str | None = None,
    before_promote: Callable[[], None] | None = None,
    notifier: Notifier | None = None,
) -> Decision:
    """Handle one retrain request end to end; safe to call again with the same message id.

    ``history`` receives the registered version's segment history over its training file, before
    the decision is recorded: a redelivery after a crash in between writes it then (it is written
    once per version and file), where one after the record only logs the duplicate.

    A held version and a change of production are notified (``notifier``) before the row is
    recorded, so a crash in between notifies twice rather than never (see ``notify``).
    """
    t0 = time.monotonic()
    thresholds = thresholds or GateThresholds()
    known = registry.version_for_key(message_id)
    if known:
        previous = store.find(known, message_id)
        if previous is not None:
            log(
                "INFO",
                f"retrain {message_id} was already decided: version {known} {previous['decision']}",
                event="retrain_duplicate",
                message_id=message_id,
                version=known,
                decision=previous["decision"],
            )
            return Decision(
                known,
                previous["decision"],
                previous.get("production_version"),
                None,
                "duplicate delivery",
                previous,
                True,
            )
    source = read_source(request.data_uri, storage_client)
    production = current_production(registry)
    window = training_window(request.window, source, production, thresholds)
    if not known:  # a redelivery finishes the version it registered, it is never "no new data"
        same = registry.equivalent(training_identity(source.sha256, str(window), _params(request)))
        if same:
            return _skip(request, message_id, same, production, window, store, time.monotonic() - t0)
    artifact = train_candidate(request, source, window, message_id, publish_time=publish_time)
    version = registry.register(artifact, idempotency_key=message_id)
    candidate = registry.load(version)  # what the registry holds (the first delivery's, on redelivery)
    if history is not None:
        from pharmaseg.feature_store.histories import window_years
        from pharmaseg.model.windows import all_windows

        history.record(candidate, all_windows(source.panel.rows, window_years(candidate)), source.sha256)
    decision, gate, detail, judged_against = decide(
        registry,
        candidate,
        request.promotion,
        thresholds,
        message_id,
        before_promote=before_promote,
        production=production,
    )
    if decision != HELD or (gate is not None and gate.passed):
        # The candidate alias can receive live A/B traffic (PHARMASEG_CANDIDATE_TRAFFIC): only a
        # version that passed the gate (or was forced) may hold it. A held one stays registered.
        _point_alias(registry, CANDIDATE, version, message_id)
    else:
        # A held version is scored in the shadow of production's answers until someone decides
        # (the prediction function reads this alias): live evidence for the review.
        _point_alias(registry, REVIEW, version, message_id)
    production_version = gate.production_version if gate else None
    row = decision_row(
        version=version,
        decision=decision,
        message_id=message_id,
        detail=detail,
        production_version=production_version,
        reason=request.reason,
        policy=request.promotion,
        decided_by="gate" if request.promotion == "auto" else f"policy {request.promotion}",
        artifact=candidate,
        gate=gate,
    )
    if reports is not None:
        row["report_uri"] = reports.publish(candidate, judged_against, row, history=HistoryInput(source.panel.rows))
    if notifier is not None:
        notify(notifier, registry, row, gate)
    store.record(row)
    result = Decision(version, decision, production_version, gate, detail, row)
    _log_decision(result, request, message_id, window, time.monotonic() - t0)
    return result


def replaced_version(registry: ModelRegistry, row: dict[str, Any]) -> str | None:
    """The version a promotion replaced: the row's production version, except for a redelivery that
    found its version already promoted (the gate then compared it with itself), where the alias's
    history names it."""
    if row["production_version"] != row["version"]:
        return row["production_version"]
    state = registry.alias(PRODUCTION)
    history = state.document.get("history") if state else None
    return history[-1]["version"] if history else None


def notify(notifier: Notifier, registry: ModelRegistry, row: dict[str, Any], gate: GateResult | None) -> None:
    """Tell people of a held version or a new production; a skipped request tells nobody anything.

    A failed publish is logged and the decision still recorded (``on_failure="log"``): raising
    would make Pub/Sub redeliver the request, redo the training, and after the subscription's
    attempts dead-letter it without its ``model_versions`` row, losing the decision itself to save
    a message whose log line (and the alert policy on it) was written anyway.
    """
    if row["decision"] == HELD:
        notifier.send(events.version_held(row, failed_checks=gate.failed if gate else []), on_failure="log")
    elif row["decision"] in (PROMOTED, FORCED):
        notification = events.production_changed(row, replaced=replaced_version(registry, row))
        notifier.send(notification, on_failure="log")


def _skip(request, message_id, same: str, production, window, store, seconds: float) -> Decision:
    """Record that a request asked for nothing new, naming the version it would have copied."""
    detail = f"skipped: no new data: the data, window {window} and parameters of version {same}"
    row = decision_row(
        version=same,
        decision=SKIPPED,
        message_id=message_id,
        detail=detail,
        production_version=production.version if production else None,
        reason=request.reason,
        policy=request.promotion,
        decided_by="retrain",
    )
    row["window"] = str(window)
    store.record(row)
    result = Decision(same, SKIPPED, row["production_version"], None, detail, row)
    _log_decision(result, request, message_id, window, seconds)
    return result
