"""Turn model predictions into the records every consumer shows: API responses, batch rows, logs.

One place defines what an online prediction says (cluster, segment name, recommendation,
confidence, distances), so the HTTP answer and its log line cannot disagree. Batch scoring
writes the same cluster, name, confidence and distances from ``ModelArtifact.predict`` in
its own columnar shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pharmaseg.artifact import ModelArtifact

SMALL_BATCH = 8  # up to this many rows, plain Python beats numpy under a threaded server


def _record(artifact: ModelArtifact, cluster: int, distances: list[float], confidence: float) -> dict[str, Any]:
    segment = artifact.segments[cluster]
    return {
        "cluster": cluster,
        "cluster_name": segment.name,
        "recommendation": segment.recommendation,
        "confidence": round(confidence, 6),
        "distances": {s.name: round(d, 6) for s, d in zip(artifact.segments, distances)},
        "model_version": artifact.version,
    }


def predict_records(artifact: ModelArtifact, rows: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
    """One dict per row: cluster, cluster_name, recommendation, confidence, distances, model_version.

    A few rows go through ``ModelArtifact.nearest`` (plain Python), more through the vectorised
    ``predict``; both give the same answer.
    """
    if len(rows) <= SMALL_BATCH:
        return [_record(artifact, *artifact.nearest(row)) for row in rows]
    predictions = artifact.predict(np.asarray(rows, dtype=float))
    return [
        _record(artifact, cluster, distances, confidence)
        for cluster, distances, confidence in zip(
            predictions.clusters.tolist(), predictions.distances.tolist(), predictions.confidence.tolist()
        )
    ]
