"""A country's segment across rolling windows, scored by one model: where it was, and where it is heading.

Each complete window of the model's length is scored as a request would be (nearest centroid,
confidence, runner-up). Between consecutive windows a change of segment is an *upgrade* or a
*downgrade* in the order Declining < Stable < High-Value (numbered stable segments rank alike).

*Watch* is the early warning of a downgrade: over the country's last three windows it stayed in
one segment above Declining, and its margin to the nearest lower segment shrank each time. The
margin is ``1 - d_own / d_lower`` (the confidence's form, taken against the nearest lower-ranked
centroid instead of the runner-up): 0 on the boundary with a lower segment, larger further away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.features import Window
from pharmaseg.model.segments import DECLINING, HIGH_VALUE

UPGRADE, DOWNGRADE = "upgrade", "downgrade"
WATCH_WINDOWS = 3


def rank(segment: str) -> int:
    """Declining 0, any stable segment 1, High-Value 2."""
    return 0 if segment == DECLINING else 2 if segment == HIGH_VALUE else 1


@dataclass(frozen=True)
class ScoredWindow:
    window: str
    segment: str
    cluster: int
    confidence: float
    borderline: bool
    runner_up: str
    margin_to_lower: float | None  # None in the lowest segment
    change: str | None  # upgrade / downgrade from the previous complete window, else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CountryHistory:
    country: str
    model_version: str | None
    windows: list[ScoredWindow]  # oldest first
    watch: bool
    watch_reason: str | None

    @property
    def changes(self) -> list[ScoredWindow]:
        return [w for w in self.windows if w.change]

    def to_dict(self) -> dict[str, Any]:
        return {
            "country": self.country,
            "model_version": self.model_version,
            "windows": [w.to_dict() for w in self.windows],
            "watch": self.watch,
            "watch_reason": self.watch_reason,
        }


def score_windows(
    model: ModelArtifact, windows: list[tuple[Window, list[float]]], *, borderline_below: float
) -> list[ScoredWindow]:
    """Score one country's complete windows (oldest first) with ``model``."""
    if not windows:
        return []
    predictions = model.predict(np.array([row for _, row in windows], dtype=float))
    ranks = np.array([rank(s.name) for s in model.segments])
    scored, previous = [], None
    for i, (window, _) in enumerate(windows):
        distances = predictions.distances[i]
        cluster = int(predictions.clusters[i])
        order = np.argsort(distances)
        runner_up = int(order[1]) if len(order) > 1 else cluster
        lower = distances[ranks < ranks[cluster]]
        margin = float(1.0 - distances[cluster] / lower.min()) if len(lower) and lower.min() > 0 else None
        segment = model.segments[cluster].name
        change = None
        if previous is not None and rank(segment) != rank(previous):
            change = UPGRADE if rank(segment) > rank(previous) else DOWNGRADE
        confidence = float(predictions.confidence[i])
        scored.append(
            ScoredWindow(
                window=str(window),
                segment=segment,
                cluster=cluster,
                confidence=confidence,
                borderline=confidence < borderline_below,
                runner_up=model.segments[runner_up].name,
                margin_to_lower=margin,
                change=change,
            )
        )
        previous = segment
    return scored


def watch(windows: list[ScoredWindow]) -> str | None:
    """Why the country is on watch, or None (see the module's docstring)."""
    last = windows[-WATCH_WINDOWS:]
    if len(last) < WATCH_WINDOWS or len({w.segment for w in last}) > 1 or last[0].margin_to_lower is None:
        return None
    margins = [w.margin_to_lower for w in last]
    if all(later < earlier for earlier, later in zip(margins, margins[1:])):
        shown = " > ".join(f"{m:.2f}" for m in margins)
        return f"margin to a lower segment shrank over {last[0].window} .. {last[-1].window}: {shown}"
    return None


def country_history(
    model: ModelArtifact, country: str, windows: list[tuple[Window, list[float]]], *, borderline_below: float
) -> CountryHistory:
    scored = score_windows(model, windows, borderline_below=borderline_below)
    reason = watch(scored)
    return CountryHistory(country, model.version, scored, reason is not None, reason)
