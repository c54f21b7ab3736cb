"""Training reproduces the original analysis; the artifact serves exactly what KMeans predicts."""

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from pharmaseg.errors import ArtifactError, DataValidationError
from pharmaseg.model.artifact import FORMAT, ModelArtifact
from pharmaseg.model.segments import DECLINING, HIGH_VALUE, STABLE, name_segments
from pharmaseg.model.training import TrainingParams, train


def test_original_analysis_is_reproduced(original_model):
    table, artifact = original_model
    assert len(table.countries) == 36
    assert round(artifact.metrics["silhouette"], 3) == 0.289
    assert round(artifact.metrics["inertia"], 1) == 188.9
    assert artifact.metrics["segment_sizes"] == {DECLINING: 5, STABLE: 23, HIGH_VALUE: 8}
    names = {c: artifact.segment(k).name for c, k in artifact.assignments.items()}
    assert {c for c, n in names.items() if n == DECLINING} == {"CRI", "HRV", "HUN", "IRL", "SVK"}
    assert {c for c, n in names.items() if n == HIGH_VALUE} == {"DEU", "GRC", "JPN", "KOR", "LTU", "LVA", "ROU", "USA"}
    assert names["FRA"] == STABLE
    assert artifact.metrics["profile_fit"] is True
    assert 0 < artifact.metrics["stability"]["mean_ari"] <= 1
    for key in ("davies_bouldin", "calinski_harabasz"):
        assert artifact.metrics[key] > 0


def test_lineage_and_reference_are_recorded(original_model):
    table, artifact = original_model
    lineage = artifact.lineage
    assert len(lineage["data_sha256"]) == 64
    assert lineage["window"] == "2011-2020" and lineage["countries"] == 36
    assert lineage["params"] == {"k": 3, "seed": 42, "n_init": 10, "n_bootstrap": 10}
    assert {"numpy", "scikit-learn", "python"} <= set(lineage["libraries"])
    ref = artifact.reference["features"]["USD_CAP_avg"]
    assert ref["values"] == table.values[:, 7].tolist()
    assert sum(ref["bin_counts"]) == 36 and len(ref["bin_counts"]) == len(ref["bin_edges"]) + 1
    assert np.isclose(sum(artifact.reference["segment_shares"]), 1)


def _sklearn_pipeline(table):
    scaler = StandardScaler().fit(table.values)
    return scaler, KMeans(3, random_state=42, n_init=10).fit(scaler.transform(table.values))


def test_serving_matches_kmeans_predict_on_training_and_random_inputs(original_model):
    table, artifact = original_model
    scaler, kmeans = _sklearn_pipeline(table)
    assert (artifact.predict(table.values).clusters == kmeans.labels_).all()
    rng = np.random.default_rng(7)
    low, high = table.values.min(axis=0), table.values.max(axis=0)
    span = high - low
    random_inputs = rng.uniform(low - span, high + span, size=(5000, 9))
    expected = kmeans.predict(scaler.transform(random_inputs))
    assert (artifact.predict(random_inputs).clusters == expected).all()


def test_confidence_is_a_margin_in_unit_interval(original_model):
    _, artifact = original_model
    at_centroid = artifact.centroids_original_units()
    pred = artifact.predict(at_centroid)
    np.testing.assert_allclose(pred.confidence, 1.0)
    assert (pred.clusters == np.arange(artifact.k)).all()
    midpoint = (at_centroid[0] + at_centroid[1]) / 2
    assert artifact.predict(midpoint).confidence[0] < 0.05
    rng = np.random.default_rng(1)
    conf = artifact.predict(rng.normal(artifact.scaler_mean, artifact.scaler_scale * 3, size=(1000, 9))).confidence
    assert ((conf >= 0) & (conf <= 1)).all()


def test_artifact_round_trip_is_exact_and_small(original_model):
    _, artifact = original_model
    body = artifact.to_json()
    assert len(body) < 64_000
    again = ModelArtifact.from_json(body)
    assert again.to_json() == body and again.sha256() == artifact.sha256()
    doc = json.loads(body)
    assert doc["format"] == FORMAT
    assert "pickle" not in body.decode()


def test_artifact_rejects_unknown_format_and_malformed_documents(original_model):
    _, artifact = original_model
    doc = artifact.to_dict()
    with pytest.raises(ArtifactError, match="unknown artifact format"):
        ModelArtifact.from_dict({**doc, "format": "sklearn-pickle"})
    with pytest.raises(ArtifactError, match="disagree"):
        ModelArtifact.from_dict({**doc, "centroids": doc["centroids"][:2]})
    with pytest.raises(ArtifactError, match="not JSON"):
        ModelArtifact.from_json(b"\x80pickle")


def test_naming_follows_profile_not_index():
    centroids = np.zeros((3, 9))
    centroids[2, [0, 3, 6]] = -2.0  # weakest growth
    centroids[0, [1, 4, 7]] = 1.5  # highest level
    segs = name_segments(centroids, [4, 5, 6])
    assert [s.name for s in segs] == [HIGH_VALUE, STABLE, DECLINING]
    assert all(s.fits_profile for s in segs)


def test_naming_for_other_k_and_profile_misfit():
    two = name_segments(np.array([[1.0] * 9, [2.0] * 9]), [1, 1])
    assert [s.name for s in two] == [DECLINING, HIGH_VALUE]
    assert two[0].fits_profile is False  # weakest growth, but still above the average: not declining
    five = np.zeros((5, 9))
    five[0, [0, 3, 6]] = -1
    five[1, [1, 4, 7]] = 3
    five[2, [1, 4, 7]] = 2
    five[3, [1, 4, 7]] = 1
    names = [s.name for s in name_segments(five, [1] * 5)]
    assert names == [DECLINING, HIGH_VALUE, f"{STABLE} 1", f"{STABLE} 2", f"{STABLE} 3"]
    with pytest.raises(DataValidationError, match="k must be at least 2"):
        TrainingParams(k=1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_data_with_fewer_distinct_countries_than_k_is_a_validation_error(original_model):
    from pharmaseg.model.panel import FeatureTable

    table, _ = original_model
    clones = FeatureTable(
        countries=[f"C{i}" for i in range(6)], values=np.repeat(table.values[:2], 3, axis=0), window=table.window
    )
    with pytest.raises(DataValidationError, match="only 2 distinct segments"):
        train(clones, TrainingParams(n_bootstrap=0), source_uri="x", source_sha256="0", rows_read=6)
