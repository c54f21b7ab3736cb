"""The in-function path: stream a CSV in blocks, validate every row, score the good ones.

Memory is bounded by the block size, not the file: pyarrow's streaming reader parses one block
(``block_size`` bytes) at a time and is kept at most two blocks ahead (``stream.Paced``), each
block is validated and scored with numpy in slices and handed to ``out`` (which writes CSV), and
only the keys already scored are kept across blocks, for duplicate detection
(``duplicates.SeenKeys``: 12 bytes plus the key's length per key).

Every data record ends up in exactly one of ``out.scored`` or ``out.rejected``, so
rows_read = rows_scored + rows_rejected by construction (checked before returning). Row numbers
are CSV record numbers with the header as 1 (``stream.Records``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pharmaseg.config import SETTINGS
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.explain import TOP_REASONS, explainer_for
from pharmaseg.model.features import FEATURE_NAMES, Window
from pharmaseg.score_batch.countries import ISO3166_ALPHA3, country_problem
from pharmaseg.score_batch.duplicates import SeenKeys
from pharmaseg.score_batch.layouts import COUNTRY, FEATURES, PANEL, Layout
from pharmaseg.score_batch.stream import Paced, Records, open_records
from pharmaseg.score_batch.tables import csv_record, rejects_table, scored_schema

DEFAULT_BLOCK_SIZE = SETTINGS["PHARMASEG_BATCH_BLOCK_BYTES"].default
DEFAULT_RAW_LIMIT = SETTINGS["PHARMASEG_BATCH_RAW_RECORD_LIMIT"].default
DEFAULT_BORDERLINE_CONFIDENCE = SETTINGS["PHARMASEG_BORDERLINE_CONFIDENCE"].default
SLICE_ROWS = 8192  # rows validated and scored at a time within a parsed block
_ISO = pa.array(sorted(ISO3166_ALPHA3))
_KEY_PATTERN = r"^[A-Z]{3}(:[^\x00-\x1f]{1,64})?$"


class Output(Protocol):
    def scored(self, table: pa.Table) -> None: ...

    def rejected(self, table: pa.Table) -> None: ...


@dataclass
class Counts:
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    predictions: int = 0  # rows of batch_predictions: one per scored row, or per country (panel)
    window: str | None = None
    notes: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.rows_read != self.rows_scored + self.rows_rejected:
            raise AssertionError(
                f"invariant broken: read {self.rows_read} != {self.rows_scored} + {self.rows_rejected}"
            )


def _reject_malformed(records: Records, run_id: str, raw_limit: int, out: Output, counts: Counts) -> None:
    """Records with the wrong number of fields, which the reader set aside: rejected as they came."""
    table = records.rejects(run_id, raw_limit)
    if table is not None:
        out.rejected(table)
        counts.rows_read += table.num_rows
        counts.rows_rejected += table.num_rows


def _parse_numbers(column: pa.Array, name: str, problems: list[list[str] | None]) -> np.ndarray:
    """Float values of a string column; NaN where the cell is bad, with the reason added to problems."""
    try:
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~np.isfinite(values))
        texts = column.take(pa.array(bad)).to_pylist() if len(bad) else []
        for i, text in zip(bad, texts):
            _add(problems, int(i), f"{name}: {text!r} is not a finite number")
        return values
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = np.empty(len(column))
    for i, text in enumerate(column.to_pylist()):
        stripped = (text or "").strip()
        try:
            number = float(stripped)
        except ValueError:
            number = math.nan
            _add(problems, i, f"{name}: missing value" if not stripped else f"{name}: {text[:40]!r} is not a number")
        else:
            if not math.isfinite(number):
                _add(problems, i, f"{name}: {text!r} is not a finite number")
        values[i] = number
    return values


def _add(problems: list[list[str] | None], i: int, reason: str) -> None:
    if problems[i] is None:
        problems[i] = [reason]
    else:
        problems[i].append(reason)


def _check_countries(batch: pa.RecordBatch, countries: pa.Array, problems: list[list[str] | None]) -> None:
    """A known ISO code, optionally ``CODE:scenario``; the common case (all plain codes) is one lookup."""
    plain = pc.is_in(countries, value_set=_ISO)
    if pc.all(plain).as_py():
        return
    shaped = pc.match_substring_regex(countries, _KEY_PATTERN)
    known = pc.is_in(pc.utf8_slice_codeunits(countries, 0, 3), value_set=_ISO)
    ok = pc.or_(plain, pc.and_(shaped, known)).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~ok):
        _add(problems, int(i), country_problem(batch.column(COUNTRY)[int(i)].as_py()) or "COUNTRY: invalid")


def _scored_table(
    artifact: ModelArtifact,
    run_id: str,
    numbers: np.ndarray,
    countries: list[str] | pa.Array,
    values: np.ndarray,
    borderline_confidence: float,
) -> pa.Table:
    schema = scored_schema(artifact.k)
    if len(numbers) == 0:
        return schema.empty_table()
    explained = explainer_for(artifact, borderline_confidence).explain_many(values, what_if=False)
    segments = pa.array([s.name for s in artifact.segments])
    columns: dict[str, pa.Array | list | np.ndarray] = {
        "run_id": pa.repeat(pa.scalar(run_id, pa.string()), len(numbers)),
        "row_number": numbers,
        "country": countries,
    }
    for j, name in enumerate(FEATURE_NAMES):
        columns[name] = values[:, j]
    columns["cluster"] = explained.clusters.astype(np.int64)
    columns["segment_name"] = segments.take(pa.array(explained.clusters))
    columns["confidence"] = explained.confidence
    for i in range(artifact.k):
        columns[f"distance_{i}"] = explained.distances[:, i]
    columns["runner_up_cluster"] = explained.runner_up.astype(np.int64)
    columns["runner_up"] = segments.take(pa.array(explained.runner_up))
    columns["margin"] = explained.margin
    columns["what_if_distance"] = explained.what_if_distance
    columns["borderline"] = explained.borderline
    features = pa.array(explained.features)
    rows = np.arange(len(values))
    for r in range(TOP_REASONS):
        top = explained.order[:, r]
        share = explained.shares[rows, top]
        columns[f"reason_{r + 1}"] = features.take(pa.array(top))
        columns[f"reason_{r + 1}_share"] = pa.array(share, mask=np.isnan(share))  # null: margin 0, a tie
    return pa.table(columns, schema=schema)


def score_features(
    source: IO[bytes],
    layout: Layout,
    artifact: ModelArtifact,
    run_id: str,
    out: Output,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    raw_limit: int = DEFAULT_RAW_LIMIT,
    borderline_confidence: float = DEFAULT_BORDERLINE_CONFIDENCE,
    on_block: Callable[[Counts], None] | None = None,
) -> Counts:
    """Score a features-layout CSV block by block; bad rows go to ``out.rejected`` with reasons."""
    if layout.kind != FEATURES:
        raise ValueError("score_features needs the features layout")
    counts = Counts()
    records = Records()
    seen = SeenKeys()
    paced = Paced(source)
    for block in paced.batches(lambda stream: open_records(stream, layout, records, block_size)):
        block_numbers = records.take(block.num_rows)
        for start in range(0, block.num_rows, SLICE_ROWS):  # small slices: small temporaries
            batch = block.slice(start, SLICE_ROWS)
            numbers = block_numbers[start : start + SLICE_ROWS]
            n = batch.num_rows
            problems: list[list[str] | None] = [None] * n
            countries = pc.utf8_trim_whitespace(batch.column(COUNTRY))
            _check_countries(batch, countries, problems)
            values = np.column_stack([_parse_numbers(batch.column(name), name, problems) for name in FEATURE_NAMES])
            good = np.array([p is None for p in problems], dtype=bool)
            good_index = np.flatnonzero(good)
            first = seen.first_rows(countries.take(pa.array(good_index)), numbers[good_index])
            for i, row in zip(good_index[first > 0], first[first > 0]):
                _add(problems, int(i), f"COUNTRY: duplicate {countries[int(i)].as_py()!r} (row {row} has it)")
                good[i] = False
            good_index = np.flatnonzero(good)
            out.scored(
                _scored_table(
                    artifact,
                    run_id,
                    numbers[good_index],
                    countries.take(pa.array(good_index)),
                    values[good],
                    borderline_confidence,
                )
            )
            bad_index = np.flatnonzero(~good)
            if len(bad_index):
                fields = [batch.column(c).take(pa.array(bad_index)).to_pylist() for c in layout.columns]
                raw = [csv_record(record, raw_limit) for record in zip(*fields)]
                reasons = ["; ".join(problems[i]) for i in bad_index]
                out.rejected(rejects_table(run_id, numbers[bad_index], raw, reasons))
            counts.rows_read += n
            counts.rows_scored += len(good_index)
            counts.predictions += len(good_index)
            counts.rows_rejected += len(bad_index)
        _reject_malformed(records, run_id, raw_limit, out, counts)
        if on_block:
            on_block(counts)
    _reject_malformed(records, run_id, raw_limit, out, counts)
    counts.check()
    return counts


def panel_window(artifact: ModelArtifact, rows, override: str | None) -> Window:
    """The scoring window: ``override`` if set, else the model's window length placed where the
    most countries of the file have every year (the latest such placement on ties)."""
    if override:
        return Window.parse(override)
    model = Window.parse(artifact.window)
    length = model.end - model.start
    if len(rows) == 0:
        return model
    years = rows.groupby("LOCATION")["TIME"].apply(set)
    best, best_count = model, -1
    for end in range(int(rows["TIME"].max()), int(rows["TIME"].min()) + length - 1, -1):
        span = set(range(end - length, end + 1))
        count = sum(span <= have for have in years)
        if count > best_count:
            best, best_count = Window(end - length, end), count
    return best


def score_panel(
    data: bytes,
    layout: Layout,
    artifact: ModelArtifact,
    run_id: str,
    out: Output,
    *,
    window: str | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    raw_limit: int = DEFAULT_RAW_LIMIT,
    borderline_confidence: float = DEFAULT_BORDERLINE_CONFIDENCE,
) -> Counts:
    """Score a raw panel: one prediction per country with a complete window.

    Input rows are counted per row: rows of scored countries inside the window are "scored";
    rows with a bad value, rows of countries whose window is incomplete, and rows outside the
    window are rejected, each with its reason. A panel is small (countries x years), so it is
    read whole; the caller bounds its size.
    """
    import pandas as pd

    from pharmaseg.model.panel import panel_features, validate_panel

    if layout.kind != PANEL:
        raise ValueError("score_panel needs the panel layout")
    records = Records()
    batches = list(open_records(io.BytesIO(data), layout, records, block_size))
    table = pa.Table.from_batches(batches, schema=batches[0].schema) if batches else None
    numbers = records.take(table.num_rows if table is not None else 0)
    counts = Counts()
    _reject_malformed(records, run_id, raw_limit, out, counts)
    frame = table.to_pandas() if table is not None else pd.DataFrame(columns=list(layout.columns))
    counts.rows_read += len(frame)
    panel = validate_panel(frame, strict=False)
    # validate_panel numbers rows as line = position + 2; map back to the record numbers.
    line_to_row = dict(zip(range(2, 2 + len(frame)), numbers.tolist()))
    reasons: dict[int, str] = {
        line_to_row[p.line]: (f"{p.column}: " if p.column else "") + p.reason for p in panel.problems
    }
    good = panel.rows.copy()
    good["row"] = good["line"].map(line_to_row)
    win = panel_window(artifact, good, window)
    counts.window = str(win)
    features = panel_features(good, win)
    in_window = good["TIME"].between(win.start, win.end)
    scored_mask = in_window & good["LOCATION"].isin(features.countries)
    for row, time_value in zip(good.loc[~in_window, "row"], good.loc[~in_window, "TIME"]):
        reasons[int(row)] = f"TIME: {time_value} is outside the scoring window {win}"
    for country, why in features.excluded.items():
        mask = in_window & (good["LOCATION"] == country)
        for row in good.loc[mask, "row"]:
            reasons[int(row)] = f"LOCATION: {country} cannot be scored: {why}"
    first_rows = good.loc[scored_mask].groupby("LOCATION")["row"].min()
    order = np.array([first_rows[c] for c in features.countries], dtype=np.int64)
    out.scored(_scored_table(artifact, run_id, order, features.countries, features.values, borderline_confidence))
    if reasons:
        records_by_row = dict(zip(numbers.tolist(), table.select(list(layout.columns)).to_pylist() if table else []))
        items = sorted(reasons.items())
        raw = [csv_record(records_by_row[r].values(), raw_limit) if r in records_by_row else None for r, _ in items]
        out.rejected(rejects_table(run_id, [r for r, _ in items], raw, [why for _, why in items]))
    counts.rows_scored += int(scored_mask.sum())
    counts.predictions = len(features.countries)
    counts.rows_rejected += len(reasons)
    counts.notes.append(f"{len(features.countries)} countries scored over window {win}")
    counts.check()
    return counts
