import numpy as np
import pytest

from pharmaseg.errors import DataValidationError
from pharmaseg.model.features import FEATURE_NAMES, Window, derive_features


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
