"""A person's decisions: promote a version by hand (e.g. one the gate held for review), roll back.

They leave the same trace as the gate's: a ``model_versions`` row (decision ``manual_promotion``
or ``rollback``, with the reason, who, and the change log against the version replaced), so
the table answers "why does production say what it says" whoever moved it. The movers are
computed and shown before the alias moves, so nobody promotes blind. A move of the production
alias is also notified, like the gate's promotions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pharmaseg.errors import RegistryError
from pharmaseg.model.changes import ModelComparison, compare
from pharmaseg.model.registry import AliasState, ModelRegistry
from pharmaseg.notifications import events
from pharmaseg.notifications.publish import Notifier
from pharmaseg.retrain.pipeline import PRODUCTION, DecisionStore, decision_row

MANUAL_PROMOTION, ROLLBACK = "manual_promotion", "rollback"


@dataclass(frozen=True)
class ManualDecision:
    state: AliasState
    previous: str | None
    changes: ModelComparison | None
    row: dict


def _record(
    store: DecisionStore, notifier, *, version, decision, previous, reason, by, artifact, changes, report_uri, alias
):
    """Record the decision; for the production alias, notify first.

    The alias has already moved, which is the fact people must hear of: the notification goes
    out before the row, so a failing BigQuery still leaves it told. A failed publish only prints
    an error (``on_failure="log"``): the person at the terminal sees it, and raising would hide
    that the alias moved and skip the row.
    """
    detail = f"{decision} of {alias} by {by}: {previous or 'none'} -> {version}"
    row = decision_row(
        version=version,
        decision=decision,
        message_id=f"manual-{uuid.uuid4().hex}",
        detail=detail,
        production_version=previous,
        reason=reason,
        policy="manual",
        decided_by=by,
        artifact=artifact,
        report_uri=report_uri,
        changes=changes,
    )
    row["gate"] = None  # no gate ran: a person decided
    if notifier is not None and alias == PRODUCTION:
        notifier.send(events.production_changed(row, replaced=previous), on_failure="log")
    store.record(row)
    return row


def promote_by_hand(
    registry: ModelRegistry,
    store: DecisionStore,
    version: str,
    *,
    reason: str,
    by: str,
    alias: str = "production",
    report_uri: str | None = None,
    show: Callable[[ModelComparison | None, str | None], None] = lambda changes, previous: None,
    notifier: Notifier | None = None,
) -> ManualDecision:
    """Show what moving ``alias`` to ``version`` changes, move it, and record (and notify) the decision."""
    if not reason.strip():
        raise RegistryError("a promotion by hand needs a reason (--reason)")
    target = registry.load(version)
    current = registry.alias(alias)
    previous = current.version if current else None
    changes = compare(registry.load(previous), target) if previous else None
    show(changes, previous)
    state = registry.promote(version, alias, reason=f"{reason} (by {by})", expected_version=previous)
    row = _record(
        store,
        notifier,
        version=version,
        decision=MANUAL_PROMOTION,
        previous=previous,
        reason=reason,
        by=by,
        artifact=target,
        changes=changes,
        report_uri=report_uri,
        alias=alias,
    )
    return ManualDecision(state, previous, changes, row)


def rollback_by_hand(
    registry: ModelRegistry,
    store: DecisionStore,
    *,
    reason: str,
    by: str,
    alias: str = "production",
    report_uri: Callable[[str], str | None] = lambda version: None,
    show: Callable[[ModelComparison | None, str | None], None] = lambda changes, previous: None,
    notifier: Notifier | None = None,
) -> ManualDecision:
    """Point ``alias`` back at its previous version, showing, recording (and notifying) what that changes."""
    current = registry.alias(alias)
    history = current.document.get("history") if current else None
    if not history:
        raise RegistryError(f"alias {alias} has no previous version to roll back to")
    back_to = history[-1]["version"]
    target = registry.load(back_to)
    changes = compare(registry.load(current.version), target)
    show(changes, current.version)
    state = registry.rollback(alias, reason=f"{reason} (by {by})")
    row = _record(
        store,
        notifier,
        version=state.version,
        decision=ROLLBACK,
        previous=current.version,
        reason=reason,
        by=by,
        artifact=target,
        changes=changes,
        report_uri=report_uri(state.version),
        alias=alias,
    )
    return ManualDecision(state, current.version, changes, row)
