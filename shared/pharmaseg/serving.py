"""Turn model predictions into the records every consumer shows: API responses, batch rows, logs.

One place defines what an online prediction says (cluster, segment name, recommendation,
confidence, distances), so the HTTP answer and its log line cannot disagree. Batch scoring
writes the same cluster, name, confidence and distances from ``ModelArtifact.predict`` in
its own columnar shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pharmaseg.artifact import ModelArtifact, Predictions


def prediction_records(artifact: ModelArtifact, predictions: Predictions) -> list[dict[str, Any]]:
    """One dict per row: cluster, cluster_name, recommendation, confidence, distances, model_version."""
    names = [s.name for s in artifact.segments]
    recommendations = [s.recommendation for s in artifact.segments]
    return [
        {
            "cluster": cluster,
            "cluster_name": names[cluster],
            "recommendation": recommendations[cluster],
            "confidence": round(confidence, 6),
            "distances": {name: round(d, 6) for name, d in zip(names, distances)},
            "model_version": artifact.version,
        }
        for cluster, confidence, distances in zip(
            predictions.clusters.tolist(), predictions.confidence.tolist(), predictions.distances.tolist()
        )
    ]


def predict_records(artifact: ModelArtifact, values: np.ndarray) -> list[dict[str, Any]]:
    return prediction_records(artifact, artifact.predict(values))
