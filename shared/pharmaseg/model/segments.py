"""Segment names from what a centroid looks like, never from its k-means index.

Cluster ids are arbitrary and change between fits. The names carry the business meaning, so
they are derived from each centroid's profile in standardized units:

- growth score: mean of the three ``*_growth`` coordinates;
- level score: mean of the three ``*_avg`` coordinates.

The segment with the lowest growth score is "Declining Markets"; of the others, the one with
the highest level score is "High-Value Pharma Markets"; the rest are "Stable Moderate Markets".
For k=2 there is no stable segment; for k>3 the stable segments are numbered by decreasing
level ("Stable Moderate Markets 1", "... 2"). k=1 is refused by training.

A centroid can be the weakest-growing without declining (all markets grow). Each segment
therefore also says whether it fits its profile: declining segments must grow below the
training average (growth score < 0), high-value ones must spend above it (level score > 0).
A model whose segments do not fit says so instead of silently mislabelling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pharmaseg.model.features import FEATURE_NAMES, GROWTH_FEATURES, LEVEL_FEATURES

DECLINING = "Declining Markets"
HIGH_VALUE = "High-Value Pharma Markets"
STABLE = "Stable Moderate Markets"

RECOMMENDATIONS = {
    DECLINING: "Not recommended for new market entry",
    HIGH_VALUE: "Priority market for innovative products",
    STABLE: "Ideal for expansion",
}


@dataclass(frozen=True)
class Segment:
    """One segment of a fit. Declared once: the model artifact stores it, and the prediction API's
    ``GET /model`` answers it (``prediction.contract.SegmentDescription`` adds the centroid; msgspec
    validates and documents dataclasses as it does Structs)."""

    cluster: int
    name: str
    recommendation: str
    size: int
    growth_score: float
    level_score: float
    fits_profile: bool

    def to_dict(self) -> dict:
        return asdict(self)


def profile_scores(centroids: np.ndarray, feature_names=FEATURE_NAMES) -> tuple[np.ndarray, np.ndarray]:
    """Growth and level score of each standardized centroid."""
    names = list(feature_names)
    growth = centroids[:, [names.index(f) for f in GROWTH_FEATURES]].mean(axis=1)
    level = centroids[:, [names.index(f) for f in LEVEL_FEATURES]].mean(axis=1)
    return growth, level


def name_segments(centroids: np.ndarray, sizes: list[int], feature_names=FEATURE_NAMES) -> list[Segment]:
    """Name every cluster of a fit; ``centroids`` are in standardized units, one row per cluster."""
    k = len(centroids)
    if k < 2:
        raise ValueError("segment naming needs at least two clusters")
    growth, level = profile_scores(np.asarray(centroids, dtype=float), feature_names)
    declining = int(np.argmin(growth))
    others = [c for c in range(k) if c != declining]
    high_value = max(others, key=lambda c: level[c])
    stable = sorted((c for c in others if c != high_value), key=lambda c: -level[c])
    names = {declining: DECLINING, high_value: HIGH_VALUE}
    for rank, cluster in enumerate(stable, start=1):
        names[cluster] = STABLE if len(stable) == 1 else f"{STABLE} {rank}"
    fits = {declining: bool(growth[declining] < 0), high_value: bool(level[high_value] > 0)}
    segments = []
    for cluster in range(k):
        name = names[cluster]
        base = STABLE if name.startswith(STABLE) else name
        segments.append(
            Segment(
                cluster=cluster,
                name=name,
                recommendation=RECOMMENDATIONS[base],
                size=int(sizes[cluster]),
                growth_score=float(growth[cluster]),
                level_score=float(level[cluster]),
                fits_profile=fits.get(cluster, True),
            )
        )
    return segments


# Okabe-Ito colours (readable with the common colour-vision deficiencies) and one marker per
# kind of segment, so that a picture never carries the segment by colour alone.
_STYLES = {DECLINING: ("#d55e00", "v"), HIGH_VALUE: ("#009e73", "^"), STABLE: ("#0072b2", "o")}
_EXTRA_STABLE_COLOURS = ("#56b4e9", "#cc79a7", "#e69f00", "#999999")


def segment_style(name: str) -> tuple[str, str]:
    """(colour, matplotlib marker) of a segment name, the same in every report and page."""
    if name in _STYLES:
        return _STYLES[name]
    if name.startswith(STABLE):
        rank = int(name.rsplit(" ", 1)[-1]) if name.rsplit(" ", 1)[-1].isdigit() else 1
        return (_STYLES[STABLE][0] if rank == 1 else _EXTRA_STABLE_COLOURS[(rank - 2) % 4]), "o"
    return "#555555", "s"
