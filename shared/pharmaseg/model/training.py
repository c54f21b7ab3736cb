"""Fit StandardScaler + KMeans, evaluate the segmentation, and build the artifact.

scikit-learn is imported here (and by the retraining gate), never on a serving path.

The default procedure is the original analysis' (random_state=42, n_init=10) because on this
data k-means has several local optima: the lowest-inertia solution (inertia 183.8, silhouette
0.263, sizes 6/8/22) is not the original one (inertia 188.9, silhouette 0.289, sizes 5/23/8).
More restarts therefore do not mean a better segmentation; retraining compares candidates
with production on agreement and quality instead of trusting inertia.
"""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.preprocessing import StandardScaler

import pharmaseg
from pharmaseg.errors import DataValidationError
from pharmaseg.model.artifact import Markets, ModelArtifact
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.panel import FeatureTable
from pharmaseg.model.segments import name_segments
from pharmaseg.model.sources import sha256_of
from pharmaseg.model.windows import FEATURE_CODE_VERSION, feature_set_id

REFERENCE_BINS = 10


@dataclass(frozen=True)
class TrainingParams:
    k: int = 3
    seed: int = 42
    n_init: int = 10
    n_bootstrap: int = 50

    def __post_init__(self) -> None:
        if self.k < 2:
            raise DataValidationError(f"k must be at least 2, got {self.k}", column="k")
        if self.n_init < 1:
            raise DataValidationError(f"n_init must be at least 1, got {self.n_init}", column="n_init")
        if self.n_bootstrap < 0:
            raise DataValidationError("n_bootstrap cannot be negative", column="n_bootstrap")


def _fit(values: np.ndarray, params: TrainingParams, seed: int) -> KMeans:
    return KMeans(n_clusters=params.k, random_state=seed, n_init=params.n_init).fit(values)


def align(refit_centroids: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``mapping[j]`` is the fit's cluster that a refit's cluster ``j`` stands for.

    k-means numbers its clusters arbitrarily, so a refit's cluster 0 can be the fit's cluster 2.
    The one-to-one matching with the least total distance between centroids (Hungarian assignment,
    standardized space) pairs them; nearest-centroid matching alone could pair two refit
    clusters with one segment.
    """
    cost = np.linalg.norm(refit_centroids[:, None, :] - centroids[None, :, :], axis=2)
    refit, fit = linear_sum_assignment(cost)
    mapping = np.empty(len(refit_centroids), dtype=int)
    mapping[refit] = fit
    return mapping


def bootstrap_stability(
    scaled: np.ndarray, labels: np.ndarray, centroids: np.ndarray, params: TrainingParams, countries: list[str]
) -> dict[str, Any]:
    """Mean adjusted Rand index between the fit and refits on bootstrap resamples of the countries,
    and per country the share of refits that keep it in its segment.

    Each refit predicts every country, so the ARI compares two full segmentations; 1 means every
    resample finds the same segments, values near 0 mean the segmentation is an accident of
    the sample. The ARI cannot say *which* countries the resamples disagree on; the per-country
    share can, once each refit's clusters are matched to the fit's (``align``): a strategist can
    trust a country at 1.0 and should hedge one at 0.6, whatever the mean.
    """
    if params.n_bootstrap == 0:
        return {"mean_ari": None, "std_ari": None, "n_bootstrap": 0, "per_country": None}
    rng = np.random.default_rng(params.seed)
    scores, kept = [], np.zeros(len(scaled), dtype=int)
    for b in range(params.n_bootstrap):
        sample = rng.choice(len(scaled), size=len(scaled), replace=True)
        refit = _fit(scaled[sample], params, seed=params.seed + b + 1)
        predicted = refit.predict(scaled)
        scores.append(adjusted_rand_score(labels, predicted))
        kept += align(refit.cluster_centers_, centroids)[predicted] == labels
    return {
        "mean_ari": float(np.mean(scores)),
        "std_ari": float(np.std(scores)),
        "n_bootstrap": params.n_bootstrap,
        "per_country": {c: float(n / params.n_bootstrap) for c, n in zip(countries, kept.tolist())},
    }


def feature_reference(column: np.ndarray) -> dict[str, Any]:
    """One feature's training reference for drift checks: the values themselves (few countries)
    plus decile bin edges and counts that SQL can bin recent data into."""
    edges = np.unique(np.quantile(column, np.linspace(0, 1, REFERENCE_BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
    return {
        "values": column.tolist(),
        "mean": float(column.mean()),
        "std": float(column.std(ddof=1)),
        "min": float(column.min()),
        "max": float(column.max()),
        "bin_edges": edges.tolist(),
        "bin_counts": counts.tolist(),
    }


def _reference(values: np.ndarray, labels: np.ndarray, k: int) -> dict[str, Any]:
    """What the model was trained on: each feature's reference and the segments' shares."""
    features = {name: feature_reference(values[:, j]) for j, name in enumerate(FEATURE_NAMES)}
    shares = np.bincount(labels, minlength=k) / len(labels)
    return {"n": int(len(values)), "features": features, "segment_shares": shares.tolist()}


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _library_versions() -> dict[str, str]:
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "pharmaseg": pharmaseg.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }


def train(
    table: FeatureTable,
    params: TrainingParams = TrainingParams(),
    *,
    source_uri: str,
    source_sha256: str,
    rows_read: int,
    trigger: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Fit, evaluate and package a model; ``trigger`` records who asked (cli, Pub/Sub message...)."""
    n = len(table.countries)
    if n <= params.k:
        raise DataValidationError(
            f"window {table.window} leaves {n} countries with complete data; need more than k={params.k}"
        )
    scaler = StandardScaler().fit(table.values)
    scaled = scaler.transform(table.values)
    model = _fit(scaled, params, seed=params.seed)
    labels = model.labels_
    if len(np.unique(labels)) < params.k:
        raise DataValidationError(
            f"k-means found only {len(np.unique(labels))} distinct segments for k={params.k} in window "
            f"{table.window}: the countries' features are too alike (duplicated data?)"
        )
    sizes = np.bincount(labels, minlength=params.k).tolist()
    segments = name_segments(model.cluster_centers_, sizes)
    metrics = {
        "silhouette": float(silhouette_score(scaled, labels)),
        "davies_bouldin": float(davies_bouldin_score(scaled, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(scaled, labels)),
        "inertia": float(model.inertia_),
        "segment_sizes": {s.name: s.size for s in segments},
        "stability": bootstrap_stability(scaled, labels, model.cluster_centers_, params, table.countries),
        "profile_fit": all(s.fits_profile for s in segments),
    }
    lineage = {
        "data_uri": source_uri,
        "data_sha256": source_sha256,
        "window": str(table.window),
        # The feature store's name for these training rows (FeatureStore.training_set reads them back).
        "feature_set_id": feature_set_id(source_sha256, table.window),
        "feature_code_version": FEATURE_CODE_VERSION,
        "rows_read": int(rows_read),
        "countries": n,
        "excluded_countries": table.excluded,
        "params": {"k": params.k, "seed": params.seed, "n_init": params.n_init, "n_bootstrap": params.n_bootstrap},
        "libraries": _library_versions(),
        "git_commit": _git_commit(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "trigger": trigger or {"kind": "cli"},
    }
    return ModelArtifact(
        feature_names=list(FEATURE_NAMES),
        window=str(table.window),
        scaler_mean=scaler.mean_.copy(),
        scaler_scale=scaler.scale_.copy(),
        centroids=model.cluster_centers_.copy(),
        segments=segments,
        reference=_reference(table.values, labels, params.k),
        metrics=metrics,
        lineage=lineage,
        assignments={c: int(label) for c, label in zip(table.countries, labels)},
        training_features={c: row.tolist() for c, row in zip(table.countries, table.values)},
        markets=Markets(
            sizes={c: table.market_sizes[c].value for c in table.countries if c in table.market_sizes},
            years={c: table.market_sizes[c].year for c in table.countries if c in table.market_sizes},
            without_size=[c for c in table.countries if c not in table.market_sizes],
        ),
    )


def train_file(
    path: str | Path, window: str = "2011-2020", params: TrainingParams = TrainingParams(n_bootstrap=0)
) -> tuple[FeatureTable, ModelArtifact]:
    """Train on a local OECD file: its feature table and the model, lineage filled from the file.

    The one-liner the demo, the benchmarks and the tests share, so that "the original model"
    means one thing everywhere (the CLI's ``train`` also reads gs:// URIs and records its trigger).
    """
    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features, read_panel

    path = Path(path)
    panel = read_panel(path)
    table = panel_features(panel, Window.parse(window))
    artifact = train(
        table, params, source_uri=str(path), source_sha256=sha256_of(path.read_bytes()), rows_read=len(panel.rows)
    )
    return table, artifact
