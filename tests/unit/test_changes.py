"""Comparing two models from their artifacts alone, and reading artifacts written before markets existed."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.changes import compare, describe_mover


def test_a_model_compared_with_itself_changes_nothing(original_model):
    _, model = original_model
    changes = compare(model, copy.deepcopy(model))
    assert changes.movers == [] and changes.market_agreement == pytest.approx(1.0)
    assert len(changes.common) == 36 and changes.weights == "after"
    assert all(abs(v) < 1e-12 for shift in changes.centroid_shifts.values() for v in shift.values())
    assert sum(changes.shares.values()) == pytest.approx(1.0)


def test_market_sizes_are_the_window_s_last_published_total_spend(original_model, oecd_path):
    _, model = original_model
    assert model.markets is not None and model.markets.without_size == []
    assert set(model.markets.years.values()) == {2020}
    with oecd_path.open() as fh:
        spend = {r["LOCATION"]: float(r["TOTAL_SPEND"]) for r in csv.DictReader(fh) if r["TIME"] == "2020"}
    assert model.markets.sizes == {c: spend[c] for c in model.assignments}
    usa_share = model.markets.sizes["USA"] / sum(model.markets.sizes.values())
    assert usa_share > 0.4  # the USA alone: 45% of the 36 training countries' spending


def test_a_mover_is_described_with_its_share_and_both_confidences(original_model):
    _, before = original_model
    after = copy.deepcopy(before)
    stable = next(s.cluster for s in after.segments if s.name == "Stable Moderate Markets")
    after.assignments = {**after.assignments, "USA": stable}
    (mover,) = compare(before, after).movers
    assert (mover.country, mover.before, mover.after) == ("USA", "High-Value Pharma Markets", "Stable Moderate Markets")
    line = describe_mover(mover)
    assert line.startswith(f"USA ({mover.market_share:.1%} of market)") and f"{mover.confidence_before:.2f}" in line


def test_an_artifact_from_before_markets_loads_unweighted_with_its_training_rows(original_model):
    _, model = original_model
    doc = json.loads(model.to_json())
    doc.pop("markets")
    doc.pop("training")
    old = ModelArtifact.from_dict(doc)
    assert not old.weighted and old.markets is None
    assert old.training_features == model.training_features  # rebuilt from the reference's values
    assert compare(old, old).weights == "unweighted"
    assert (old.predict(model.training_rows()[1]).clusters == model.predict(model.training_rows()[1]).clusters).all()
