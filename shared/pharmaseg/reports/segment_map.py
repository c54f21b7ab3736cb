"""The 2-D map of a model's training countries: the first two principal components of their
standardized features.

Nine features cannot be drawn; their two main directions can, and on the OECD data they hold
about half of the variance, enough for a person to see which countries sit together and which
sit between segments. The model report and the strategy page draw the same map, so both call
this one function (numpy only: the page is served by the prediction function).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pharmaseg.model.artifact import ModelArtifact


@dataclass(frozen=True)
class SegmentMap:
    countries: list[str]
    x: list[float]
    y: list[float]
    clusters: list[int]
    variance_ratio: tuple[float, float]  # share of the standardized variance on each axis
    centroids: list[tuple[float, float]]  # each segment's centroid on the same axes


def segment_map(artifact: ModelArtifact) -> SegmentMap:
    """Project the training countries (and the centroids) on the first two principal components.

    Signs of principal components are arbitrary; each axis is oriented so that its largest
    loading is positive, which keeps the picture the same from one call (or version) to the next.
    """
    countries, rows = artifact.training_rows()
    if len(countries) < 3:
        raise ValueError("a segment map needs at least three training countries")
    z = artifact.scale(rows)
    centre = z.mean(axis=0)
    _, singular, axes = np.linalg.svd(z - centre, full_matrices=False)
    axes = axes[:2]
    axes *= np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    points = (z - centre) @ axes.T
    variance = singular**2 / np.sum(singular**2)
    centroids = (artifact.centroids - centre) @ axes.T
    return SegmentMap(
        countries=countries,
        x=points[:, 0].tolist(),
        y=points[:, 1].tolist(),
        clusters=[artifact.assignments[c] for c in countries],
        variance_ratio=(float(variance[0]), float(variance[1])),
        centroids=[(float(a), float(b)) for a, b in centroids],
    )
