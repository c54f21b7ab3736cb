"""Duplicate keys across a streamed features file, in memory that grows only with the keys.

A key is the validated ``COUNTRY`` cell; its first scored row wins and every later row with the
same key is rejected naming that first row. The function path sees the file a block at a time,
so the keys already scored are kept, each once, as a 64-bit hash and its row number (int32), 12
bytes a key. Two different keys with the same hash would be taken for one: the later row would
be rejected as a duplicate of the earlier (about 3e-8 for a file of 1M distinct keys).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

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


def hash_strings(keys: pa.Array) -> np.ndarray:
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


class SeenKeys:
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
        hashes = hash_strings(keys)
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
