"""The drift SQL builders (run on the emulator in tests/integration/test_check_drift.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pharmaseg.check_drift import methods, queries
from pharmaseg_dev import simulate

FEATURES = ["PC_GDP_avg", "USD_CAP_avg"]


def test_sample_fraction_keeps_a_little_more_than_the_cap():
    n, cap = 1_000_000, 5000
    kept = queries.sample_fraction(n, cap) * n
    assert cap + 3 * math.sqrt(cap) < kept < cap * 1.1
    assert queries.sample_fraction(3000, 5000) == 1.0 and queries.sample_fraction(0, 10) == 1.0


def test_sample_sql_samples_complete_rows_by_parameter_and_caps_them():
    sql = queries.sample_sql("p", "d", FEATURES, 5000)
    assert "WHERE PC_GDP_avg IS NOT NULL AND USD_CAP_avg IS NOT NULL AND RAND() < @fraction" in sql
    assert sql.rstrip().endswith("ORDER BY RAND()\nLIMIT 5000")
    with pytest.raises(methods.DriftError):
        queries.sample_sql("p", "d", ["x; DROP TABLE t"], 10)


def test_decorrelated_keeps_every_marginal_and_breaks_the_correlation():
    rng = np.random.default_rng(0)
    base = rng.normal(size=36)
    doc = {"bin_edges": [0.0], "bin_counts": [18, 18]}
    refs = [
        methods.FeatureReference.from_artifact("a", {**doc, "values": base.tolist()}),
        methods.FeatureReference.from_artifact("b", {**doc, "values": (base + 0.1 * rng.normal(size=36)).tolist()}),
    ]
    rows = simulate.decorrelated(refs, 5000, rng)
    assert set(np.round(rows[:, 0], 12)) <= set(np.round(refs[0].values, 12))
    assert set(np.round(rows[:, 1], 12)) <= set(np.round(refs[1].values, 12))
    assert np.corrcoef(refs[0].original, refs[1].original)[0, 1] > 0.9 > abs(np.corrcoef(rows.T)[0, 1]) + 0.5
