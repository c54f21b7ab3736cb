"""The in-function path: stream a CSV in blocks, validate every row, score the good ones.

Memory is bounded by the block size, not the file: pyarrow's streaming reader parses one block
(``block_size`` bytes) at a time and is kept at most two blocks ahead (``_Paced``), each block is
validated and scored with numpy in slices and handed to ``out`` (which writes CSV), and only 12
bytes per scored key (a 64-bit hash and an int32 row number) are kept across blocks, for
duplicate detection (``_SeenKeys``).

Every data record ends up in exactly one of ``out.scored`` or ``out.rejected``, so
rows_read = rows_scored + rows_rejected by construction (checked before returning). Row numbers
are CSV record numbers with the header as 1: the line number, unless the file has blank lines
or quoted line breaks.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pharmaseg.artifact import ModelArtifact
from pharmaseg.batch.countries import ISO3166_ALPHA3, country_problem
from pharmaseg.batch.layouts import COUNTRY, FEATURES, PANEL, Layout
from pharmaseg.config import SETTINGS
from pharmaseg.explain import TOP_REASONS, explainer_for
from pharmaseg.features import FEATURE_NAMES, Window

DEFAULT_BLOCK_SIZE = 4 << 20
DEFAULT_RAW_LIMIT = 1024
DEFAULT_BORDERLINE_CONFIDENCE = SETTINGS["PHARMASEG_BORDERLINE_CONFIDENCE"].default
_SLICE_ROWS = 8192  # rows validated and scored at a time within a parsed block
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


# The explanation of each prediction (docs/explanations.md, docs/batch.md), flat for spreadsheets.
EXPLANATION_FIELDS: list[tuple[str, pa.DataType]] = [
    ("runner_up_cluster", pa.int64()),
    ("runner_up", pa.string()),
    ("margin", pa.float64()),
    ("what_if_distance", pa.float64()),
    ("borderline", pa.bool_()),
] + [
    field
    for r in range(1, TOP_REASONS + 1)
    for field in ((f"reason_{r}", pa.string()), (f"reason_{r}_share", pa.float64()))
]
EXPLANATION_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EXPLANATION_FIELDS)


def scored_schema(k: int) -> pa.Schema:
    """Columns of the scored CSV (results/<name>) and of the BigQuery staging table (both paths)."""
    return pa.schema(
        [("run_id", pa.string()), ("row_number", pa.int64()), ("country", pa.string())]
        + [(name, pa.float64()) for name in FEATURE_NAMES]
        + [("cluster", pa.int64()), ("segment_name", pa.string()), ("confidence", pa.float64())]
        + [(f"distance_{i}", pa.float64()) for i in range(k)]
        + EXPLANATION_FIELDS
    )


REJECTS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("row_number", pa.int64()), ("raw_record", pa.string()), ("reason", pa.string())]
)


def _csv_record(fields: list[str]) -> str:
    out = []
    for value in fields:
        text = "" if value is None else str(value)
        if any(c in text for c in ',"\r\n'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out)


class _Rows:
    """Record numbers of the rows a block yields, skipping those the invalid-row handler took."""

    def __init__(self) -> None:
        self.next = 2
        self.invalid: list[tuple[int, str, int, int]] = []  # (number, text, expected, actual)
        self._pending: list[int] = []

    def handler(self, row) -> str:
        number = row.number if row.number is not None and row.number > 0 else -1
        self.invalid.append((number, row.text, row.expected_columns, row.actual_columns))
        if number > 0:
            self._pending.append(number)
        return "skip"

    def take(self, n: int) -> np.ndarray:
        if n == 0:
            return np.empty(0, dtype=np.int64)
        pending = np.array(sorted(p for p in self._pending if p >= self.next), dtype=np.int64)
        candidates = np.arange(self.next, self.next + n + len(pending), dtype=np.int64)
        if len(pending):
            candidates = candidates[~np.isin(candidates, pending)]
        numbers = candidates[:n]
        self.next = int(numbers[-1]) + 1
        self._pending = [p for p in self._pending if p > numbers[-1]]
        return numbers

    def drain(self) -> list[tuple[int, str, int, int]]:
        out, self.invalid = self.invalid, []
        return out


class _Paced:
    """A file wrapper that keeps pyarrow's CSV reader at most ``ahead`` blocks ahead of its consumer.

    ``pcsv.open_csv`` reads its input on a background thread that queues up to 32 blocks
    (Arrow's ``MakeBackgroundGenerator`` default; not configurable, ARROW-12090): with 4 MiB
    blocks that is up to 128 MiB of the file in memory, the whole file for anything below that.
    Here each ``read`` waits until the consumer has taken all but ``ahead`` of the blocks read so
    far (the reader yields one batch per block, empty ones included, and a row never spans more
    than two blocks, so ``ahead >= 2`` cannot starve it). Safety valve: if the consumer has been
    waiting for a batch for ``stall`` seconds while a read is held, one more read is let through,
    and taken back when the next batch arrives.
    """

    def __init__(self, raw: IO[bytes], ahead: int = 2, stall: float = 0.25) -> None:
        self._raw = raw
        self._ahead = ahead
        self._stall = stall
        self._cond = threading.Condition()
        self._reads = 0
        self._batches = 0
        self._extra = 0
        self._waiting = False
        self._done = False
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._done and self._reads >= self._batches + self._ahead + self._extra:
                if not self._cond.wait(self._stall) and self._waiting:
                    self._extra += 1
            if self._done:
                return b""
            self._reads += 1
        return self._raw.read(n)

    def batches(self, open_reader: Callable[[IO[bytes]], pcsv.CSVStreamingReader]):
        """Open a reader on this stream and iterate it, letting one more block be read per batch taken."""
        try:
            reader = self._call(lambda: open_reader(self))
            while True:
                try:
                    batch = self._call(reader.read_next_batch)
                except StopIteration:
                    return
                with self._cond:
                    self._batches += 1
                    self._extra = max(0, self._extra - 1)
                    self._cond.notify_all()
                yield batch
        finally:
            self.close()

    def _call(self, fn):
        with self._cond:
            self._waiting = True
        try:
            return fn()
        finally:
            with self._cond:
                self._waiting = False

    def close(self) -> None:
        """Release a held read (it returns EOF) so the background thread ends."""
        with self._cond:
            self._done = True
            self._cond.notify_all()


def _reader(source: IO[bytes], layout: Layout, rows: _Rows, block_size: int) -> pcsv.CSVStreamingReader:
    return pcsv.open_csv(
        source,
        read_options=pcsv.ReadOptions(
            use_threads=False, block_size=block_size, skip_rows=1, column_names=list(layout.columns)
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=rows.handler),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.string() for c in layout.columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _invalid_rejects(rows: _Rows, width: int, run_id: str, raw_limit: int) -> pa.Table | None:
    invalid = rows.drain()
    if not invalid:
        return None
    reasons = [
        f"columns: {actual} fields where the header has {expected} "
        + ("(too many columns)" if actual > expected else "(too few columns)")
        for _, _, expected, actual in invalid
    ]
    return pa.table(
        {
            "run_id": [run_id] * len(invalid),
            "row_number": [n for n, _, _, _ in invalid],
            "raw_record": [(text or "")[:raw_limit] for _, text, _, _ in invalid],
            "reason": reasons,
        },
        schema=REJECTS_SCHEMA,
    )


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


_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, in place: every input bit affects every output bit."""
    h ^= h >> np.uint64(30)
    h *= _M2
    h ^= h >> np.uint64(27)
    h *= _M3
    h ^= h >> np.uint64(31)
    return h


def _hash_strings(keys: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string of a (non-null) string array, read 8 bytes at a time from its buffers."""
    n = len(keys)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    _, offsets_buf, data_buf = keys.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[keys.offset : keys.offset + n + 1].astype(np.int64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    raw = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
    data = np.zeros(int(offsets[-1]) + 8, dtype=np.uint8)  # this array's bytes, padded for 8-byte reads
    data[: offsets[-1] - offsets[0]] = raw[offsets[0] : offsets[-1]]
    starts = starts - offsets[0]
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))  # unaligned 8-byte windows
    with np.errstate(over="ignore"):
        h = _mix(lengths.astype(np.uint64) * _M1)
        for j in range(0, int(lengths.max()), 8):
            live = np.flatnonzero(lengths > j)
            word = words[starts[live] + j]
            rest = lengths[live] - j
            short = rest < 8
            word[short] &= (np.uint64(1) << (rest[short].astype(np.uint64) * np.uint64(8))) - np.uint64(1)
            h[live] = _mix((h[live] ^ word) * _M1)
    return h


class _SeenKeys:
    """Keys already scored: a 64-bit hash and the row number (int32) of each, 12 bytes a key.

    Kept as a few sorted runs, each written once and never copied or merged: the new keys of each
    block are sorted into a small pending run; once the pending runs hold ``run_keys`` keys they
    are concatenated into one run (a copy of at most ``run_keys`` keys, 3 MiB by default). Memory
    is therefore 12 bytes per scored key plus a bounded amount, and a lookup is one binary search
    per run (1M keys: 4 runs).
    """

    def __init__(self, run_keys: int = 1 << 18) -> None:
        self.run_keys = run_keys
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_keys = 0

    def first_rows(self, keys: pa.Array, numbers: np.ndarray) -> np.ndarray:
        """For each key, the row that first had it (earlier block or earlier in this one), else 0; records new keys."""
        hashes = _hash_strings(keys)
        first = np.zeros(len(hashes), dtype=np.int64)
        if not len(hashes):
            return first
        unique, index = np.unique(hashes, return_index=True)  # index: first position of each hash in the block
        earlier = np.zeros(len(unique), dtype=np.int64)
        for run_h, run_r in self.runs + self.pending:
            at = np.searchsorted(run_h, unique).clip(max=len(run_h) - 1)
            hit = (run_h[at] == unique) & (earlier == 0)
            earlier[hit] = run_r[at[hit]]
        owner = np.searchsorted(unique, hashes)
        first_in_block = numbers[index]
        first = np.where(earlier[owner] > 0, earlier[owner], first_in_block[owner])
        first[index[earlier == 0]] = 0  # the first occurrence of a new key is the one scored
        new = earlier == 0
        if new.any():
            rows = numbers[index][new]
            dtype = np.int32 if rows.max() <= np.iinfo(np.int32).max else np.int64
            self.pending.append((unique[new], rows.astype(dtype)))
            self.pending_keys += int(new.sum())
            if self.pending_keys >= self.run_keys:
                merged_h = np.concatenate([h for h, _ in self.pending])
                order = np.argsort(merged_h)
                merged_r = np.concatenate([r for _, r in self.pending])[order]
                self.runs.append((merged_h[order], merged_r))
                self.pending, self.pending_keys = [], 0
        return first


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
    rows = _Rows()
    seen = _SeenKeys()
    paced = _Paced(source)
    for block in paced.batches(lambda stream: _reader(stream, layout, rows, block_size)):
        block_numbers = rows.take(block.num_rows)
        for start in range(0, block.num_rows, _SLICE_ROWS):  # small slices: small temporaries
            batch = block.slice(start, _SLICE_ROWS)
            numbers = block_numbers[start : start + _SLICE_ROWS]
            n = batch.num_rows
            problems: list[list[str] | None] = [None] * n
            countries = pc.utf8_trim_whitespace(batch.column(COUNTRY))
            plain = pc.is_in(countries, value_set=_ISO)
            if not pc.all(plain).as_py():
                shaped = pc.match_substring_regex(countries, _KEY_PATTERN)
                known = pc.is_in(pc.utf8_slice_codeunits(countries, 0, 3), value_set=_ISO)
                ok = pc.or_(plain, pc.and_(shaped, known)).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(~ok):
                    _add(problems, int(i), country_problem(batch.column(COUNTRY)[int(i)].as_py()) or "COUNTRY: invalid")
            values = np.column_stack([_parse_numbers(batch.column(name), name, problems) for name in FEATURE_NAMES])
            good = np.array([p is None for p in problems], dtype=bool) if n else np.empty(0, dtype=bool)
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
                out.rejected(
                    pa.table(
                        {
                            "run_id": [run_id] * len(bad_index),
                            "row_number": numbers[bad_index],
                            "raw_record": [_csv_record(list(rec))[:raw_limit] for rec in zip(*fields)],
                            "reason": ["; ".join(problems[i]) for i in bad_index],
                        },
                        schema=REJECTS_SCHEMA,
                    )
                )
            counts.rows_read += n
            counts.rows_scored += len(good_index)
            counts.predictions += len(good_index)
            counts.rows_rejected += len(bad_index)
        invalid = _invalid_rejects(rows, layout.width, run_id, raw_limit)
        if invalid is not None:
            out.rejected(invalid)
            counts.rows_read += invalid.num_rows
            counts.rows_rejected += invalid.num_rows
        if on_block:
            on_block(counts)
    invalid = _invalid_rejects(rows, layout.width, run_id, raw_limit)
    if invalid is not None:
        out.rejected(invalid)
        counts.rows_read += invalid.num_rows
        counts.rows_rejected += invalid.num_rows
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

    from pharmaseg.panel import panel_features, validate_panel

    if layout.kind != PANEL:
        raise ValueError("score_panel needs the panel layout")
    rows = _Rows()
    batches = list(_reader(io.BytesIO(data), layout, rows, DEFAULT_BLOCK_SIZE))
    table = pa.Table.from_batches(batches, schema=batches[0].schema) if batches else None
    numbers = rows.take(table.num_rows if table is not None else 0)
    counts = Counts()
    invalid = _invalid_rejects(rows, layout.width, run_id, raw_limit)
    if invalid is not None:
        out.rejected(invalid)
        counts.rows_read += invalid.num_rows
        counts.rows_rejected += invalid.num_rows
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
        raw_by_row = {
            int(r): _csv_record([str(v) for v in rec])[:raw_limit]
            for r, rec in zip(numbers.tolist(), table.select(list(layout.columns)).to_pylist() if table else [])
            if r in reasons
            for rec in [list(rec.values())]
        }
        items = sorted(reasons.items())
        out.rejected(
            pa.table(
                {
                    "run_id": [run_id] * len(items),
                    "row_number": [r for r, _ in items],
                    "raw_record": [raw_by_row.get(r) for r, _ in items],
                    "reason": [why for _, why in items],
                },
                schema=REJECTS_SCHEMA,
            )
        )
    counts.rows_scored += int(scored_mask.sum())
    counts.predictions = len(features.countries)
    counts.rows_rejected += len(reasons)
    counts.notes.append(f"{len(features.countries)} countries scored over window {win}")
    counts.check()
    return counts
