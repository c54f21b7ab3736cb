"""The raw OECD panel: its data contract, row-level validation, and the per-country feature table.

Validation is row-level so that batch scoring can reject bad rows and keep the rest, while
training (``strict=True``) refuses a file with any bad row. Row numbers are the CSV's line
numbers (the header is line 1), which is what a person opening the file sees.

``TOTAL_SPEND`` (million USD) is optional and never a feature: it weighs a country by the size of
its market when retraining decides whether a new model may replace the one in use. An empty cell
means "not published"; anything else must be a positive number like the other measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pharmaseg.errors import DataValidationError
from pharmaseg.model.features import FEATURE_NAMES, MEASURES, Window, derive_features, measure_problem

KEY_COLUMNS: tuple[str, ...] = ("LOCATION", "TIME")
REQUIRED_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *MEASURES)
MARKET_SIZE = "TOTAL_SPEND"
OPTIONAL_COLUMNS: tuple[str, ...] = (MARKET_SIZE,)
FIRST_DATA_LINE = 2
MIN_YEAR, MAX_YEAR = 1900, 2200  # beyond these a TIME value is a unit or entry mistake


@dataclass(frozen=True)
class RowProblem:
    """Why one input row cannot be used; ``line`` is its line number in the CSV."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass
class Panel:
    """Valid rows (with their source line in column ``line``) and the rows that were rejected."""

    rows: pd.DataFrame
    problems: list[RowProblem] = field(default_factory=list)


@dataclass(frozen=True)
class MarketSize:
    """A country's pharmaceutical spending (TOTAL_SPEND, million USD) and the year it is from."""

    value: float
    year: int


@dataclass
class FeatureTable:
    """One row of the 9 features per country with a complete window, and why others were left out.

    ``market_sizes`` holds, per country of ``countries``, TOTAL_SPEND in the window's last year, or
    in the latest year of the window where it is published; a country without it is absent.
    """

    countries: list[str]
    values: np.ndarray
    window: Window
    excluded: dict[str, str] = field(default_factory=dict)
    market_sizes: dict[str, MarketSize] = field(default_factory=dict)


def _raise_first(problems: list[RowProblem]) -> None:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    raise DataValidationError(f"{first}{more}", row=first.line, column=first.column)


def read_panel(source: str | Path | IO[str] | IO[bytes], *, strict: bool = True) -> Panel:
    """Read and validate a raw panel CSV. With ``strict`` any bad row raises DataValidationError."""
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataValidationError("the file is empty: expected a header " + ",".join(REQUIRED_COLUMNS)) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"not a readable CSV file: {exc}".splitlines()[0]) from None
    return validate_panel(frame, strict=strict)


def validate_panel(frame: pd.DataFrame, *, strict: bool = True) -> Panel:
    """Check the contract on a frame of strings as read from CSV (row i is line i + 2)."""
    frame = frame.rename(columns=lambda c: str(c).strip())
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"line 1 (header): missing column(s) {', '.join(missing)}; expected {','.join(REQUIRED_COLUMNS)}"
            f"[,{','.join(OPTIONAL_COLUMNS)}]",
            row=1,
            column=missing[0],
        )
    frame = frame[[c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]].copy()
    frame.insert(0, "line", np.arange(FIRST_DATA_LINE, FIRST_DATA_LINE + len(frame)))
    bad = pd.Series("", index=frame.index)
    bad_column = pd.Series("", index=frame.index)

    def flag(mask: pd.Series, column: str, reasons: pd.Series | str) -> None:
        new = mask & (bad == "")
        bad.loc[new] = reasons if isinstance(reasons, str) else reasons[new]
        bad_column.loc[new] = column

    location = frame["LOCATION"].astype(str).str.strip()
    frame["LOCATION"] = location
    flag(location == "", "LOCATION", "empty country code")
    time = pd.to_numeric(frame["TIME"], errors="coerce")
    not_a_year = time.isna() | ~np.isfinite(time) | (time != time.round()) | ~time.between(MIN_YEAR, MAX_YEAR)
    flag(not_a_year, "TIME", frame["TIME"].map(lambda v: f"{v!r} is not an integer year ({MIN_YEAR}-{MAX_YEAR})"))
    frame["TIME"] = time
    for measure in MEASURES:
        numbers = pd.to_numeric(frame[measure].str.strip(), errors="coerce")
        invalid = numbers.isna() | ~np.isfinite(numbers) | (numbers <= 0)
        if invalid.any():
            flag(invalid, measure, frame.loc[invalid, measure].map(measure_problem).reindex(frame.index))
        frame[measure] = numbers
    if MARKET_SIZE in frame.columns:
        text = frame[MARKET_SIZE].astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        invalid = (text != "") & (numbers.isna() | ~np.isfinite(numbers) | (numbers <= 0))
        if invalid.any():
            flag(invalid, MARKET_SIZE, frame.loc[invalid, MARKET_SIZE].map(measure_problem).reindex(frame.index))
        frame[MARKET_SIZE] = numbers.where(text != "")
    ok = bad == ""
    duplicated = frame.loc[ok].duplicated(subset=list(KEY_COLUMNS), keep="first")
    if duplicated.any():
        first_line = frame.loc[ok].drop_duplicates(subset=list(KEY_COLUMNS)).set_index(list(KEY_COLUMNS))["line"]
        for index in duplicated[duplicated].index:
            key = (frame.at[index, "LOCATION"], frame.at[index, "TIME"])
            flag(
                pd.Series(frame.index == index, index=frame.index),
                "TIME",
                f"duplicate country-year {key[0]} {int(key[1])} (first seen on line {first_line.loc[key]})",
            )
    problems = [
        RowProblem(int(line), column or None, reason)
        for line, column, reason in zip(frame["line"], bad_column, bad)
        if reason
    ]
    if strict and problems:
        _raise_first(problems)
    rows = frame.loc[bad == ""].copy()
    rows["TIME"] = rows["TIME"].astype(int)
    return Panel(rows=rows.reset_index(drop=True), problems=problems)


def panel_features(panel: Panel | pd.DataFrame, window: Window) -> FeatureTable:
    """Derive features for every country whose window is complete; say why the others are out."""
    rows = panel.rows if isinstance(panel, Panel) else panel
    in_window = rows[rows["TIME"].between(window.start, window.end)]
    counts = in_window.groupby("LOCATION")["TIME"].nunique()
    expected = len(window.years)
    excluded = {}
    for country in sorted(set(rows["LOCATION"])):
        have = int(counts.get(country, 0))
        if have < expected:
            excluded[country] = f"{have} of {expected} years of window {window} present"
    complete = sorted(c for c in counts.index if counts[c] == expected)
    cube_frame = (
        in_window[in_window["LOCATION"].isin(complete)]
        .sort_values(["LOCATION", "TIME"])[list(MEASURES)]
        .to_numpy(dtype=float)
    )
    cube = cube_frame.reshape(len(complete), expected, len(MEASURES))
    values = derive_features(cube) if complete else np.empty((0, len(FEATURE_NAMES)))
    return FeatureTable(
        countries=complete,
        values=values,
        window=window,
        excluded=excluded,
        market_sizes=_market_sizes(in_window[in_window["LOCATION"].isin(complete)]),
    )


def _market_sizes(rows: pd.DataFrame) -> dict[str, MarketSize]:
    """TOTAL_SPEND of each country in its latest year of ``rows`` where the value is published."""
    if MARKET_SIZE not in rows.columns:
        return {}
    known = rows[rows[MARKET_SIZE].notna()].sort_values(["LOCATION", "TIME"])
    latest = known.groupby("LOCATION").tail(1)
    return {
        str(country): MarketSize(float(value), int(year))
        for country, value, year in zip(latest["LOCATION"], latest[MARKET_SIZE], latest["TIME"])
    }


def complete_countries(panel: Panel | pd.DataFrame, window: Window) -> int:
    """How many countries have every year of ``window``."""
    rows = panel.rows if isinstance(panel, Panel) else panel
    in_window = rows[rows["TIME"].between(window.start, window.end)]
    return int((in_window.groupby("LOCATION")["TIME"].nunique() == len(window.years)).sum())


def latest_complete_window(panel: Panel | pd.DataFrame, years: int, min_share: float) -> Window:
    """The most recent ``years``-long window whose complete countries are at least ``min_share`` of
    the best-covered window's.

    A new year is published for a few countries first (2022: 7 of 44), so "the window with the
    most complete countries" would stay on an old window forever, and "the window ending in the
    latest year" would train on a handful of countries. Retraining wants the newest window that
    keeps nearly everyone; ``min_share`` is the promotion gate's country ratio, so the window
    chosen here loses no more countries than the gate accepts.
    """
    rows = panel.rows if isinstance(panel, Panel) else panel
    if len(rows) == 0:
        raise DataValidationError("the file has no rows to choose a training window from")
    first, last = int(rows["TIME"].min()), int(rows["TIME"].max())
    windows = [Window(end - years + 1, end) for end in range(last, first + years - 2, -1)]
    if not windows:
        raise DataValidationError(f"the file spans {first}-{last}, shorter than a {years}-year window")
    counts = [complete_countries(rows, w) for w in windows]
    best = max(counts)
    if best == 0:
        raise DataValidationError(f"no country has {years} consecutive complete years in the file")
    return next(w for w, n in zip(windows, counts) if n >= min_share * best)
