"""The joint (PCA reconstruction-error) test: its pieces against brute force, its calibration, its verdict."""

from __future__ import annotations

import numpy as np
import pytest

from pharmaseg.check_drift import joint, verdict
from pharmaseg.check_drift import methods as m
from pharmaseg.model.training import feature_reference

NAMES = tuple(f"f{j}" for j in range(5))


def _population(rng, n):
    """5 features driven by 2 factors plus small noise: 2 components carry almost everything."""
    factors = rng.normal(size=(n, 2))
    loadings = np.array([[1.0, 0.8, 0.0, 0.5, -0.6], [0.0, 0.5, 1.0, -0.7, 0.4]])
    return factors @ loadings + rng.normal(scale=0.15, size=(n, 5)) + np.arange(5) * 10


def _reference(rows):
    doc = {"features": {name: {"values": rows[:, j].tolist()} for j, name in enumerate(NAMES)}}
    return joint.JointReference.fit(doc, NAMES, rows.mean(axis=0), rows.std(axis=0))


def test_components_rule_keeps_the_factors_and_leaves_the_noise():
    rows = _population(np.random.default_rng(0), 36)
    ref = _reference(rows)
    assert ref.k == 2 and ref.explained >= joint.VARIANCE_KEPT
    z = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    assert joint.n_components(z, 0.5) == 1 and joint.n_components(z, 0.9999) == 4  # never all d


def test_leave_one_out_errors_match_sklearn_refits_and_exceed_the_in_sample_ones():
    from sklearn.decomposition import PCA

    rows = _population(np.random.default_rng(1), 36)
    ref = _reference(rows)
    z = (rows - ref.scaler_mean) / ref.scaler_scale
    for i in (0, 17, 35):
        pca = PCA(n_components=ref.k).fit(np.delete(z, i, axis=0))
        rebuilt = pca.inverse_transform(pca.transform(z[i : i + 1]))
        assert ref.loo_errors[i] == pytest.approx(np.linalg.norm(z[i] - rebuilt[0]), rel=1e-9)
    assert ref.loo_errors.mean() > ref.in_sample_errors.mean()
    assert np.all(ref.loo_errors >= ref.in_sample_errors - 1e-12)


def test_jackknife_variance_matches_the_brute_force_double_loop():
    rows = _population(np.random.default_rng(2), 9)
    z = (rows - rows.mean(axis=0)) / rows.std(axis=0)
    theta = np.array([joint.loo_errors(np.delete(z, j, axis=0), 2).mean() for j in range(len(z))])
    expected = (len(z) - 1) / len(z) * np.sum((theta - theta.mean()) ** 2)
    assert joint.jackknife_variance(z, 2) == pytest.approx(expected, rel=1e-9)


def test_broken_correlations_are_found_and_the_reference_population_is_not():
    rng = np.random.default_rng(3)
    ref = _reference(_population(rng, 36))
    same = joint.compare(ref, _population(rng, 300))
    broken = _population(rng, 300)
    broken = np.column_stack([rng.permutation(broken[:, j]) for j in range(5)])  # marginals unchanged
    moved = joint.compare(ref, broken)
    assert same.p_value > 0.05 and moved.p_value < 1e-6
    assert moved.statistic > 0 and moved.method == "pca_reconstruction" and moved.n == 300
    lo, hi = moved.details["null_band95"]
    assert lo < moved.details["reference_error_mean"] < hi < moved.details["recent_error_mean"]


def test_size_when_reference_and_recent_are_fresh_draws_of_one_population():
    """The honest null: both samples new, so nothing is in-sample. About 5% at alpha 5%."""
    rng = np.random.default_rng(4)
    p = [joint.compare(_reference(_population(rng, 36)), _population(rng, 200)).p_value for _ in range(100)]
    assert np.mean(np.array(p) < 0.05) <= 0.10


def test_incomplete_rows_are_dropped_and_too_few_are_not_tested():
    rng = np.random.default_rng(5)
    ref = _reference(_population(rng, 36))
    rows = _population(rng, 40)
    rows[:5, 1] = np.nan
    result = joint.compare(ref, rows, min_rows=30)
    assert result.n == 35 and result.details["incomplete_rows"] == 5 and result.p_value is not None
    few = joint.compare(ref, rows[:10], min_rows=30)
    assert few.p_value is None and "5 complete rows" in few.details["not_tested"]
    assert joint.compare(ref, None).p_value is None


def test_bad_references_are_refused():
    rows = _population(np.random.default_rng(6), 36)
    doc = {"features": {name: {"values": rows[:, j].tolist()} for j, name in enumerate(NAMES)}}
    with pytest.raises(m.DriftError, match="scaler"):
        joint.JointReference.fit(doc, NAMES, rows.mean(axis=0)[:4], rows.std(axis=0)[:4])
    with pytest.raises(m.DriftError, match="lacks training values"):
        joint.JointReference.fit({"features": {}}, NAMES, rows.mean(axis=0), rows.std(axis=0))
    doc["features"]["f0"]["values"] = doc["features"]["f0"]["values"][:-1]
    with pytest.raises(m.DriftError, match="different lengths"):
        joint.JointReference.fit(doc, NAMES, rows.mean(axis=0), rows.std(axis=0))


def test_the_real_model_joint_test_sees_decorrelated_countries(original_model):
    table, artifact = original_model
    ref = joint.JointReference.from_artifact(artifact)
    values = np.asarray(table.values, dtype=float)
    rng = np.random.default_rng(7)
    permuted = np.column_stack([rng.permutation(values[:, j]) for j in range(values.shape[1])])
    assert ref.k == 5 and ref.loo_errors.shape == (36,)
    assert joint.compare(ref, permuted[rng.integers(0, 36, 100)]).p_value < 1e-4
    assert joint.compare(ref, values[rng.integers(0, 36, 100)]).p_value > 0.5


def _feature_refs(rows):
    return [m.FeatureReference.from_artifact(name, feature_reference(rows[:, j])) for j, name in enumerate(NAMES)]


def test_joint_test_joins_the_holm_family_and_names_itself_in_the_verdict():
    rng = np.random.default_rng(8)
    train = _population(rng, 36)
    recent = _population(rng, 400)
    recent = np.column_stack([rng.permutation(recent[:, j]) for j in range(5)])
    raw = {name: recent[:, j] for j, name in enumerate(NAMES)}
    result_joint = joint.compare(_reference(train), recent)
    result = verdict.evaluate(_feature_refs(train), n=400, raw=raw, joint=result_joint)
    assert result.verdict == "drift" and result.joint_drift and result.drifted_features == []
    assert result.reason == "drift in joint structure"
    family = [f.p_value for f in result.features] + [result_joint.p_value]
    assert result_joint.p_adjusted == pytest.approx(m.adjust(family, "holm")[-1])
    doc = result.to_dict()
    assert doc["joint"]["test"] == "joint structure" and doc["joint"]["drift"] is True
    assert len(doc["joint"]["details"]["reference_errors"]) == 36


def test_an_untested_joint_result_stays_out_of_the_family():
    rng = np.random.default_rng(9)
    train = _population(rng, 36)
    recent = _population(rng, 50)
    raw = {name: recent[:, j] for j, name in enumerate(NAMES)}
    untested = joint.compare(_reference(train), recent[:1])
    with_it = verdict.evaluate(_feature_refs(train), n=50, raw=raw, joint=untested)
    without = verdict.evaluate(_feature_refs(train), n=50, raw=raw)
    assert [f.p_adjusted for f in with_it.features] == [f.p_adjusted for f in without.features]
    assert untested.p_adjusted is None and not with_it.joint_drift
