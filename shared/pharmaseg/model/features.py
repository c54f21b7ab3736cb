"""The 9 features of the original analysis, computed by one numpy function for every caller.

Training, batch scoring of raw panels and the HTTP function all reach ``derive_features``,
so serving cannot skew from training. This module imports numpy only: it sits on the
prediction function's cold path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pharmaseg.errors import DataValidationError

MEASURES: tuple[str, ...] = ("PC_HEALTHXP", "PC_GDP", "USD_CAP")
STATISTICS: tuple[str, ...] = ("growth", "avg", "volatility")
FEATURE_NAMES: tuple[str, ...] = tuple(f"{m}_{s}" for m in MEASURES for s in STATISTICS)
GROWTH_FEATURES: tuple[str, ...] = tuple(f"{m}_growth" for m in MEASURES)
LEVEL_FEATURES: tuple[str, ...] = tuple(f"{m}_avg" for m in MEASURES)

# What a strategist reads beside the column names (the strategy page shows both).
_MEASURE_WORDS = {
    "PC_HEALTHXP": ("Share of health spending", "%"),
    "PC_GDP": ("Share of GDP", "%"),
    "USD_CAP": ("Spending per head", "USD PPP"),
}
_STATISTIC_WORDS = {
    "growth": "growth (% a year)",
    "avg": "average ({unit})",
    "volatility": "year-to-year spread ({unit})",
}
FEATURE_LABELS: dict[str, str] = {
    f"{m}_{s}": f"{words}, {_STATISTIC_WORDS[s].format(unit=unit)}"
    for m, (words, unit) in _MEASURE_WORDS.items()
    for s in STATISTICS
}


@dataclass(frozen=True)
class Window:
    """An inclusive range of years; at least two so growth and a sample deviation exist."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end - self.start < 1:
            raise DataValidationError(f"window {self.start}-{self.end} must span at least two years", column="window")

    @classmethod
    def parse(cls, text: str) -> Window:
        """Read ``"2011-2020"``."""
        try:
            start, end = (int(part) for part in str(text).split("-"))
        except ValueError:
            raise DataValidationError(
                f"window {text!r} is not of the form START-END, e.g. 2011-2020", column="window"
            ) from None
        return cls(start, end)

    @property
    def years(self) -> range:
        return range(self.start, self.end + 1)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


DEFAULT_WINDOW = Window(2011, 2020)


def derive_features(cube: np.ndarray) -> np.ndarray:
    """Map yearly measures, shape (countries, years, 3) in MEASURES order, to (countries, 9).

    Growth is the compound annual growth rate from the first to the last year, in percent;
    volatility is the sample standard deviation (ddof=1), as in the original analysis.

    The cube is made C-contiguous first: numpy sums a contiguous axis pairwise and a strided one
    in order, so the same numbers laid out differently (a pandas frame's columns, a request's
    series, a slice of the feature store's grid) would otherwise differ in the last bits.
    """
    cube = np.ascontiguousarray(cube, dtype=float)
    if cube.ndim != 3 or cube.shape[2] != len(MEASURES) or cube.shape[1] < 2:
        raise ValueError(f"expected (countries, years>=2, {len(MEASURES)}), got {cube.shape}")
    years = cube.shape[1]
    growth = ((cube[:, -1, :] / cube[:, 0, :]) ** (1.0 / (years - 1)) - 1.0) * 100.0
    level = cube.mean(axis=1)
    volatility = cube.std(axis=1, ddof=1)
    # Interleave to FEATURE_NAMES order: per measure, growth, avg, volatility.
    return np.stack([growth, level, volatility], axis=2).reshape(cube.shape[0], -1)


def measure_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a spending measure, or None when it can."""
    if isinstance(value, bool) or value is None:
        return f"{value!r} is not a number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"{value!r} is not a number"
    if not math.isfinite(number):
        return f"{value!r} is not a finite number"
    if number <= 0:
        return f"{value!r} must be greater than zero (spending cannot be zero or negative)"
    return None
