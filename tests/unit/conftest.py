"""Fixtures shared by the unit tests: the real OECD panel (read from ../shared/data) and one fit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(
    os.environ.get("PHARMASEG_DATA", Path(__file__).resolve().parents[3] / "shared/data/oecd_pharma_spending.csv")
)


@pytest.fixture(scope="session")
def oecd_path() -> Path:
    if not DATA.is_file():
        pytest.fail(f"OECD data not found at {DATA}; set PHARMASEG_DATA (see README: Data)")
    return DATA


@pytest.fixture(scope="session")
def original_model(oecd_path):
    """The original procedure on 2011-2020: the model every serving test compares against."""
    from tests.models import trained

    return trained(n_bootstrap=10)
