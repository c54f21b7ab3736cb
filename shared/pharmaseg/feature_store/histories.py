"""A model's segment history over every complete window of a source file, scored and recorded.

Both writers of ``segment_history`` go through here: an ingestion scores the new file with
production, a retrain scores its training file with the candidate it registered. Either way the
windows are the model's own length, since a model can only score windows as long as the one it
was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pharmaseg.feature_store.segments_table import SegmentHistoryTable
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.features import Window
from pharmaseg.model.history import CountryHistory, country_history
from pharmaseg.model.windows import WindowTable


def window_years(model: ModelArtifact) -> int:
    """The length of the windows ``model`` scores: its training window's."""
    return len(Window.parse(model.window).years)


def country_histories(model: ModelArtifact, table: WindowTable, *, borderline_below: float) -> list[CountryHistory]:
    """Every country with a complete window, scored by ``model`` over all of them (oldest first)."""
    if table.years != window_years(model):
        raise ValueError(
            f"model {model.version} scores {window_years(model)}-year windows, not {table.years}-year ones"
        )
    histories = []
    for c, country in enumerate(table.countries):
        windows = [(table.window(int(w)), table.features[c, w].tolist()) for w in np.flatnonzero(table.complete[c])]
        if windows:
            histories.append(country_history(model, country, windows, borderline_below=borderline_below))
    return histories


@dataclass(frozen=True)
class HistoryRecorder:
    """Scores with the functions' borderline threshold and writes to ``segment_history``."""

    table: SegmentHistoryTable
    borderline_below: float

    def record(self, model: ModelArtifact, windows: WindowTable, source_sha256: str) -> int:
        """Rows written for ``model`` over the source's ``windows`` (0 when already written)."""
        histories = country_histories(model, windows, borderline_below=self.borderline_below)
        return self.table.write(model.version, histories, source_sha256)
