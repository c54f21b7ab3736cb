"""The drift statistics: known answers and the behaviour the checks rely on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pharmaseg.check_drift import methods as m
from pharmaseg.model.training import feature_reference


def _reference(values, name="x"):
    return m.FeatureReference.from_artifact(name, feature_reference(np.asarray(values, dtype=float)))


@pytest.fixture(scope="module")
def ref():
    return _reference(np.random.default_rng(1).normal(10, 2, 36))


def test_normalised_wasserstein_of_a_shift_is_the_shift_in_stds(ref):
    result = m.compare_raw(ref, ref.values + 0.3 * ref.std)
    assert result.wasserstein == pytest.approx(0.3)


def test_jensen_shannon_is_bounded_row_wise_and_never_nan():
    p, q = np.array([1, 2, 3, 4.0]), np.array([4, 0, 3, 1.0])
    assert 0 < m.jensen_shannon(p, q) < 1
    assert m.jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-7)
    assert m.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    rows = m.jensen_shannon(np.array([p, p]), np.array([q, p]))
    assert rows[0] == pytest.approx(m.jensen_shannon(p, q)) and rows[1] == pytest.approx(0.0, abs=1e-7)
    # nearly identical histograms: rounding puts the divergence just below zero
    rng = np.random.default_rng(0)
    base = rng.integers(1, 50, size=(500, 10)).astype(float)
    close = base + rng.uniform(0, 1e-9, size=base.shape)
    assert np.all(np.isfinite(m.jensen_shannon(base, close)))


def test_psi_known_value_and_zero_for_identical():
    ref, recent = np.array([50, 50.0]), np.array([25, 75.0])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert m.psi(ref, recent) == pytest.approx(expected)
    assert m.psi(ref, ref) == 0.0
    assert np.isfinite(m.psi([10, 0], [0, 10]))


def test_ks_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=36), rng.normal(0.5, size=40)
    d, p = m.ks_test(a, b)
    expected = stats.ks_2samp(a, b)
    assert (d, p) == pytest.approx((expected.statistic, expected.pvalue))


def test_decile_and_fine_bins_follow_the_sql_conventions(ref):
    edges = ref.edges
    assert m.decile_bin(np.array([edges[0] - 1, edges[0], edges[-1] + 1]), edges).tolist() == [0, 1, len(edges)]
    fine = m.fine_bin(np.array([ref.lo - 1, ref.lo, ref.hi, ref.hi + 5, ref.lo + 10.5 * ref.width]), ref)
    assert fine.tolist() == [0, 1, m.FINE_BINS + 1, m.FINE_BINS + 1, 11]


def test_binned_wasserstein_approximates_the_exact_one(ref):
    values = np.random.default_rng(3).normal(11, 2.5, 5000)
    sample = m.BinnedSample.from_values(values, ref)
    positions, weights = sample.support()
    exact = m.compare_raw(ref, values).wasserstein
    binned = m.compare_binned(ref, sample, resamples=100, seed=0).wasserstein
    assert binned == pytest.approx(exact, abs=0.02)
    assert sample.n == 5000 and sample.decile_counts.sum() == 5000 and len(positions) <= m.FINE_BINS + 2


def test_null_distribution_shrinks_then_levels_off(ref):
    small = m.null_distribution(ref, 30, 1000, 0)
    large = m.null_distribution(ref, 100_000, 1000, 0)
    assert np.median(small["wasserstein"]) > np.median(large["wasserstein"]) > 0
    # the reference's own noise (36 values) keeps the null away from 0 however large the sample
    assert np.median(large["jensen_shannon"]) > 0.1


def test_bootstrap_p_is_never_zero():
    null = np.array([0.1, 0.2, 0.3])
    assert m.bootstrap_p(10.0, null) == pytest.approx(0.25)
    assert m.bootstrap_p(0.0, null) == 1.0


def test_raw_path_detects_a_large_shift_and_not_the_reference_itself(ref):
    shifted = m.compare_raw(ref, ref.values + 2 * ref.std)
    same = m.compare_raw(ref, ref.values)
    assert shifted.p_value < 1e-6 and shifted.wasserstein == pytest.approx(2.0)
    assert same.p_value == 1.0 and same.wasserstein == pytest.approx(0.0)
    assert same.method == "ks" and same.psi == pytest.approx(0.0)


def test_binned_path_detects_a_shift_of_one_std(ref):
    rng = np.random.default_rng(4)
    shifted = m.BinnedSample.from_values(rng.choice(ref.values, 50_000) + ref.std, ref)
    same = m.BinnedSample.from_values(rng.choice(ref.values, 50_000), ref)
    drifted = m.compare_binned(ref, shifted, resamples=1000, seed=0)
    calm = m.compare_binned(ref, same, resamples=1000, seed=0)
    assert drifted.p_value < 0.005 < calm.p_value
    assert drifted.method == "wasserstein+js" and drifted.wasserstein == pytest.approx(1.0, abs=0.1)


def test_prediction_drift_homogeneity():
    calm = m.prediction_drift([0.25, 0.5, 0.25], 36, [240, 520, 240])
    moved = m.prediction_drift([0.25, 0.5, 0.25], 36, [900, 50, 50])
    assert calm["p_value"] > 0.5 and moved["p_value"] < 1e-6
    empty = m.prediction_drift([0.5, 0.5], 36, [0, 0])
    assert empty["p_value"] is None


def test_policy_is_validated():
    with pytest.raises(m.DriftError):
        m.DriftPolicy(alpha=0)
    with pytest.raises(m.DriftError):
        m.DriftPolicy(correction="sidak")
    with pytest.raises(m.DriftError):
        m.DriftPolicy(min_rows=100, ks_max_rows=50)
    with pytest.raises(m.DriftError, match="joint_max_rows"):
        m.DriftPolicy(min_rows=100, joint_max_rows=50)


def test_min_p_combines_two_bootstrap_p_values_by_their_correlation():
    rng = np.random.default_rng(9)
    shares = m._tail_shares(rng.normal(size=4000))
    # perfectly correlated statistics: combining changes nothing
    assert m.min_p((0.01, 0.01), np.minimum(shares, shares)) == pytest.approx(0.01, abs=0.002)
    # independent ones: 1 - (1 - p)^2, about twice the smaller p, Bonferroni's bound
    independent = np.minimum(shares, m._tail_shares(rng.normal(size=4000)))
    assert m.min_p((0.01, 0.3), independent) == pytest.approx(1 - 0.99**2, abs=0.006)


def test_binned_path_keeps_its_level_when_reference_and_recent_are_fresh_draws():
    """Nothing in-sample: 36 reference values and 2,000 recent ones from one population."""
    rng = np.random.default_rng(10)
    p = []
    for _ in range(200):
        ref = _reference(rng.normal(size=36))
        sample = m.BinnedSample.from_values(rng.normal(size=2000), ref)
        p.append(m.compare_binned(ref, sample, resamples=1000, seed=int(rng.integers(1 << 30))).p_value)
    assert np.mean(np.array(p) < 0.05) <= 0.08
