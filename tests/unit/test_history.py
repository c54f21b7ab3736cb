"""Market history from the real OECD panel: the snapshot the prediction function serves, and each
country's segment across rolling windows under the original model."""

from __future__ import annotations

import copy

import pytest

from pharmaseg.model.features import Window
from pharmaseg.model.history import DOWNGRADE, UPGRADE, ScoredWindow, country_history, rank, watch
from pharmaseg.model.panel import panel_features, read_panel
from pharmaseg.model.segments import DECLINING, HIGH_VALUE, STABLE
from pharmaseg.model.snapshot import FeatureSnapshot, Source, decode, encode
from pharmaseg.model.windows import all_windows


@pytest.fixture(scope="module")
def panel(oecd_path):
    return read_panel(oecd_path)


@pytest.fixture(scope="module")
def snapshot(panel):
    table = all_windows(panel.rows, 10)
    return decode(encode(FeatureSnapshot.from_table(table, Source("gs://b/oecd.csv#1", "ab" * 32, "2026-12-02"))))


@pytest.fixture(scope="module")
def model(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


def test_snapshot_round_trip_keeps_training_rows_exactly(snapshot, model):
    """The snapshot's 2011-2020 rows are the artifact's training rows, bit for bit, after JSON."""
    for country, row in model.training_features.items():
        window, served = snapshot.row(country, "2011-2020")
        assert window == Window(2011, 2020)
        assert served == row, country


def test_snapshot_latest_is_each_countrys_newest_complete_window(snapshot, panel):
    table = all_windows(panel.rows, 10)
    for c, country in enumerate(table.countries):
        complete = [int(e) for e, ok in zip(table.ends, table.complete[c]) if ok]
        found = snapshot.row(country, "latest")
        if not complete:
            assert found is None
            continue
        assert found[0].end == complete[-1]
        assert found[1] == table.features[c, complete[-1] - int(table.ends[0])].tolist()


def test_snapshot_has_no_row_for_an_incomplete_or_unknown_window(snapshot):
    assert snapshot.row("IRL", "1950-1959") is None
    assert snapshot.row("XXX", "latest") is None
    assert snapshot.row("USA", "2013-2022") is None or snapshot.row("USA", "2013-2022")[0].end == 2022


def test_every_window_equals_panel_features(panel):
    table = all_windows(panel.rows, 10)
    assert len(table.ends) == int(panel.rows["TIME"].max()) - int(panel.rows["TIME"].min()) - 8
    for w in range(len(table.ends)):
        expected = panel_features(panel, table.window(w))
        countries, values = table.values(table.window(w))
        assert countries == expected.countries
        assert (values == expected.values).all(), table.window(w)


def test_ireland_goes_from_high_value_to_declining(snapshot, model):
    """The issue's story: High-Value (windows ending 2003-2012), Stable, Declining from 2015."""
    history = country_history(model, "IRL", snapshot.windows("IRL"), borderline_below=0.2)
    by_end = {int(w.window[-4:]): w for w in history.windows}
    assert all(by_end[end].segment == HIGH_VALUE for end in range(2003, 2013))
    assert by_end[2013].segment == STABLE and by_end[2013].change == DOWNGRADE
    assert by_end[2015].segment == DECLINING and by_end[2015].change == DOWNGRADE
    assert [w.window for w in history.windows] == sorted(w.window for w in history.windows)


def test_hungary_and_slovakia_fall_and_korea_rises(snapshot, model):
    def changes(country):
        history = country_history(model, country, snapshot.windows(country), borderline_below=0.2)
        return [(int(w.window[-4:]), w.segment, w.change) for w in history.changes]

    assert (2018, DECLINING, DOWNGRADE) in changes("HUN")
    assert (2017, DECLINING, DOWNGRADE) in changes("SVK")
    assert any(s == HIGH_VALUE and c == UPGRADE and 2000 <= end < 2010 for end, s, c in changes("KOR"))


def test_the_training_window_scores_as_the_model_assigned(snapshot, model):
    for country, cluster in model.assignments.items():
        history = country_history(model, country, snapshot.windows(country), borderline_below=0.2)
        (scored,) = [w for w in history.windows if w.window == model.window]
        assert scored.cluster == cluster


def _window(end, segment, margin):
    return ScoredWindow(f"{end - 9}-{end}", segment, 0, 0.5, False, DECLINING, margin, None)


def test_watch_needs_three_windows_of_shrinking_margin_in_one_segment():
    assert watch([_window(2018, STABLE, 0.5), _window(2019, STABLE, 0.4), _window(2020, STABLE, 0.3)])
    assert watch([_window(2018, STABLE, 0.5), _window(2019, STABLE, 0.6), _window(2020, STABLE, 0.3)]) is None
    assert watch([_window(2018, HIGH_VALUE, 0.5), _window(2019, STABLE, 0.4), _window(2020, STABLE, 0.3)]) is None
    assert watch([_window(2019, STABLE, 0.4), _window(2020, STABLE, 0.3)]) is None
    assert (
        watch([_window(2018, DECLINING, None), _window(2019, DECLINING, None), _window(2020, DECLINING, None)]) is None
    )


def test_ranks_order_the_segments():
    assert rank(DECLINING) < rank(STABLE) == rank(f"{STABLE} 2") < rank(HIGH_VALUE)
