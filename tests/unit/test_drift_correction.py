"""Multiple-testing corrections and the verdict, including insufficient data."""

from __future__ import annotations

import numpy as np
import pytest

from pharmaseg.check_drift import methods as m
from pharmaseg.check_drift import verdict
from pharmaseg.model.training import feature_reference

P = [0.01, 0.04, 0.03, 0.005, None]


def test_bonferroni_multiplies_by_family_size_and_skips_none():
    out = m.adjust(P, "bonferroni")
    assert out[:4] == pytest.approx([0.04, 0.16, 0.12, 0.02]) and out[4] is None


def test_holm_step_down_is_monotone():
    # sorted p: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.06, 0.04)=0.06
    assert m.adjust(P, "holm")[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg():
    # sorted p 0.005,0.01,0.03,0.04 -> *4/rank: 0.02, 0.02, 0.04, 0.04
    assert m.adjust(P, "bh")[:4] == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_none_and_empty_family():
    assert m.adjust(P, "none")[:4] == P[:4]
    assert m.adjust([None, None], "holm") == [None, None]
    with pytest.raises(m.DriftError):
        m.adjust(P, "sidak")


def test_holm_is_never_less_conservative_than_raw_and_never_more_than_bonferroni():
    p = list(np.random.default_rng(0).uniform(0, 0.2, 10))
    holm, bonf = m.adjust(p, "holm"), m.adjust(p, "bonferroni")
    assert all(r <= h <= b for r, h, b in zip(p, holm, bonf))


def _refs():
    rng = np.random.default_rng(5)
    return [m.FeatureReference.from_artifact(name, feature_reference(rng.normal(size=36))) for name in ("a", "b")]


def test_insufficient_data_gives_no_verdict():
    result = verdict.evaluate(_refs(), n=5, raw={"a": np.zeros(5), "b": np.zeros(5)}, policy=m.DriftPolicy(min_rows=30))
    assert result.verdict == "insufficient_data" and result.features == []
    assert "fewer than the 30" in result.reason


def test_verdict_names_the_drifted_feature():
    refs = _refs()
    rng = np.random.default_rng(6)
    raw = {"a": rng.choice(refs[0].values, 500) + 3 * refs[0].std, "b": rng.choice(refs[1].values, 500)}
    result = verdict.evaluate(refs, n=500, raw=raw, segment_shares=[0.5, 0.5], n_ref=36, cluster_counts=[250, 250])
    assert result.verdict == "drift" and result.drifted_features == ["a"]
    assert result.prediction["drift"] is False
    doc = result.to_dict()
    assert doc["features"][0]["p_adjusted"] <= doc["features"][0]["p_value"] * 3
    assert doc["verdict"] == "drift"


def test_segment_share_drift_alone_is_drift():
    refs = _refs()
    rng = np.random.default_rng(7)
    raw = {r.name: rng.choice(r.values, 500) for r in refs}
    result = verdict.evaluate(refs, n=500, raw=raw, segment_shares=[0.5, 0.5], n_ref=36, cluster_counts=[490, 10])
    assert result.verdict == "drift" and result.drifted_features == [] and result.prediction["drift"]
    assert "segment shares" in result.reason


def test_binned_and_raw_paths_agree_on_a_clear_shift():
    refs = _refs()
    rng = np.random.default_rng(8)
    values = {r.name: rng.choice(r.values, 5000) + 1.5 * r.std for r in refs}
    binned = {r.name: m.BinnedSample.from_values(values[r.name], r) for r in refs}
    by_raw = verdict.evaluate(refs, n=5000, raw=values)
    by_bins = verdict.evaluate(refs, n=5000, binned=binned, policy=m.DriftPolicy(bootstrap=500))
    assert by_raw.verdict == by_bins.verdict == "drift"
