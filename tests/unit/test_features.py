import numpy as np
import pytest

from pharmaseg.errors import DataValidationError
from pharmaseg.features import FEATURE_NAMES, Window, derive_features, features_from_series


def test_feature_order_is_measure_then_statistic():
    assert FEATURE_NAMES[:3] == ("PC_HEALTHXP_growth", "PC_HEALTHXP_avg", "PC_HEALTHXP_volatility")
    assert FEATURE_NAMES[-1] == "USD_CAP_volatility"
    assert len(FEATURE_NAMES) == 9


def test_derive_features_matches_the_definitions():
    years = 10
    rng = np.random.default_rng(0)
    cube = rng.uniform(1, 100, size=(4, years, 3))
    out = derive_features(cube)
    assert out.shape == (4, 9)
    for m in range(3):
        series = cube[:, :, m]
        np.testing.assert_allclose(out[:, 3 * m], ((series[:, -1] / series[:, 0]) ** (1 / (years - 1)) - 1) * 100)
        np.testing.assert_allclose(out[:, 3 * m + 1], series.mean(axis=1))
        np.testing.assert_allclose(out[:, 3 * m + 2], series.std(axis=1, ddof=1))


def test_constant_series_has_zero_growth_and_volatility():
    cube = np.full((1, 5, 3), 7.0)
    np.testing.assert_allclose(derive_features(cube)[0], [0, 7, 0] * 3)


def test_window_parsing_and_errors():
    assert list(Window.parse("2011-2020").years)[0] == 2011
    with pytest.raises(DataValidationError, match="START-END"):
        Window.parse("2011")
    with pytest.raises(DataValidationError, match="at least two years"):
        Window(2020, 2020)


def _series(years, **override):
    return [
        {"year": y, "PC_HEALTHXP": 10.0 + i, "PC_GDP": 1.0 + i / 10, "USD_CAP": 300.0 + 5 * i, **override}
        for i, y in enumerate(years)
    ]


def test_features_from_series_uses_window_years_only():
    window = Window(2011, 2020)
    inside = _series(range(2011, 2021))
    with_extra = _series(range(2005, 2011)) + inside
    np.testing.assert_allclose(features_from_series(inside, window), features_from_series(with_extra, window))
    cube = np.array([[[r["PC_HEALTHXP"], r["PC_GDP"], r["USD_CAP"]] for r in inside]])
    np.testing.assert_allclose(features_from_series(inside, window), derive_features(cube)[0])


@pytest.mark.parametrize(
    "series, message",
    [
        (_series(range(2011, 2020)), "years 2020 of the model's window 2011-2020 are missing"),
        (_series(range(2011, 2021), PC_GDP="abc"), "series[0].PC_GDP: 'abc' is not a number"),
        (_series(range(2011, 2021), USD_CAP=-1), "series[0].USD_CAP: -1 must be greater than zero"),
        (_series(range(2011, 2021), PC_GDP=float("inf")), "series[0].PC_GDP: inf is not a finite number"),
        (_series(range(2011, 2021), extra=1), "series[0]: unknown field(s) extra"),
        (_series(range(2011, 2021)) + _series([2011]), "series[10].year: duplicate year 2011"),
        ([{"year": "x"}], "series[0].year: 'x' is not an integer year"),
        (["nope"], "series[0]: must be an object"),
    ],
)
def test_features_from_series_names_the_bad_field(series, message):
    with pytest.raises(DataValidationError) as err:
        features_from_series(series, Window(2011, 2020))
    assert message in str(err.value)
