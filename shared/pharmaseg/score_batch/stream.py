"""Reading a CSV in blocks with pyarrow: record numbers, malformed records, and a bounded read-ahead.

``open_records`` parses every field as text (validation is the caller's) and hands records with
the wrong number of fields to ``Records``, which keeps them as rejects and numbers the records of
each block around them. ``Paced`` keeps the reader from queueing the whole file in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from pharmaseg.score_batch.layouts import Layout
from pharmaseg.score_batch.tables import rejects_table


class Records:
    """Record numbers of the rows a block yields, skipping those the invalid-row handler took.

    Numbers are CSV record numbers with the header as 1: the line number, unless the file has
    blank lines or quoted line breaks.
    """

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

    def rejects(self, run_id: str, raw_limit: int) -> pa.Table | None:
        """The records with the wrong number of fields seen since the last call, as rejects (raw text kept)."""
        invalid, self.invalid = self.invalid, []
        if not invalid:
            return None
        return rejects_table(
            run_id,
            [number for number, _, _, _ in invalid],
            [(text or "")[:raw_limit] for _, text, _, _ in invalid],
            [
                f"columns: {actual} fields where the header has {expected} "
                + ("(too many columns)" if actual > expected else "(too few columns)")
                for _, _, expected, actual in invalid
            ],
        )


def open_records(source: IO[bytes], layout: Layout, records: Records, block_size: int) -> pcsv.CSVStreamingReader:
    """A streaming reader of ``source`` (header skipped) with every column as text."""
    return pcsv.open_csv(
        source,
        read_options=pcsv.ReadOptions(
            use_threads=False, block_size=block_size, skip_rows=1, column_names=list(layout.columns)
        ),
        parse_options=pcsv.ParseOptions(newlines_in_values=True, invalid_row_handler=records.handler),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.string() for c in layout.columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


class Paced:
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
