"""The model report's segment history: a version's segments over every window of its source data,
the countries on watch, and how the version would redraw the history production tells.

A model is trained on one window, but a strategy team reads its segments over time: a country
that was High-Value for twenty years and is drifting down is a different decision from one that
just arrived. And a new version changes the past too: the same panel scored by the candidate
and by production can put a country-window in different segments, which a comparison of the
training countries alone does not show. Both models score the same windows, of the candidate's
length, so every difference is the model's and none is the data's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.features import Window
from pharmaseg.model.history import CountryHistory, ScoredWindow, country_history
from pharmaseg.model.windows import WindowTable, all_windows
from pharmaseg.reports.history_grid import history_grid, segment_key
from pharmaseg.reports.html import table, text

UNWEIGHTED = "unweighted"
ORDERS = {
    "candidate": "largest markets first (this version's market sizes)",
    "production": "largest markets first (production's market sizes)",
}


@dataclass(frozen=True)
class HistoryInput:
    """What the section is drawn from: a validated panel's ``rows``, which the report's two models
    score on every window of the candidate's length; or histories a caller already scored (the
    candidate's, and production's on the same windows)."""

    rows: Any = None  # pandas.DataFrame, pharmaseg.model.panel.Panel.rows
    candidate: Sequence[CountryHistory] | None = None
    production: Sequence[CountryHistory] | None = None

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.candidate is None):
            raise ValueError("a history input is either a panel's rows or the candidate's histories")

    def histories(
        self, candidate: ModelArtifact, production: ModelArtifact | None, *, borderline_below: float
    ) -> tuple[list[CountryHistory], list[CountryHistory] | None]:
        """(the candidate's histories, production's on the same windows or None)."""
        if self.rows is None:
            return list(self.candidate), None if self.production is None else list(self.production)
        windows = all_windows(self.rows, len(Window.parse(candidate.window).years))
        mine = score_table(candidate, windows, borderline_below=borderline_below)
        theirs = None if production is None else score_table(production, windows, borderline_below=borderline_below)
        return mine, theirs


def score_table(model: ModelArtifact, windows: WindowTable, *, borderline_below: float) -> list[CountryHistory]:
    """The history of every country with a complete window in ``windows``, in its order."""
    histories = []
    for c, country in enumerate(windows.countries):
        rows = [(windows.window(w), windows.features[c, w].tolist()) for w in np.flatnonzero(windows.complete[c])]
        if rows:
            histories.append(country_history(model, country, rows, borderline_below=borderline_below))
    return histories


# -- the document ------------------------------------------------------------------------------


def _country(history: CountryHistory) -> dict[str, Any]:
    doc = history.to_dict()
    doc["segments"] = {w.window: w.segment for w in history.windows}
    doc["changes"] = [
        {"window": w.window, "change": w.change, "from": before.segment, "to": w.segment}
        for before, w in zip(history.windows, history.windows[1:])
        if w.change
    ]
    return doc


def _market_shares(candidate: ModelArtifact, production: ModelArtifact | None) -> tuple[str, dict[str, float]]:
    """Which model's market sizes order the changes (the candidate's, else production's) and each country's share."""
    for label, model in (("candidate", candidate), ("production", production)):
        sizes = model.markets.sizes if model is not None and model.markets is not None else {}
        total = sum(sizes.values())
        if total > 0:
            return label, {c: size / total for c, size in sizes.items()}
    return UNWEIGHTED, {}


def redraw(
    candidate: Sequence[CountryHistory],
    production: Sequence[CountryHistory],
    production_version: str | None,
    shares: Mapping[str, float],
    weights: str = UNWEIGHTED,
) -> dict[str, Any]:
    """Every country-window both models scored whose segment differs, largest market first."""
    before = {(h.country, w.window): w.segment for h in production for w in h.windows}
    compared, changes = 0, []
    for h in candidate:
        for w in h.windows:
            old = before.get((h.country, w.window))
            if old is None:
                continue
            compared += 1
            if old != w.segment:
                share = shares.get(h.country)
                changes.append(
                    {
                        "country": h.country,
                        "window": w.window,
                        "production": old,
                        "candidate": w.segment,
                        "market_share": share,
                    }
                )
    changes.sort(key=lambda c: (c["market_share"] is None, -(c["market_share"] or 0.0), c["country"]))
    return {
        "production_version": production_version,
        "compared": compared,
        "changed": len(changes),
        "share": len(changes) / compared if compared else None,
        "weights": weights,
        "changes": changes,
    }


def history_document(
    history: HistoryInput, candidate: ModelArtifact, production: ModelArtifact | None, *, borderline_below: float
) -> dict[str, Any]:
    """The section as JSON-ready data: per country its scored windows (window -> segment), changes and watch."""
    mine, theirs = history.histories(candidate, production, borderline_below=borderline_below)
    windows = sorted({w.window for h in mine for w in h.windows}, key=lambda w: Window.parse(w).end)
    weights, shares = _market_shares(candidate, production)
    return {
        "model_version": candidate.version,
        "window_years": len(Window.parse(windows[0]).years) if windows else None,
        "windows": windows,
        "countries": {h.country: _country(h) for h in mine},
        "watch": [
            {"country": h.country, "segment": h.windows[-1].segment, "reason": h.watch_reason} for h in mine if h.watch
        ],
        "redraw": None
        if theirs is None
        else redraw(mine, theirs, production.version if production else None, shares, weights),
    }


# -- the page ----------------------------------------------------------------------------------


def _history(doc: Mapping[str, Any]) -> CountryHistory:
    """A country's history back from its JSON, so the page is drawn from the document alone."""
    windows = [ScoredWindow(**w) for w in doc["windows"]]
    return CountryHistory(doc["country"], doc["model_version"], windows, doc["watch"], doc["watch_reason"])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _runs(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive windows of one country that change the same way, as one row."""
    runs: list[dict[str, Any]] = []
    for change in changes:
        end = Window.parse(change["window"]).end
        last = runs[-1] if runs else None
        same = last is not None and all(last[k] == change[k] for k in ("country", "production", "candidate"))
        if same and last["end"] + 1 == end:
            last.update(last_window=change["window"], end=end, n=last["n"] + 1)
        else:
            runs.append(
                {**change, "first_window": change["window"], "last_window": change["window"], "end": end, "n": 1}
            )
    return runs


def _watch_section(history: Mapping[str, Any]) -> list[str]:
    parts = ["<h3>On watch</h3>"]
    if not history["watch"]:
        return [*parts, "<p class='note'>No country is on watch.</p>"]
    rows = [[text(w["country"]), segment_key(w["segment"]), text(w["reason"])] for w in history["watch"]]
    return [
        *parts,
        "<p class='note'>In one segment above Declining over its last three windows, with its margin to a lower "
        "segment shrinking each time: the early warning of a downgrade.</p>",
        table(["country", "segment", "why"], rows),
    ]


def _redraw_section(history: Mapping[str, Any]) -> list[str]:
    parts = ["<h3>How this version would redraw history</h3>"]
    changes = history["redraw"]
    if changes is None:
        return [*parts, "<p class='note'>No production model to compare with.</p>"]
    order = ORDERS.get(changes["weights"], "by country (no market sizes)")
    parts.append(
        f"<p>Production {text(changes['production_version'])} scores the same {changes['compared']} country-windows; "
        f"this version puts <b>{changes['changed']}</b> of them (<b>{_pct(changes['share'])}</b>) in a different "
        f"segment.</p>"
    )
    if changes["changes"]:
        rows = [
            [
                text(r["country"]),
                _pct(r["market_share"]),
                text(r["first_window"]) + ("" if r["n"] == 1 else f" .. {text(r['last_window'])} ({r['n']} windows)"),
                segment_key(r["production"]),
                segment_key(r["candidate"]),
            ]
            for r in _runs(changes["changes"])
        ]
        parts.append(f"<p class='note'>Consecutive windows that change alike are one row; {order}.</p>")
        parts.append(table(["country", "market share", "windows", "production", "this version"], rows))
    return parts


def history_section(doc: Mapping[str, Any]) -> list[str]:
    """The section's HTML, from the report document only."""
    history = doc.get("history")
    parts = ["<h2>Segment history</h2>"]
    if history is None:
        return [*parts, "<p class='note'>Not drawn: this report was written without the source data.</p>"]
    windows = history["windows"]
    span = f" ({text(windows[0])} to {text(windows[-1])})" if windows else ""
    return [
        *parts,
        f"<p class='note'>Every complete {text(history['window_years'])}-year window of the source data{span}, "
        "scored by this version: a row per country, a column per window's last year. Point at a cell for its "
        "window, segment and confidence.</p>",
        history_grid([_history(c) for c in history["countries"].values()]),
        *_watch_section(history),
        *_redraw_section(history),
    ]
