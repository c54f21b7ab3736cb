"""Explanations: the margin splits exactly, the what-if lands on the boundary, single-feature flips
really flip (and are the smallest), both paths agree with each other and with scikit-learn.

Property tests draw rows from the real 2011-2020 model's training range widened by its span on
each side (so a third of each feature's draws lie outside it), with all nine features or a
partial subset holding at least the three spending levels. Every check is recomputed here
independently (numpy or math.fsum), never with the module's own arithmetic.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from pharmaseg.config import SETTINGS
from pharmaseg.errors import DataValidationError
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.explain import (
    NO_SINGLE_FEATURE,
    REQUIRED_FEATURES,
    TOP_REASONS,
    Explainer,
    explainer_for,
)
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.segments import HIGH_VALUE, Segment
from pharmaseg_dev import explain as explain_cli

REPO = Path(__file__).resolve().parents[2]
THRESHOLD = float(SETTINGS["PHARMASEG_BORDERLINE_CONFIDENCE"].default)
REQUIRED = [FEATURE_NAMES.index(f) for f in REQUIRED_FEATURES]
OPTIONAL = [i for i in range(len(FEATURE_NAMES)) if i not in REQUIRED]
MANY = settings(max_examples=3000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DICT_KEYS = {"runner_up", "borderline", "margin", "reasons", "what_if"}
REASON_KEYS = {"feature", "contribution", "share", "value", "segment_value", "runner_up_value"}
WHAT_IF_KEYS = {"distance", "changes", "moved_values", "lands_in", "single_feature", "single_feature_note"}

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
rows = st.lists(unit, min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES))
subsets = st.one_of(st.none(), st.sets(st.sampled_from(OPTIONAL)).map(lambda extra: tuple(sorted({*REQUIRED, *extra}))))


@pytest.fixture(scope="module")
def model(original_model):
    table, artifact = original_model
    low, high = table.values.min(axis=0), table.values.max(axis=0)
    return table, artifact, explainer_for(artifact, THRESHOLD), low - (high - low), 3 * (high - low)


def draw(model, u) -> list[float]:
    _, _, _, start, width = model
    return (start + np.array(u) * width).tolist()


def independent(artifact: ModelArtifact, row, used) -> np.ndarray:
    """Squared distances to every centroid over the used features, with exactly rounded sums."""
    idx = list(range(len(FEATURE_NAMES))) if used is None else list(used)
    z = (np.asarray(row, dtype=float)[idx] - artifact.scaler_mean[idx]) / artifact.scaler_scale[idx]
    return np.array([math.fsum(t) for t in (z - artifact.centroids[:, idx]) ** 2])


def nearest_over(artifact, row, used) -> int:
    return int(np.argmin(independent(artifact, row, used)))


def names_of(used) -> list[str]:
    return list(FEATURE_NAMES) if used is None else [FEATURE_NAMES[i] for i in used]


# -- the margin and the reasons -------------------------------------------------------------------


@MANY
@given(u=rows, used=subsets)
def test_contributions_sum_to_the_margin_and_reasons_are_the_largest(model, u, used):
    _, artifact, explainer, _, _ = model
    row = draw(model, u)
    e = explainer.explain(row, used)
    dsq = independent(artifact, row, used)
    ranked = np.argsort(dsq, kind="stable")
    assert (e.cluster, e.runner_up) == (ranked[0], ranked[1])
    assert abs(math.fsum(e.contributions) - e.margin) <= 1e-9
    assert e.margin == pytest.approx(dsq[ranked[1]] - dsq[ranked[0]], rel=1e-9, abs=1e-9) and e.margin >= 0
    assert e.confidence == pytest.approx(1 - math.sqrt(dsq[ranked[0]] / dsq[ranked[1]]), rel=1e-9, abs=1e-12)
    assert e.borderline == (e.confidence < THRESHOLD)
    if used is None:  # the same answer as the vectorised prediction batch scoring serves
        served = artifact.predict(np.asarray([row]))
        assert e.cluster == served.clusters[0]
        assert e.distances == pytest.approx(served.distances[0].tolist(), rel=1e-12)
        assert e.confidence == pytest.approx(float(served.confidence[0]), rel=1e-9, abs=1e-12)

    names = names_of(used)
    every = e.reasons(all_reasons=True)
    assert sorted(r.feature for r in every) == sorted(names)
    assert [r.contribution for r in every] == sorted(e.contributions, reverse=True)
    assert e.reasons() == every[:TOP_REASONS]
    original = artifact.centroids_original_units()
    for r in every:
        j = FEATURE_NAMES.index(r.feature)
        assert r.value == row[j]
        assert r.segment_value == pytest.approx(original[e.cluster, j], rel=1e-12)
        assert r.runner_up_value == pytest.approx(original[e.runner_up, j], rel=1e-12)
        assert r.share == (None if e.margin == 0 else r.contribution / e.margin)
    if e.margin > 1e-6:
        assert math.fsum(s for s in e.shares) == pytest.approx(1.0, abs=1e-9 / e.margin)

    doc = e.to_dict()
    assert set(doc) == DICT_KEYS and set(doc["what_if"]) == WHAT_IF_KEYS
    assert all(set(r) == REASON_KEYS for r in doc["reasons"]) and len(doc["reasons"]) == min(TOP_REASONS, len(names))
    assert len(e.to_dict(all_reasons=True)["reasons"]) == len(names)
    assert doc["runner_up"]["cluster_name"] == artifact.segment(e.runner_up).name
    json.dumps(doc, allow_nan=False)


# -- the what-if --------------------------------------------------------------------------------


@MANY
@given(u=rows, used=subsets)
def test_what_if_lands_on_the_runner_up_side_within_1e6_of_the_boundary(model, u, used):
    _, artifact, explainer, _, _ = model
    row = draw(model, u)
    e = explainer.explain(row, used)
    doc = e.to_dict()["what_if"]
    names = names_of(used)
    assert list(doc["moved_values"]) == names and doc["moved_values"] == dict(zip(names, e.moved_values))
    moved = list(row)
    for name, value in doc["moved_values"].items():
        moved[FEATURE_NAMES.index(name)] = value
    idx = [FEATURE_NAMES.index(n) for n in names]
    c1, c2 = artifact.centroids[e.cluster, idx], artifact.centroids[e.runner_up, idx]
    z = artifact.scale(row)[idx]
    z_moved = artifact.scale(moved)[idx]
    d_moved = independent(artifact, moved, used)
    assert d_moved[e.runner_up] <= d_moved[e.cluster]  # on the runner-up's side (or tied)
    gap = np.linalg.norm(c2 - c1)
    assert (d_moved[e.cluster] - d_moved[e.runner_up]) / (2 * gap) <= 1e-6  # and within 1e-6 of the boundary
    assert e.what_if_distance == pytest.approx(e.margin / (2 * gap), rel=1e-9, abs=1e-12)
    step = z_moved - z
    assert np.linalg.norm(step) == pytest.approx(e.what_if_distance, abs=1e-6)
    assert np.allclose(step, (step @ (c2 - c1)) / gap**2 * (c2 - c1), atol=1e-9)  # along c2 - c1
    lands = nearest_over(artifact, moved, used)
    if abs(np.partition(d_moved, 1)[1] - d_moved.min()) > 1e-9:  # where it lands is unambiguous
        assert artifact.segment(lands).name == doc["lands_in"] and e.lands_in == lands
    assert e.lands_in != e.cluster
    if used is None:
        assert int(artifact.predict(np.asarray([moved])).clusters[0]) == e.lands_in


def _toy(centroids, ranges=None) -> ModelArtifact:
    """Identity scaler (z = x) so geometry can be laid out by hand; ranges: (min, max) per feature."""
    ref = {"features": {f: {"min": lo, "max": hi} for f, (lo, hi) in zip(FEATURE_NAMES, ranges)}} if ranges else {}
    return ModelArtifact(
        feature_names=list(FEATURE_NAMES),
        window="2011-2020",
        scaler_mean=np.zeros(9),
        scaler_scale=np.ones(9),
        centroids=np.asarray(centroids, dtype=float),
        segments=[Segment(i, f"S{i}", "", 1, 0.0, 0.0, True) for i in range(len(centroids))],
        reference=ref,
        metrics={},
        lineage={},
        assignments={},
    )


def _point(*head: float) -> list[float]:
    return [*head] + [0.0] * (9 - len(head))


def test_what_if_says_when_a_third_segment_is_nearer_on_the_boundary():
    # z = (0.5, 3): nearest c0 = (0, 0), runner-up c1 = (4, 0); on their boundary (2, 3), c2 = (5.3, 3) is nearer.
    artifact = _toy([_point(0, 0), _point(4, 0), _point(5.3, 3)])
    explainer = Explainer(artifact, THRESHOLD)
    row = _point(0.5, 3)
    e = explainer.explain(row)
    assert (e.cluster, e.runner_up, e.lands_in) == (0, 1, 2)
    assert e.to_dict()["what_if"]["lands_in"] == "S2"
    assert int(artifact.predict(np.asarray([e.moved_values])).clusters[0]) == 2
    many = explainer.explain_many(np.array([row]))
    assert many.lands_in.tolist() == [2]


def test_a_row_on_the_boundary_has_no_shares_and_moves_only_by_the_nudge():
    artifact = _toy([_point(0, 0), _point(2, 0), _point(0, 9)])
    explainer = Explainer(artifact, THRESHOLD)
    e = explainer.explain(_point(1, 0))
    assert e.margin == 0 and (e.cluster, e.runner_up) == (0, 1) and e.borderline and e.confidence == 0
    doc = e.to_dict()
    assert all(r["share"] is None for r in doc["reasons"])
    assert doc["what_if"]["distance"] == 0 and doc["what_if"]["lands_in"] == "S1"
    assert 0 < e.moved_values[0] - 1 < 1e-8
    json.dumps(doc, allow_nan=False)
    assert np.isnan(explainer.explain_many(np.array([_point(1, 0)])).shares).all()


def test_no_single_feature_flip_within_a_narrow_training_range_is_said_so():
    row = _point(0.5)
    ranges = [(v - 0.1, v + 0.1) for v in row]  # the tie with c1 is at 1.0, outside
    explainer = Explainer(_toy([_point(0), _point(2), _point(0, 9)], ranges), THRESHOLD)
    e = explainer.explain(row)
    assert e.single_feature is None
    assert e.to_dict()["what_if"]["single_feature"] is None
    assert e.to_dict()["what_if"]["single_feature_note"] == NO_SINGLE_FEATURE
    many = explainer.explain_many(np.array([row]))
    assert many.single_feature.tolist() == [-1] and np.isnan(many.single_change).all()


def test_a_feature_outside_its_range_flips_only_once_back_inside():
    # x0 = -1 is below its range [1.5, 3]; the tie with c1 is at 1.0, so the smallest in-range
    # flip is to the range's lower end. Every other feature is pinned to its value.
    row = _point(-1.0)
    ranges = [(1.5, 3.0)] + [(v, v) for v in row[1:]]
    artifact = _toy([_point(0), _point(2), _point(0, 9)], ranges)
    explainer = Explainer(artifact, THRESHOLD)
    flip = explainer.explain(row).single_feature
    assert flip is not None and flip.feature == FEATURE_NAMES[0]
    assert (flip.to, flip.change, flip.flips_to) == (1.5, 2.5, 1)
    many = explainer.explain_many(np.array([row]))
    assert many.single_to.tolist() == [1.5] and many.single_flips_to.tolist() == [1]


# -- single-feature flips -----------------------------------------------------------------------


def _smallest_flip(artifact, row, used, j, c1, lo, hi) -> float:
    """Smallest |change| (standardized) of feature j alone that leaves c1 within [lo, hi], by bisection.

    Along a line c1's region is an interval, so the flipped values within [lo, hi] (if any) reach
    lo or hi: test the ends, then bisect between the nearest in-range point and a flipped end.
    """

    def flipped(value):
        moved = list(row)
        moved[j] = value
        return nearest_over(artifact, moved, used) != c1

    x, best = row[j], math.inf
    for start, end, sign in ((max(x, lo), hi, 1), (min(x, hi), lo, -1)):
        if (start - end) * sign > 0:
            continue  # no in-range values this way
        if flipped(start):
            best = min(best, abs(start - x))
        elif flipped(end):
            inside, outside = start, end
            for _ in range(80):
                middle = (inside + outside) / 2
                if middle in (inside, outside):
                    break
                inside, outside = (inside, middle) if flipped(middle) else (middle, outside)
            best = min(best, abs(outside - x))
    return best / artifact.scaler_scale[j]


@FEWER
@given(u=rows, used=subsets)
def test_single_feature_flip_really_flips_stays_in_range_and_is_the_smallest(model, u, used):
    _, artifact, explainer, _, _ = model
    row = draw(model, u)
    e = explainer.explain(row, used)
    ref = artifact.reference["features"]
    sizes = {
        name: _smallest_flip(
            artifact, row, used, FEATURE_NAMES.index(name), e.cluster, ref[name]["min"], ref[name]["max"]
        )
        for name in names_of(used)
    }
    flip = e.single_feature
    if flip is None:
        assert all(s == math.inf for s in sizes.values()), sizes
        assert e.to_dict()["what_if"]["single_feature_note"] == NO_SINGLE_FEATURE
        return
    j = FEATURE_NAMES.index(flip.feature)
    assert ref[flip.feature]["min"] <= flip.to <= ref[flip.feature]["max"]
    assert flip.to == pytest.approx(row[j] + flip.change, rel=1e-12, abs=1e-12)
    moved = list(row)
    moved[j] = flip.to
    assert nearest_over(artifact, moved, used) == flip.flips_to != e.cluster
    size = abs(flip.change) / artifact.scaler_scale[j]
    assert size <= min(sizes.values()) + 1e-6, (flip, sizes)
    assert size >= sizes[flip.feature] - 1e-12  # it cannot flip before the real boundary
    doc = e.to_dict()["what_if"]["single_feature"]
    assert doc["feature"] == flip.feature and doc["flips_to"] == artifact.segment(flip.flips_to).name


# -- numpy twin, scikit-learn -------------------------------------------------------------------


def _assert_same(e, many, i: int) -> None:
    """The plain-Python explanation ``e`` equals row ``i`` of ``explain_many``'s answer."""
    assert (e.cluster, e.runner_up, e.lands_in, e.borderline) == (
        many.clusters[i],
        many.runner_up[i],
        many.lands_in[i],
        many.borderline[i],
    )
    assert e.order == many.order[i].tolist()
    for mine, theirs in [
        (e.distances, many.distances[i]),
        ([e.confidence, e.margin, e.what_if_distance], [many.confidence[i], many.margin[i], many.what_if_distance[i]]),
        (e.contributions, many.contributions[i]),
        ([np.nan if s is None else s for s in e.shares], many.shares[i]),
        (e.changes, many.changes[i]),
        (e.moved_values, many.moved_values[i]),
    ]:
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)
    flip = e.single_feature
    if flip is None:
        assert many.single_feature[i] == -1 and many.single_flips_to[i] == -1
    else:
        assert many.features[many.single_feature[i]] == flip.feature and many.single_flips_to[i] == flip.flips_to
        np.testing.assert_allclose([flip.change, flip.to], [many.single_change[i], many.single_to[i]], rtol=1e-12)


@MANY
@given(u=rows, used=subsets)
def test_numpy_twin_agrees_with_plain_python_on_each_row(model, u, used):
    _, _, explainer, _, _ = model
    row = draw(model, u)
    _assert_same(explainer.explain(row, used), explainer.explain_many(np.array([row]), used), 0)


@pytest.mark.parametrize("used", [None, tuple(REQUIRED), tuple(sorted([*REQUIRED, 0, 8]))])
def test_numpy_twin_agrees_with_plain_python_on_many_rows(model, used):
    table, artifact, explainer, start, width = model
    values = np.vstack([table.values, start + np.random.default_rng(3).uniform(size=(3000, 9)) * width])
    many = explainer.explain_many(values, used)
    for i, row in enumerate(values.tolist()):
        _assert_same(explainer.explain(row, used), many, i)
    lean = explainer.explain_many(values, used, what_if=False)
    assert lean.changes is None and lean.single_feature is None
    assert (lean.order == many.order).all() and (lean.what_if_distance == many.what_if_distance).all()
    if used is None:
        predicted = artifact.predict(values)
        assert (many.clusters == predicted.clusters).all()
        np.testing.assert_allclose(many.distances, predicted.distances, rtol=1e-12)
        np.testing.assert_allclose(many.confidence, predicted.confidence, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def kmeans(original_model):
    table, artifact = original_model
    scaler = StandardScaler().fit(table.values)
    fitted = KMeans(3, random_state=42, n_init=10).fit(scaler.transform(table.values))
    assert (fitted.labels_ == artifact.predict(table.values).clusters).all()  # the same model
    return scaler, fitted


def test_clusters_runner_up_and_margin_agree_with_sklearn(model, kmeans):
    table, _, explainer, start, width = model
    scaler, fitted = kmeans
    values = np.vstack([table.values, start + np.random.default_rng(5).uniform(size=(5000, 9)) * width])
    distances = fitted.transform(scaler.transform(values))
    ranked = np.argsort(distances, axis=1)
    many = explainer.explain_many(values)
    assert (many.clusters == fitted.predict(scaler.transform(values))).all()
    assert (many.runner_up == ranked[:, 1]).all()
    rows = np.arange(len(values))
    expected = distances[rows, ranked[:, 1]] ** 2 - distances[rows, ranked[:, 0]] ** 2
    np.testing.assert_allclose(many.margin, expected, rtol=1e-9, atol=1e-9)
    assert [explainer.explain(r).cluster for r in values[:1000].tolist()] == many.clusters[:1000].tolist()


@MANY
@given(u=rows)
def test_plain_python_cluster_is_sklearn_predict(model, kmeans, u):
    _, _, explainer, _, _ = model
    scaler, fitted = kmeans
    row = draw(model, u)
    assert explainer.explain(row).cluster == fitted.predict(scaler.transform([row]))[0]


# -- Germany under the original model -----------------------------------------------------------


def test_germany_is_explained_by_its_own_numbers(model):
    table, artifact, explainer, _, _ = model
    row = table.values[table.countries.index("DEU")].tolist()
    e = explainer.explain(row)
    assert e.cluster == artifact.assignments["DEU"] and artifact.segment(e.cluster).name == HIGH_VALUE
    distances = np.linalg.norm(artifact.scale(row) - artifact.centroids, axis=1)
    assert e.runner_up == np.argsort(distances)[1]
    assert e.confidence == pytest.approx(1 - distances[e.cluster] / distances[e.runner_up], rel=1e-12)
    assert e.borderline == (e.confidence < THRESHOLD)
    doc = e.to_dict(all_reasons=True)
    contributions = [r["contribution"] for r in doc["reasons"]]
    assert contributions == sorted(contributions, reverse=True)
    assert math.fsum(r["share"] for r in doc["reasons"]) == pytest.approx(1.0, abs=1e-5)
    original = artifact.centroids_original_units()
    for r in doc["reasons"]:
        j = FEATURE_NAMES.index(r["feature"])
        assert r["value"] == pytest.approx(row[j], abs=1e-6)
        assert r["segment_value"] == pytest.approx(original[e.cluster, j], abs=1e-6)
        assert r["runner_up_value"] == pytest.approx(original[e.runner_up, j], abs=1e-6)
    for r in e.reasons(all_reasons=True):
        # a feature speaks for the segment exactly when DEU is nearer the segment's value in it
        j = FEATURE_NAMES.index(r.feature)
        assert (r.contribution > 0) == (abs(row[j] - original[e.cluster, j]) < abs(row[j] - original[e.runner_up, j]))
    what_if = doc["what_if"]
    moved = [what_if["moved_values"][f] for f in FEATURE_NAMES]
    assert (
        artifact.segment(int(artifact.predict(np.asarray([moved])).clusters[0])).name
        == what_if["lands_in"]
        != HIGH_VALUE
    )
    flip = what_if["single_feature"]
    j = FEATURE_NAMES.index(flip["feature"])
    flipped = list(row)
    flipped[j] = e.single_feature.to
    assert (
        artifact.segment(int(artifact.predict(np.asarray([flipped])).clusters[0])).name
        == flip["flips_to"]
        != HIGH_VALUE
    )
    ref = artifact.reference["features"][flip["feature"]]
    assert ref["min"] <= flip["to"] <= ref["max"]

    levels = explainer.explain(row, explainer.used_indexes(REQUIRED_FEATURES))
    assert sorted(r.feature for r in levels.reasons()) == sorted(REQUIRED_FEATURES)
    assert abs(math.fsum(levels.contributions) - levels.margin) <= 1e-9
    assert levels.cluster == nearest_over(artifact, row, tuple(REQUIRED))
    assert set(levels.to_dict()["what_if"]["changes"]) == set(REQUIRED_FEATURES)


def test_docs_worked_examples_are_the_real_output(original_model, tmp_path):
    """docs/explanations.md shows `python -m pharmaseg_dev.explain ARGS` output; it must be current."""
    _, artifact = original_model
    path = tmp_path / "model.json"
    path.write_bytes(artifact.to_json())
    doc = (REPO / "docs/explanations.md").read_text()
    examples = re.findall(r"\$ python -m pharmaseg_dev\.explain ([^\n]*)\n(.*?)\n```", doc, flags=re.S)
    assert len(examples) >= 2
    for args, shown in examples:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert explain_cli.main([*args.split(), "--model", str(path)]) == 0
        assert json.loads(shown) == json.loads(out.getvalue()), args


# -- settings and validation --------------------------------------------------------------------


def test_borderline_default_flags_the_low_confidence_tail_of_the_training_countries(model):
    """The default sits in the widest gap of the lowest third of training confidences, so small
    changes of the data do not move countries across it (docs/explanations.md)."""
    table, _, explainer, _, _ = model
    confidence = np.sort(explainer.explain_many(table.values, what_if=False).confidence)
    low = confidence[: len(confidence) // 3]
    gaps = np.diff(low)
    widest = int(np.argmax(gaps))
    assert low[widest] < THRESHOLD < low[widest + 1]
    assert 0 < (confidence < THRESHOLD).sum() <= len(confidence) // 4


def test_partial_inputs_need_the_spending_levels_and_known_features(model):
    _, _, explainer, _, _ = model
    with pytest.raises(DataValidationError, match="missing USD_CAP_avg") as info:
        explainer.used_indexes(["PC_HEALTHXP_avg", "PC_GDP_avg", "PC_GDP_growth"])
    assert info.value.column == "USD_CAP_avg"
    with pytest.raises(DataValidationError, match="unknown feature"):
        explainer.used_indexes([*REQUIRED_FEATURES, "GDP"])
    assert explainer.used_indexes(reversed(REQUIRED_FEATURES)) == tuple(sorted(REQUIRED))
    with pytest.raises(ValueError, match="must include"):
        explainer.explain([1.0] * 9, (0, 1))
    with pytest.raises(ValueError, match="sorted distinct"):
        explainer.explain([1.0] * 9, (7, 4, 1))


def test_explainer_is_cached_per_model_and_threshold(original_model):
    _, artifact = original_model
    assert explainer_for(artifact, THRESHOLD) is explainer_for(artifact, THRESHOLD)
    assert explainer_for(artifact, 0.5) is not explainer_for(artifact, THRESHOLD)
    copy = ModelArtifact.from_json(artifact.to_json())
    assert explainer_for(copy, THRESHOLD) is not explainer_for(artifact, THRESHOLD)
    with pytest.raises(ValueError, match="within"):
        Explainer(artifact, 1.5)
