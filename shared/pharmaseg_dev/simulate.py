"""Synthetic recent inputs for validation, tests, the demo and the benchmark.

``sample_features`` draws rows from the training reference: a bootstrap of the training values
(``jitter=0``) or a smoothed version (each drawn value plus Gaussian noise of ``jitter`` times
the feature's std, a kernel density estimate), optionally shifting chosen features by a number
of reference standard deviations. ``decorrelated`` breaks how the features move together and
nothing else: each feature's training values permuted on their own, then rows resampled.
``online_rows`` and ``batch_rows`` wrap them in the two tables' shapes, scored by the artifact so
that the segment shares are what the model would log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from pharmaseg.check_drift.methods import FeatureReference
from pharmaseg.model.artifact import ModelArtifact


def sample_features(
    refs: Sequence[FeatureReference],
    n: int,
    rng: np.random.Generator,
    *,
    jitter: float = 0.0,
    shift: Mapping[str, float] | None = None,
    joint: bool = True,
) -> np.ndarray:
    """(n, features) drawn from the reference; ``joint`` resamples whole countries (rows) together."""
    k = len(refs[0].values)
    rows = rng.integers(0, k, size=n)
    out = np.empty((n, len(refs)))
    for j, ref in enumerate(refs):
        # FeatureReference.values is sorted; the artifact's original order is needed for joint draws.
        values = ref.original if joint and ref.original is not None else ref.values
        idx = rows if joint else rng.integers(0, k, size=n)
        column = values[idx]
        if jitter:
            column = column + rng.normal(0.0, jitter * ref.std, size=n)
        out[:, j] = column + (shift or {}).get(ref.name, 0.0) * ref.std
    return out


def decorrelated(refs: Sequence[FeatureReference], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, features): rows resampled from the training table after permuting each column on its
    own - every feature's values (its marginal) unchanged, their correlations gone."""
    table = np.column_stack([rng.permutation(ref.original) for ref in refs])
    return table[rng.integers(0, len(table), size=n)]


def _iso(t: datetime) -> str:
    return t.isoformat()


def timestamps(n: int, start: datetime, end: datetime, rng: np.random.Generator) -> list[datetime]:
    span = (end - start).total_seconds()
    return [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, span * 0.999, size=n))]


def online_rows(values: np.ndarray, artifact: ModelArtifact, times: Sequence[datetime]) -> Iterator[dict[str, Any]]:
    """Rows of the predictions_log table (the Logging sink's shape), scored by ``artifact``."""
    predictions = artifact.predict(values)
    for i, row in enumerate(values):
        cluster = int(predictions.clusters[i])
        yield {
            "timestamp": _iso(times[i]),
            "severity": "INFO",
            "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
            "jsonPayload": {
                "event": "prediction",
                "country": f"SIM{i}",
                "input_kind": "features",
                "features": dict(zip(artifact.feature_names, map(float, row))),
                "cluster": cluster,
                "cluster_name": artifact.segment(cluster).name,
                "confidence": float(predictions.confidence[i]),
                "model_version": artifact.version,
                "variant": "production",
            },
        }


def batch_rows(
    values: np.ndarray, artifact: ModelArtifact, times: Sequence[datetime], run_id: str = "sim"
) -> Iterator[dict[str, Any]]:
    """Rows of the batch_predictions table, scored by ``artifact`` (distances left out: REPEATED, empty)."""
    predictions = artifact.predict(values)
    names = [s.name for s in artifact.segments]
    for i, row in enumerate(values):
        cluster = int(predictions.clusters[i])
        doc = {
            "run_id": run_id,
            "source_uri": f"gs://sim/{run_id}.csv",
            "source_generation": 1,
            "row_number": i + 1,
            "cluster": cluster,
            "segment_name": names[cluster],
            "confidence": round(float(predictions.confidence[i]), 4),
            "model_version": artifact.version,
            "scored_at": _iso(times[i]),
        }
        doc.update(zip(artifact.feature_names, map(float, row)))
        yield doc


def ndjson(rows) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
