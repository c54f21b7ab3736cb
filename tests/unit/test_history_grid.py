"""The segment-history grid on its own: what it shows besides colour, gaps, and escaping."""

from pharmaseg.model.history import CountryHistory, ScoredWindow
from pharmaseg.model.segments import DECLINING, HIGH_VALUE, STABLE
from pharmaseg.reports.history_grid import history_grid, segment_letter


def _scored(window: str, segment: str, change: str | None = None) -> ScoredWindow:
    return ScoredWindow(window, segment, 0, 0.5, False, DECLINING, 0.3, change)


def test_every_segment_has_a_letter_numbered_stable_ones_included():
    assert [segment_letter(s) for s in (DECLINING, STABLE, HIGH_VALUE)] == ["D", "S", "H"]
    assert segment_letter(f"{STABLE} 2") == "S2"


def test_a_gap_in_a_countrys_data_is_a_blank_cell_and_changes_are_arrows():
    histories = [
        CountryHistory(
            "AAA", "1.0.0", [_scored("2001-2010", STABLE), _scored("2003-2012", DECLINING, "downgrade")], False, None
        ),
        CountryHistory("BBB", "1.0.0", [_scored("2002-2011", HIGH_VALUE)], True, "margin shrank"),
    ]
    grid = history_grid(histories)
    assert grid.count('class="sg-year"') == 3  # 2010, 2011, 2012
    assert grid.count('class="sg-none"') == 3  # AAA's 2002-2011, BBB's 2001-2010 and 2003-2012
    assert 'title="AAA 2002-2011: incomplete data"' in grid
    assert "\u25bcD</td>" in grid and 'title="margin shrank">watch</span>' in grid


def test_strings_from_data_are_escaped():
    hostile = '"><script>alert(1)</script>'
    grid = history_grid([CountryHistory(hostile, None, [_scored("2001-2010", hostile)], True, hostile)])
    # the legend, the row's country and watch reason, the cell's title (country and segment)
    assert "<script>" not in grid and grid.count("&lt;script&gt;") == 5
