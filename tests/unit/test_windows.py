"""Every window of the panel at once (model.windows): the same numbers as one window at a time, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from pharmaseg.model.features import Window
from pharmaseg.model.panel import panel_features, read_panel
from pharmaseg.model.windows import FEATURE_CODE_VERSION, all_windows, feature_set_id


@pytest.fixture(scope="module")
def panel(oecd_path):
    return read_panel(oecd_path, strict=True)


@pytest.mark.parametrize("years", [10, 5, 2])
def test_every_window_equals_panel_features_exactly_on_the_oecd_file(panel, years):
    table = all_windows(panel.rows, years)
    assert len(table.ends) == 2022 - 1970 - years + 2  # the file spans 1970-2022
    for w in range(len(table.ends)):
        window = table.window(w)
        expected = panel_features(panel, window)
        countries, values = table.values(window)
        assert countries == expected.countries, window
        assert values.shape == expected.values.shape and values.tobytes() == expected.values.tobytes(), window


def test_years_present_counts_each_countrys_rows_in_the_window(panel):
    table = all_windows(panel.rows, 10)
    rows = panel.rows
    for c in (table.countries.index("DEU"), table.countries.index("CRI"), table.countries.index("USA")):
        country = table.countries[c]
        years = set(rows.loc[rows["LOCATION"] == country, "TIME"])
        for w in range(len(table.ends)):
            window = table.window(w)
            assert table.present[c, w] == len(years & set(window.years)), (country, window)
            assert np.isnan(table.features[c, w]).all() != table.complete[c, w], (country, window)


def test_window_index_names_only_windows_of_the_tables_length_and_span(panel):
    table = all_windows(panel.rows, 10)
    assert table.window_index(Window(2011, 2020)) == 2020 - 1979
    assert table.window(table.window_index(Window(2011, 2020))) == Window(2011, 2020)
    assert table.window_index(Window(2012, 2020)) is None  # 9 years
    assert table.window_index(Window(1960, 1969)) is None and table.window_index(Window(2020, 2029)) is None
    countries, values = table.values(Window(2012, 2020))
    assert countries == [] and values.shape == (0, 9)


def test_a_panel_shorter_than_the_window_has_no_windows(panel):
    rows = panel.rows[panel.rows["TIME"] >= 2018]
    table = all_windows(rows, 10)
    assert len(table.ends) == 0 and table.features.shape == (len(table.countries), 0, 9)
    assert not table.complete.any()
    with pytest.raises(ValueError, match="at least two years"):
        all_windows(rows, 1)


def test_a_feature_set_is_named_by_the_bytes_the_window_and_the_feature_code():
    sha = "ab" * 32
    same = feature_set_id(sha, Window(2011, 2020))
    assert same == feature_set_id(sha, "2011-2020") == feature_set_id(sha, "2011-2020", FEATURE_CODE_VERSION)
    others = {
        feature_set_id("cd" * 32, "2011-2020"),
        feature_set_id(sha, "2012-2021"),
        feature_set_id(sha, "2011-2020", "pharmaseg.features/2"),
    }
    assert same not in others and len(others) == 3 and len(same) == 32
