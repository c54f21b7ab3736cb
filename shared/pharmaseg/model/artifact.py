"""The model artifact: one JSON document that is everything serving and drift checks need.

JSON rather than a pickle: readable by a person, loadable without scikit-learn, safe to load
from a bucket, and exact (Python writes floats with round-trip precision). Serving needs numpy
only; scikit-learn stays in training.

Prediction = nearest centroid in standardized space, exactly what ``KMeans.predict`` does after
``StandardScaler``. Confidence is the margin between the two nearest centroids,
``1 - d_nearest / d_second``: 1 at a centroid, 0 on the boundary between two segments. It is
a property of the point's position, not a probability; the original ``1 / (1 + distance)``
shrank with distance to every centroid alike and said nothing about ambiguity.

Two optional blocks describe the training countries themselves: ``training`` (each country's 9
features, so a country can be explained from the model alone) and ``markets`` (each country's
market size, so that promotion weighs a changed segment by what it means for the business).
Artifacts written before they existed still load: their training rows are rebuilt from the
reference (which holds the same values in country order), and they count as unweighted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pharmaseg.errors import ArtifactError
from pharmaseg.model.segments import Segment

FORMAT = "pharmaseg.kmeans/v1"


@dataclass(frozen=True)
class Predictions:
    clusters: np.ndarray
    distances: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class Markets:
    """Market size (TOTAL_SPEND, million USD) per training country, and the year it is from.

    Countries without a published TOTAL_SPEND in the window carry no weight; ``without_size``
    names them so a reader can see how much of the segmentation is unweighted.
    """

    sizes: dict[str, float]
    years: dict[str, int]
    without_size: list[str]
    unit: str = "million USD"
    column: str = "TOTAL_SPEND"

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "column": self.column,
            "sizes": {c: {"value": v, "year": self.years[c]} for c, v in sorted(self.sizes.items())},
            "without_size": sorted(self.without_size),
            "n_without_size": len(self.without_size),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Markets:
        sizes = {c: float(s["value"]) for c, s in doc["sizes"].items()}
        years = {c: int(s["year"]) for c, s in doc["sizes"].items()}
        return cls(
            sizes, years, list(doc.get("without_size", [])), doc.get("unit", cls.unit), doc.get("column", cls.column)
        )


@dataclass
class ModelArtifact:
    feature_names: list[str]
    window: str
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    centroids: np.ndarray
    segments: list[Segment]
    reference: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    assignments: dict[str, int]
    version: str | None = None
    training_features: dict[str, list[float]] = field(default_factory=dict)
    markets: Markets | None = None

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def weighted(self) -> bool:
        """Whether this model knows its countries' market sizes (older artifacts do not)."""
        return self.markets is not None

    def country_stability(self) -> dict[str, float] | None:
        """Training country -> share of the bootstrap refits that kept it in its segment.

        None for a model trained without refits, and for artifacts written before training
        measured it: a reader says "n/a" rather than guess.
        """
        return (self.metrics.get("stability") or {}).get("per_country")

    def segment(self, cluster: int) -> Segment:
        return self.segments[cluster]

    def scale(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=float) - self.scaler_mean) / self.scaler_scale

    def predict(self, values: np.ndarray) -> Predictions:
        """Nearest centroid for each row of ``values`` (original units, feature_names order)."""
        values = np.atleast_2d(np.asarray(values, dtype=float))
        if values.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got {values.shape[1]}")
        diff = self.scale(values)[:, None, :] - self.centroids[None, :, :]
        distances = np.sqrt(np.einsum("nkf,nkf->nk", diff, diff))
        clusters = distances.argmin(axis=1)
        two = np.partition(distances, 1, axis=1)
        nearest, second = two[:, 0], two[:, 1]
        ratio = np.ones_like(nearest)  # two centroids at distance 0: fully ambiguous
        np.divide(nearest, second, out=ratio, where=second > 0)
        return Predictions(clusters=clusters, distances=distances, confidence=1.0 - ratio)

    def centroids_original_units(self) -> np.ndarray:
        return self.centroids * self.scaler_scale + self.scaler_mean

    def training_rows(self) -> tuple[list[str], np.ndarray]:
        """The training countries (sorted) and their features, original units."""
        countries = sorted(self.training_features)
        return countries, np.array([self.training_features[c] for c in countries], dtype=float).reshape(
            len(countries), len(self.feature_names)
        )

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "format": FORMAT,
            "version": self.version,
            "feature_names": list(self.feature_names),
            "window": self.window,
            "scaler": {"mean": self.scaler_mean.tolist(), "scale": self.scaler_scale.tolist()},
            "centroids": self.centroids.tolist(),
            "segments": [s.to_dict() for s in self.segments],
            "reference": self.reference,
            "metrics": self.metrics,
            "lineage": self.lineage,
            "assignments": self.assignments,
        }
        if self.training_features:
            countries = sorted(self.training_features)
            doc["training"] = {"countries": countries, "features": [self.training_features[c] for c in countries]}
        if self.markets is not None:
            doc["markets"] = self.markets.to_dict()
        return doc

    def to_json(self) -> bytes:
        """Canonical bytes (sorted keys), so the same model always has the same sha256."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=1, allow_nan=False).encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ModelArtifact:
        if doc.get("format") != FORMAT:
            raise ArtifactError(f"unknown artifact format {doc.get('format')!r}; expected {FORMAT!r}")
        try:
            artifact = cls(
                feature_names=list(doc["feature_names"]),
                window=doc["window"],
                scaler_mean=np.asarray(doc["scaler"]["mean"], dtype=float),
                scaler_scale=np.asarray(doc["scaler"]["scale"], dtype=float),
                centroids=np.asarray(doc["centroids"], dtype=float),
                segments=[Segment(**s) for s in doc["segments"]],
                reference=doc["reference"],
                metrics=doc["metrics"],
                lineage=doc["lineage"],
                assignments={k: int(v) for k, v in doc["assignments"].items()},
                version=doc.get("version"),
                training_features=_training_features(doc),
                markets=Markets.from_dict(doc["markets"]) if "markets" in doc else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed artifact: {exc!r}") from None
        n = len(artifact.feature_names)
        if artifact.centroids.ndim != 2 or artifact.centroids.shape[1] != n or len(artifact.segments) != artifact.k:
            raise ArtifactError("malformed artifact: centroids, features and segments disagree")
        if artifact.scaler_mean.shape != (n,) or artifact.scaler_scale.shape != (n,):
            raise ArtifactError("malformed artifact: scaler does not match the features")
        return artifact

    @classmethod
    def from_json(cls, data: bytes | str) -> ModelArtifact:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ArtifactError(f"artifact is not JSON: {exc}") from None
        return cls.from_dict(doc)


def _training_features(doc: dict[str, Any]) -> dict[str, list[float]]:
    """Each training country's features; for artifacts older than the ``training`` block, the
    reference's per-feature values, which training wrote in the (sorted) order of the countries."""
    if "training" in doc:
        block = doc["training"]
        return {c: [float(v) for v in row] for c, row in zip(block["countries"], block["features"])}
    features = (doc.get("reference") or {}).get("features") or {}
    countries = sorted(doc["assignments"])
    columns = [features.get(name, {}).get("values") for name in doc["feature_names"]]
    if any(column is None or len(column) != len(countries) for column in columns):
        return {}
    return {c: [float(column[i]) for column in columns] for i, c in enumerate(countries)}
