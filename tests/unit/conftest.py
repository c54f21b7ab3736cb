"""Fixtures shared by the unit tests: the real OECD panel (read from ../shared/data) and one fit."""

from __future__ import annotations

import hashlib
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
    from pharmaseg.features import Window
    from pharmaseg.panel import panel_features, read_panel
    from pharmaseg.training import TrainingParams, train

    panel = read_panel(oecd_path)
    table = panel_features(panel, Window(2011, 2020))
    artifact = train(
        table,
        TrainingParams(n_bootstrap=10),
        source_uri=str(oecd_path),
        source_sha256=hashlib.sha256(oecd_path.read_bytes()).hexdigest(),
        rows_read=len(panel.rows),
    )
    return table, artifact
