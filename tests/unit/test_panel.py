import io

import numpy as np
import pytest

from pharmaseg.errors import DataValidationError
from pharmaseg.model.features import Window
from pharmaseg.model.panel import panel_features, read_panel

HEADER = "LOCATION,TIME,PC_HEALTHXP,PC_GDP,USD_CAP,TOTAL_SPEND\n"


def _read(text, **kw):
    return read_panel(io.StringIO(text), **kw)


def test_real_panel_has_36_complete_countries_for_2011_2020(oecd_path):
    table = panel_features(read_panel(oecd_path), Window(2011, 2020))
    assert len(table.countries) == 36
    assert table.values.shape == (36, 9)
    assert "BGR" in table.excluded or "BRA" in table.excluded
    assert len(panel_features(read_panel(oecd_path), Window(2012, 2021)).countries) == 34


@pytest.mark.parametrize(
    "body, expected",
    [
        ("AUS,2011,1,2,abc,4\n", "line 2, column USD_CAP: 'abc' is not a number"),
        ("AUS,2011,1,0,3,4\n", "line 2, column PC_GDP: '0' must be greater than zero"),
        ("AUS,2011,-1,2,3,4\n", "line 2, column PC_HEALTHXP: '-1' must be greater than zero"),
        ("AUS,20x1,1,2,3,4\n", "line 2, column TIME: '20x1' is not an integer year"),
        (",2011,1,2,3,4\n", "line 2, column LOCATION: empty country code"),
        (
            "AUS,2011,1,2,3,4\nAUT,2011,1,2,3,4\nAUS,2011,1,2,3,4\n",
            "line 4, column TIME: duplicate country-year AUS 2011 (first seen on line 2)",
        ),
    ],
)
def test_strict_read_names_row_and_column(body, expected):
    with pytest.raises(DataValidationError) as err:
        _read(HEADER + body)
    assert str(err.value).startswith(expected)
    assert err.value.row == int(expected.split(",")[0].split()[1])


def test_missing_column_is_reported_on_the_header():
    with pytest.raises(DataValidationError, match=r"line 1 \(header\): missing column\(s\) PC_GDP"):
        _read("LOCATION,TIME,PC_HEALTHXP,USD_CAP\nAUS,2011,1,3\n")


def test_empty_file_is_a_clear_error():
    with pytest.raises(DataValidationError, match="the file is empty"):
        _read("")


def test_lenient_read_keeps_good_rows_and_counts_every_row():
    body = "AUS,2011,1,2,3,4\nAUS,2012,x,2,3,4\nAUT,2011,1,2,3,4\nAUS,2011,9,9,9,9\n"
    panel = _read(HEADER + body, strict=False)
    assert len(panel.rows) + len(panel.problems) == 4
    assert [p.line for p in panel.problems] == [3, 5]
    assert panel.rows["line"].tolist() == [2, 4]


def test_bom_crlf_and_quotes_are_accepted():
    text = "\ufeff" + HEADER.replace("\n", "\r\n") + '"AUS",2011,"1.5",2,3,4\r\n'
    panel = _read(text)
    assert panel.rows.iloc[0]["LOCATION"] == "AUS"
    assert panel.rows.iloc[0]["PC_HEALTHXP"] == 1.5


def test_incomplete_window_excludes_country_with_reason():
    rows = "".join(f"AUS,{y},1,2,{3 + y - 2011},4\n" for y in range(2011, 2021))
    rows += "".join(f"AUT,{y},1,2,3,4\n" for y in range(2011, 2020))
    table = panel_features(_read(HEADER + rows), Window(2011, 2020))
    assert table.countries == ["AUS"]
    assert table.excluded == {"AUT": "9 of 10 years of window 2011-2020 present"}
    assert np.isclose(table.values[0, 6], ((12 / 3) ** (1 / 9) - 1) * 100)


@pytest.mark.parametrize("year", ["inf", "1e20", "-5"])
def test_years_must_be_plausible_integers(year):
    with pytest.raises(DataValidationError, match=f"line 2, column TIME: '{year}' is not an integer year"):
        _read(HEADER + f"AUS,{year},1,2,3,4\n")
