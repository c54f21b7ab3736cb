"""Retrain on request: read data, train, register a candidate, gate, promote, record, log.

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

from pharmaseg.artifact import ModelArtifact
from pharmaseg.errors import ConcurrentUpdateError, PharmasegError
from pharmaseg.logs import log
from pharmaseg.registry import ModelRegistry
from pharmaseg.retraining.gate import GateResult, GateThresholds, evaluate
from pharmaseg.retraining.message import RetrainRequest

PRODUCTION = "production"
CANDIDATE = "candidate"
MAX_PROMOTE_ATTEMPTS = 3
PROMOTED, HELD, FORCED = "promoted", "held", "forced"


class TrainingFailedError(PharmasegError):
    """The request was valid but its data cannot train a model (missing object, window too short)."""


class DecisionStore(Protocol):
    def find(self, version: str, message_id: str) -> dict[str, Any] | None: ...

    def record(self, row: dict[str, Any]) -> None: ...


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

        from pharmaseg.bq import load_ndjson

        if self.find(row["version"], row["message_id"]) is not None:
            return
        key = hashlib.sha256(f"{row['version']}\n{row['message_id']}".encode()).hexdigest()[:32]
        try:
            load_ndjson(self.client, self.table_id, [row], "model_versions", job_id=f"model_versions_{key}", timeout=60)
        except Conflict:
            pass  # BigQuery already ran this very load: the row is there


# -- orchestration ---------------------------------------------------------------------------------


def train_candidate(request: RetrainRequest, message_id: str, *, storage_client=None, publish_time=None):
    """Read the request's data and train; any data problem is a TrainingFailedError."""
    from pharmaseg.features import Window
    from pharmaseg.panel import panel_features, read_panel
    from pharmaseg.sources import read_bytes
    from pharmaseg.training import TrainingParams, sha256_of, train

    try:
        data = read_bytes(request.data_uri, storage_client)
        panel = read_panel(io.BytesIO(data), strict=True)
        table = panel_features(panel, Window.parse(request.window))
        params = TrainingParams(k=request.k, seed=request.seed, n_init=request.n_init, n_bootstrap=request.n_bootstrap)
        return train(
            table,
            params,
            source_uri=request.data_uri,
            source_sha256=sha256_of(data),
            rows_read=len(panel.rows),
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
        raise TrainingFailedError(f"cannot train on {request.data_uri} window {request.window}: {exc}") from None


def _point_candidate(registry: ModelRegistry, version: str, message_id: str) -> None:
    """Move the ``candidate`` alias to ``version`` unless a newer version already holds it."""
    from pharmaseg.registry import parse_version

    for _ in range(5):
        current = registry.alias(CANDIDATE)
        if current is not None and parse_version(current.version) >= parse_version(version):
            return
        try:
            registry.promote(
                version,
                CANDIDATE,
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


def _row(request, message_id, candidate: ModelArtifact, decision: str, gate: GateResult | None, detail: str):
    return {
        "version": candidate.version,
        "evaluated_at": _now(),
        "decision": decision,
        "reason": request.reason,
        "policy": request.promotion,
        "message_id": message_id,
        "production_version": gate.production_version if gate else None,
        "metrics": json.dumps(_json_safe(candidate.metrics), sort_keys=True),
        "gate": json.dumps(gate.to_dict() if gate else None, sort_keys=True),
        "profile_fit": bool(candidate.metrics.get("profile_fit")),
        "data_uri": candidate.lineage.get("data_uri"),
        "data_sha256": candidate.lineage.get("data_sha256"),
        "window": candidate.window,
        "decision_detail": detail,
    }


def decide(
    registry: ModelRegistry,
    candidate: ModelArtifact,
    policy: str,
    thresholds: GateThresholds,
    message_id: str,
    *,
    before_promote: Callable[[], None] | None = None,
) -> tuple[str, GateResult | None, str]:
    """Gate the candidate against the current production and promote per ``policy``.

    Returns (decision, gate result of the last evaluation, detail). ``before_promote`` is a test
    hook run between the gate and the conditional promotion (where races happen).
    """
    notes: list[str] = []
    gate: GateResult | None = None
    for attempt in range(1, MAX_PROMOTE_ATTEMPTS + 1):
        state = registry.alias(PRODUCTION)
        production = registry.load(state.version) if state else None
        if production is not None and production.version == candidate.version:
            gate = evaluate(candidate, production, thresholds)
            decision = FORCED if policy == "force" else PROMOTED
            return decision, gate, "; ".join([*notes, "already production (an earlier delivery promoted it)"])
        gate = evaluate(candidate, production, thresholds)
        failed = ", ".join(gate.failed)
        if policy == "never":
            detail = "policy never: registered for inspection" + (f"; gate failed: {failed}" if failed else "")
            return HELD, gate, "; ".join([*notes, detail])
        if policy == "auto" and not gate.passed:
            return HELD, gate, "; ".join([*notes, f"gate failed: {failed}"])
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
            return FORCED, gate, "; ".join([*notes, "forced" + (f" despite failed checks: {failed}" if failed else "")])
        return PROMOTED, gate, "; ".join([*notes, "gate passed"])
    notes.append(f"held after {MAX_PROMOTE_ATTEMPTS} lost promotion races")
    return HELD, gate, "; ".join(notes)


def retrain(
    request: RetrainRequest,
    message_id: str,
    *,
    registry: ModelRegistry,
    store: DecisionStore,
    thresholds: GateThresholds | None = None,
    storage_client=None,
    publish_time: str | None = None,
    before_promote: Callable[[], None] | None = None,
) -> Decision:
    """Handle one retrain request end to end; safe to call again with the same message id."""
    t0 = time.monotonic()
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
    artifact = train_candidate(request, message_id, storage_client=storage_client, publish_time=publish_time)
    version = registry.register(artifact, idempotency_key=message_id)
    candidate = registry.load(version)  # what the registry holds (the first delivery's, on redelivery)
    decision, gate, detail = decide(
        registry,
        candidate,
        request.promotion,
        thresholds or GateThresholds(),
        message_id,
        before_promote=before_promote,
    )
    if decision != HELD or (gate is not None and gate.passed):
        # The candidate alias can receive live A/B traffic (PHARMASEG_CANDIDATE_TRAFFIC): only a
        # version that passed the gate (or was forced) may hold it. A held one stays registered.
        _point_candidate(registry, version, message_id)
    row = _row(request, message_id, candidate, decision, gate, detail)
    store.record(row)
    log(
        "NOTICE" if decision != HELD else "WARNING",
        f"retrain {message_id}: version {version} {decision}"
        + (f" (production was {gate.production_version})" if gate else "")
        + f": {detail}",
        event="retrain_decision",
        message_id=message_id,
        version=version,
        decision=decision,
        policy=request.promotion,
        production_version=gate.production_version if gate else None,
        gate_passed=gate.passed if gate else None,
        failed_checks=gate.failed if gate else [],
        window=candidate.window,
        seconds=round(time.monotonic() - t0, 2),
    )
    return Decision(version, decision, gate.production_version if gate else None, gate, detail, row)
