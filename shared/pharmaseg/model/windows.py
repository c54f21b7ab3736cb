"""Every window of one length for every country of a panel, computed at once.

The feature store, the snapshot the prediction function serves and the segment history all start
here. The panel becomes one grid (countries x years x measures, NaN where a year is missing); each
window of ``years`` is a slice of it, and the complete ones go through ``derive_features`` in one
call, laid out as ``panel.panel_features`` lays out one window (countries, years, measures), so a
window's features here are bit-for-bit those training computes for it.

A feature set is identified by what decides its values: the source file's bytes (sha256), the
window and the feature code's version (``FEATURE_CODE_VERSION``, raised whenever
``derive_features`` or the measures change). Training records the id of its set in the artifact's
lineage; reading that set back from the store gives the artifact's training rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from pharmaseg.model.features import FEATURE_NAMES, MEASURES, Window, derive_features

FEATURE_CODE_VERSION = "pharmaseg.features/1"


def feature_set_id(source_sha256: str, window: Window | str, code_version: str = FEATURE_CODE_VERSION) -> str:
    """The id of the features one source file gives for one window under one version of the feature code."""
    return hashlib.sha256(f"{source_sha256}\n{window}\n{code_version}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WindowTable:
    """Per country (sorted) and window end (ascending): years present, and the 9 features where complete.

    ``features[c, w]`` is NaN for an incomplete window; ``present[c, w]`` counts its years with data.
    """

    countries: list[str]
    ends: np.ndarray  # (W,) int: the last year of each window
    years: int  # the windows' length
    present: np.ndarray  # (C, W) int
    features: np.ndarray  # (C, W, 9) float

    @property
    def complete(self) -> np.ndarray:
        return self.present == self.years

    def window(self, w: int) -> Window:
        end = int(self.ends[w])
        return Window(end - self.years + 1, end)

    def window_index(self, window: Window) -> int | None:
        if window.end - window.start + 1 != self.years or len(self.ends) == 0:
            return None
        w = window.end - int(self.ends[0])
        return w if 0 <= w < len(self.ends) else None

    def values(self, window: Window) -> tuple[list[str], np.ndarray]:
        """The countries complete in ``window`` and their features: ``panel_features``' table, exactly."""
        w = self.window_index(window)
        if w is None:
            return [], np.empty((0, len(FEATURE_NAMES)))
        keep = self.complete[:, w]
        return [c for c, k in zip(self.countries, keep) if k], self.features[keep, w]


def all_windows(rows, years: int) -> WindowTable:
    """Every ``years``-long window of the panel's span, for every country (``rows``: a validated panel's rows)."""
    if years < 2:
        raise ValueError(f"a window spans at least two years, not {years}")
    countries = sorted(set(rows["LOCATION"]))
    if not countries:
        return WindowTable([], np.empty(0, dtype=int), years, np.empty((0, 0), dtype=int), np.empty((0, 0, 9)))
    time = rows["TIME"].to_numpy(dtype=int)
    first, last = int(time.min()), int(time.max())
    span = last - first + 1
    if span < years:
        shape = (len(countries), 0)
        return WindowTable(countries, np.empty(0, dtype=int), years, np.empty(shape, dtype=int), np.empty((*shape, 9)))
    index = {c: i for i, c in enumerate(countries)}
    grid = np.full((len(countries), span, len(MEASURES)), np.nan)
    have = np.zeros((len(countries), span), dtype=int)
    c = rows["LOCATION"].map(index).to_numpy(dtype=int)
    grid[c, time - first] = rows[list(MEASURES)].to_numpy(dtype=float)
    have[c, time - first] = 1
    # years present per window: a running sum over the years, differenced `years` apart
    running = np.concatenate([np.zeros((len(countries), 1), dtype=int), np.cumsum(have, axis=1)], axis=1)
    present = running[:, years:] - running[:, :-years]
    ends = np.arange(first + years - 1, last + 1)
    features = np.full((len(countries), len(ends), len(FEATURE_NAMES)), np.nan)
    complete = present == years
    if complete.any():
        # (C, W, measures, years) -> the complete windows as (N, years, measures), contiguous like panel_features'
        slices = np.lib.stride_tricks.sliding_window_view(grid, years, axis=1)
        cube = np.ascontiguousarray(slices[complete].transpose(0, 2, 1))
        features[complete] = derive_features(cube)
    return WindowTable(countries, ends, years, present, features)
