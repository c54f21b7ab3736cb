"""The raw OECD panel: its data contract, row-level validation, and the per-country feature table.

Validation is row-level so that batch scoring can reject bad rows and keep the rest, while
training (``strict=True``) refuses a file with any bad row. Row numbers are the CSV's line
numbers (the header is line 1), which is what a person opening the file sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from pharmaseg.errors import DataValidationError
from pharmaseg.features import FEATURE_NAMES, MEASURES, Window, derive_features, measure_problem

KEY_COLUMNS: tuple[str, ...] = ("LOCATION", "TIME")
REQUIRED_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, *MEASURES)
OPTIONAL_COLUMNS: tuple[str, ...] = ("TOTAL_SPEND",)
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


@dataclass
class FeatureTable:
    """One row of the 9 features per country with a complete window, and why others were left out."""

    countries: list[str]
    values: np.ndarray
    window: Window
    excluded: dict[str, str] = field(default_factory=dict)


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
    frame = frame[list(REQUIRED_COLUMNS)].copy()
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
    return FeatureTable(countries=complete, values=values, window=window, excluded=excluded)
