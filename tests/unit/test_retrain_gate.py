"""Every promotion-gate check, passing and failing, plus the real candidates the gate exists for."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from pharmaseg.errors import PharmasegError
from pharmaseg.model.changes import compare
from pharmaseg.retrain import gate
from pharmaseg.retrain.gate import NO_PRODUCTION, GateThresholds, evaluate

T = GateThresholds()


@pytest.fixture(scope="module")
def panel(oecd_path):
    from pharmaseg.model.panel import read_panel

    return read_panel(oecd_path)


def fit(panel, oecd_path, window="2011-2020", **params):
    from pharmaseg.model.features import Window
    from pharmaseg.model.panel import panel_features
    from pharmaseg.model.training import TrainingParams, train

    artifact = train(
        panel_features(panel, Window.parse(window)),
        TrainingParams(**{"n_bootstrap": 10, **params}),
        source_uri=str(oecd_path),
        source_sha256="0" * 64,
        rows_read=len(panel.rows),
    )
    artifact.version = f"{window}/{params}"
    return artifact


@pytest.fixture(scope="module")
def production(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


@pytest.fixture
def candidate(production):
    artifact = copy.deepcopy(production)
    artifact.version = "1.1.0"
    return artifact


def test_identical_candidate_passes_every_check(candidate, production):
    result = evaluate(candidate, production)
    assert result.passed, result.failed
    assert set(result.checks) == {
        "data_rows",
        "data_freshness",
        "countries",
        "silhouette",
        "davies_bouldin",
        "stability",
        "min_segment_size",
        "profile_fit",
        "segment_names",
        "agreement_ari",
        "name_agreement",
        "market_agreement",
        "key_market_moves",
    }
    for check in result.checks.values():
        assert set(check) >= {"value", "threshold", "passed"}
    assert result.to_dict()["production_version"] == "1.0.0"


def test_without_production_only_the_candidate_checks_apply(candidate):
    result = evaluate(candidate, None)
    assert result.passed
    assert result.checks["agreement_ari"]["detail"] == NO_PRODUCTION
    candidate.metrics["stability"] = {"mean_ari": 0.1, "n_bootstrap": 10}
    assert evaluate(candidate, None).failed == ["stability"]


def test_data_rows(candidate, production):
    candidate.lineage["rows_read"] = production.lineage["rows_read"] - 1
    check = gate.check_rows(candidate, production)
    assert not check["passed"] and check["threshold"] == production.lineage["rows_read"]
    candidate.lineage["rows_read"] = production.lineage["rows_read"]
    assert gate.check_rows(candidate, production)["passed"]


def test_data_freshness(candidate, production):
    candidate.window = "2010-2019"
    assert gate.check_freshness(candidate, production) == {"value": 2019, "threshold": 2020, "passed": False}
    candidate.window = "2012-2021"
    assert gate.check_freshness(candidate, production)["passed"]


def test_countries(candidate, production):
    candidate.lineage["countries"] = 32  # ceil(0.9 * 36) = 33
    assert not gate.check_countries(candidate, production, T)["passed"]
    candidate.lineage["countries"] = 34  # what the 2012-2021 window keeps
    check = gate.check_countries(candidate, production, T)
    assert check["passed"] and check["threshold"] == 33


def test_silhouette(candidate, production):
    base = production.metrics["silhouette"]
    candidate.metrics["silhouette"] = base - 0.019
    assert gate.check_silhouette(candidate, production, T)["passed"]
    candidate.metrics["silhouette"] = base - 0.026  # the 183.8-inertia alternative's drop
    check = gate.check_silhouette(candidate, production, T)
    assert not check["passed"] and check["threshold"] == pytest.approx(base - 0.02)


def test_davies_bouldin(candidate, production):
    base = production.metrics["davies_bouldin"]
    candidate.metrics["davies_bouldin"] = base + 0.09
    assert gate.check_davies_bouldin(candidate, production, T)["passed"]
    candidate.metrics["davies_bouldin"] = base + 0.11
    assert not gate.check_davies_bouldin(candidate, production, T)["passed"]


def test_stability(candidate):
    candidate.metrics["stability"] = {"mean_ari": 0.51, "n_bootstrap": 10}
    assert gate.check_stability(candidate, T)["passed"]
    candidate.metrics["stability"] = {"mean_ari": 0.49, "n_bootstrap": 10}
    assert not gate.check_stability(candidate, T)["passed"]
    candidate.metrics["stability"] = {"mean_ari": float("nan"), "n_bootstrap": 0}
    check = gate.check_stability(candidate, T)
    assert not check["passed"] and check["value"] is None and "not measured" in check["detail"]


def test_min_segment_size(candidate):
    assert gate.check_min_segment_size(candidate, T) == {"value": 5, "threshold": 3, "passed": True}
    candidate.segments[0] = dataclasses.replace(candidate.segments[0], size=2)
    assert not gate.check_min_segment_size(candidate, T)["passed"]


def test_profile_fit(candidate):
    assert gate.check_profile_fit(candidate)["passed"]
    candidate.segments[0] = dataclasses.replace(candidate.segments[0], fits_profile=False)
    check = gate.check_profile_fit(candidate)
    assert not check["passed"] and candidate.segments[0].name in check["detail"]


def test_segment_names(candidate, production):
    assert gate.check_segment_names(candidate, production)["passed"]
    candidate.segments[0] = dataclasses.replace(candidate.segments[0], name="Stable Moderate Markets 1")
    assert not gate.check_segment_names(candidate, production)["passed"]


def agreement(candidate, production):
    return gate.check_agreement(candidate, production, compare(production, candidate), T)


def test_agreement_ari_fails_on_a_reshuffled_segmentation(candidate, production):
    assert agreement(candidate, production)["value"] == pytest.approx(1.0)
    countries = sorted(candidate.assignments)
    candidate.assignments = {c: i % candidate.k for i, c in enumerate(countries)}
    check = agreement(candidate, production)
    assert not check["passed"] and check["value"] < 0.75


def test_agreement_needs_enough_common_countries(candidate, production):
    candidate.assignments = {c: v for c, v in list(candidate.assignments.items())[:5]}
    check = agreement(candidate, production)
    assert not check["passed"] and "only 5 common countries" in check["detail"]


def test_name_agreement_catches_swapped_names_that_ari_ignores(candidate, production):
    """The same partition with two names swapped has ARI 1 but means something else."""
    by_name = {s.name: s for s in candidate.segments}
    high, declining = by_name["High-Value Pharma Markets"], by_name["Declining Markets"]
    candidate.segments[high.cluster] = dataclasses.replace(high, name=declining.name)
    candidate.segments[declining.cluster] = dataclasses.replace(declining, name=high.name)
    assert agreement(candidate, production)["passed"]
    check = gate.check_name_agreement(compare(production, candidate), T)
    assert not check["passed"] and "DEU: High-Value Pharma Markets -> Declining Markets" in check["detail"]


def move(candidate, country, to_name):
    """The candidate with one country assigned to the segment called ``to_name``."""
    cluster = next(s.cluster for s in candidate.segments if s.name == to_name)
    candidate.assignments = {**candidate.assignments, country: cluster}
    return candidate


def test_market_agreement_weighs_a_large_market_more_than_a_small_one(candidate, production):
    sizes = production.markets.sizes
    small = min(sizes, key=sizes.get)
    moved_small = gate.check_market_agreement(
        compare(production, move(copy.deepcopy(candidate), small, "Declining Markets")), T
    )
    assert moved_small["passed"] and moved_small["value"] == pytest.approx(1 - sizes[small] / sum(sizes.values()))
    moved_usa = gate.check_market_agreement(compare(production, move(candidate, "USA", "Stable Moderate Markets")), T)
    assert not moved_usa["passed"] and moved_usa["value"] < 0.9
    assert "TOTAL_SPEND" in moved_usa["detail"]


def test_one_country_above_the_key_share_holds_the_candidate(candidate, production):
    changes = compare(production, move(candidate, "DEU", "Stable Moderate Markets"))
    share = changes.shares["DEU"]
    assert share >= 0.05  # Germany: about 8% of the OECD's pharmaceutical spending
    check = gate.check_key_market_moves(changes, T)
    assert not check["passed"] and check["value"] == ["DEU"] and f"{share:.1%} of market" in check["detail"]
    lenient = dataclasses.replace(T, key_market_share=share + 0.01)
    assert gate.check_key_market_moves(changes, lenient)["passed"]


def test_artifacts_without_market_sizes_are_compared_unweighted(candidate, production):
    old_production, old_candidate = copy.deepcopy(production), move(candidate, "USA", "Stable Moderate Markets")
    old_production.markets = None
    old_candidate.markets = None
    changes = compare(old_production, old_candidate)
    assert changes.weights == "unweighted"
    assert changes.market_agreement == pytest.approx(1 - 1 / len(changes.common))
    check = gate.check_key_market_moves(changes, T)
    assert check["passed"] and "unweighted" in check["detail"]  # 1 of 36 is below 5%


def test_thresholds_from_json():
    assert GateThresholds.from_json("") == GateThresholds()
    assert GateThresholds.from_json('{"min_ari": 0.9, "min_segment_size": 4}').min_ari == 0.9
    with pytest.raises(PharmasegError, match="unknown gate threshold"):
        GateThresholds.from_json('{"min_arii": 0.9}')
    with pytest.raises(PharmasegError, match="must be a number"):
        GateThresholds.from_json('{"min_ari": "high"}')
    with pytest.raises(PharmasegError, match="not JSON"):
        GateThresholds.from_json("{")


# -- the real candidates the gate exists for ---------------------------------------------------


def test_fresh_window_2012_2021_is_held_because_the_usa_and_germany_move(panel, oecd_path, production):
    """Every count-based check passes (2 of 33 countries move), but they hold over half the market."""
    result = evaluate(fit(panel, oecd_path, "2012-2021"), production)
    assert set(result.failed) == {"market_agreement", "key_market_moves"}, result.checks
    assert result.checks["name_agreement"]["passed"]
    assert result.checks["market_agreement"]["value"] < 0.5
    assert set(result.checks["key_market_moves"]["value"]) == {"USA", "DEU"}
    movers = {m.country: m for m in result.comparison.movers}
    assert set(movers) == {"USA", "DEU"}
    assert movers["USA"].market_share > 0.4 and movers["USA"].after == "Stable Moderate Markets"


def test_lowest_inertia_solution_is_held_on_silhouette(panel, oecd_path, production):
    candidate = fit(panel, oecd_path, n_init=50)
    assert candidate.metrics["inertia"] == pytest.approx(183.8, abs=0.05)
    result = evaluate(candidate, production)
    assert "silhouette" in result.failed


def test_k4_model_is_held(panel, oecd_path, production):
    result = evaluate(fit(panel, oecd_path, k=4), production)
    assert {"segment_names", "silhouette"} <= set(result.failed)


def test_short_recent_window_is_held(panel, oecd_path, production):
    result = evaluate(fit(panel, oecd_path, "2019-2021"), production)
    assert {"agreement_ari", "silhouette"} <= set(result.failed)
