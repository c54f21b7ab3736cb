"""Per-country stability: each training country's share of bootstrap refits that keep it in its segment."""

import json

import numpy as np
import pytest

from pharmaseg.model import training
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.training import TrainingParams, align, bootstrap_stability


def _blobs(per_blob: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three clusters far apart: every refit finds them, whatever numbers it gives them."""
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(scale=0.5, size=(per_blob, 2)) for c in centres])
    labels = np.repeat(np.arange(3), per_blob)
    centroids = np.array([points[labels == k].mean(axis=0) for k in range(3)])
    return points, labels, centroids


def _permuting_fit(monkeypatch, params: TrainingParams) -> list[int]:
    """Make every refit number its clusters backwards; returns the seeds of the refits it permuted."""
    fit, permuted = training._fit, []

    def backwards(values, p, seed):
        model = fit(values, p, seed)
        if seed != params.seed:
            model.cluster_centers_ = model.cluster_centers_[::-1].copy()
            permuted.append(seed)
        return model

    monkeypatch.setattr(training, "_fit", backwards)
    return permuted


def test_align_undoes_a_permutation_of_the_clusters():
    _, _, centroids = _blobs()
    shifted = centroids + 0.3  # a refit's centroids are near the fit's, never on them
    assert align(shifted[[2, 0, 1]], centroids).tolist() == [2, 0, 1]
    assert align(shifted, centroids).tolist() == [0, 1, 2]


def test_a_refit_that_numbers_its_clusters_differently_keeps_every_country(monkeypatch):
    points, labels, centroids = _blobs()
    params = TrainingParams(n_bootstrap=5)
    countries = [f"C{i:02d}" for i in range(len(points))]
    permuted = _permuting_fit(monkeypatch, params)
    stability = bootstrap_stability(points, labels, centroids, params, countries)
    assert len(permuted) == 5  # every refit's labels were reversed: 0 <-> 2
    assert stability["per_country"] == dict.fromkeys(countries, 1.0)
    assert stability["mean_ari"] == pytest.approx(1.0)


def test_real_refits_give_the_same_shares_however_they_number_their_clusters(monkeypatch, original_model):
    table, artifact = original_model
    scaled = artifact.scale(table.values)
    labels = np.array([artifact.assignments[c] for c in table.countries])
    params = TrainingParams(n_bootstrap=10)
    stability = artifact.metrics["stability"]
    _permuting_fit(monkeypatch, params)
    again = bootstrap_stability(scaled, labels, artifact.centroids, params, table.countries)
    assert again["per_country"] == stability["per_country"]
    assert again["mean_ari"] == pytest.approx(stability["mean_ari"])


def test_shares_are_counts_of_the_refits(original_model):
    table, artifact = original_model
    shares = artifact.country_stability()
    n = artifact.metrics["stability"]["n_bootstrap"]
    assert n == 10 and sorted(shares) == sorted(table.countries)
    assert all(0.0 <= s <= 1.0 for s in shares.values())
    assert all(float(s * n).is_integer() for s in shares.values())
    assert min(shares.values()) < 1.0  # on the real data some countries do move between resamples


def test_the_country_furthest_from_a_boundary_never_moves(original_model):
    table, artifact = original_model
    distances = np.sort(artifact.predict(table.values).distances, axis=1)
    furthest = table.countries[int(np.argmax(distances[:, 1] - distances[:, 0]))]
    assert furthest == "SWE"
    assert artifact.country_stability()["SWE"] == 1.0


def test_without_refits_there_is_no_per_country_stability(original_model):
    table, artifact = original_model
    scaled = artifact.scale(table.values)
    labels = np.array([artifact.assignments[c] for c in table.countries])
    stability = bootstrap_stability(scaled, labels, artifact.centroids, TrainingParams(n_bootstrap=0), table.countries)
    assert stability["per_country"] is None and stability["mean_ari"] is None


def test_artifacts_written_before_it_still_load(original_model):
    doc = json.loads(original_model[1].to_json())  # a copy: the session's model stays as it was
    del doc["metrics"]["stability"]["per_country"]
    assert ModelArtifact.from_dict(doc).country_stability() is None
    doc["metrics"].pop("stability")
    assert ModelArtifact.from_dict(doc).country_stability() is None
