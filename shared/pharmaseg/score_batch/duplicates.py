"""Duplicate keys across a streamed features file: exact, in memory that grows only with the keys.

A key is the validated ``COUNTRY`` cell; its first scored row wins and every later row with the
same key is rejected naming that first row. The function path sees the file a block at a time,
so the keys already scored are kept, each once, as a 32-bit hash, its row number (int32) and the
key itself (its UTF-8 bytes and a 4-byte offset): 12 bytes plus the key's length (and a validity
bit). The hash only orders the index and narrows a lookup to the keys that share it; a row is a
duplicate only if an earlier key is equal to its own byte for byte, so a hash collision costs a
comparison, never a good row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def _hash32(keys: pa.Array) -> np.ndarray:
    """The index's hash: the high half of ``hash_strings``.

    32 bits are enough because keys are compared: at 1M keys about a hundred pairs share a hash,
    each costing one more comparison; 64 bits would cost 4 more bytes a key and buy nothing.
    """
    return (hash_strings(keys) >> np.uint64(32)).astype(np.uint32)


@dataclass(frozen=True)
class _Run:
    """Keys sorted by hash, with the row that first had each."""

    hashes: np.ndarray  # uint32, ascending
    rows: np.ndarray  # int32 (int64 past 2**31 rows)
    keys: pa.StringArray


class SeenKeys:
    """The keys scored so far, as a few sorted runs, each written once and never copied or merged.

    The new keys of each slice are sorted into a small pending run; once the pending runs hold
    ``run_keys`` keys they are concatenated into one run (a copy of at most ``run_keys`` keys).
    Memory is therefore 12 bytes plus the key's length per scored key plus a bounded amount, and
    a lookup is one binary search per run (1M keys: 4 runs) and a key comparison per hash found.
    """

    def __init__(self, run_keys: int = 1 << 18) -> None:
        self.run_keys = run_keys
        self.runs: list[_Run] = []
        self.pending: list[_Run] = []
        self.pending_keys = 0

    @property
    def nbytes(self) -> int:
        """The bytes the index holds: what grows with the file."""
        return sum(
            r.hashes.nbytes + r.rows.nbytes + sum(b.size for b in r.keys.buffers() if b is not None)
            for r in self.runs + self.pending
        )

    def first_rows(self, keys: pa.Array, numbers: np.ndarray) -> np.ndarray:
        """For each key, the row that first had it (earlier slice or earlier in this one), else 0; records new keys."""
        if not len(keys):
            return np.zeros(0, dtype=np.int64)
        encoded = pc.dictionary_encode(keys)  # exact grouping within the slice
        unique = encoded.dictionary
        code = encoded.indices.to_numpy(zero_copy_only=False)
        _, head = np.unique(code, return_index=True)  # head[u]: the first position of unique key u
        hashes = _hash32(unique)
        by_hash = np.argsort(hashes)  # sorted queries: binary searches that walk each run once
        earlier = self._earlier(unique, hashes, by_hash)
        first = np.where(earlier[code] > 0, earlier[code], numbers[head][code])
        new = by_hash[earlier[by_hash] == 0]  # in hash order
        first[head[new]] = 0  # the first occurrence of a new key is the one scored
        if len(new):
            self._add(hashes[new], numbers[head[new]], unique.take(pa.array(new)))
        return first

    def _earlier(self, keys: pa.StringArray, hashes: np.ndarray, by_hash: np.ndarray) -> np.ndarray:
        """The row number of each (distinct) key if it was seen before, else 0."""
        earlier = np.zeros(len(keys), dtype=np.int64)
        sorted_hashes = hashes[by_hash]
        for run in self.runs + self.pending:
            at = np.searchsorted(run.hashes, sorted_hashes)
            hit = run.hashes[at.clip(max=len(run.hashes) - 1)] == sorted_hashes
            if not hit.any():
                continue
            at, queries = at[hit], by_hash[hit]
            same = pc.equal(run.keys.take(pa.array(at)), keys.take(pa.array(queries)))
            same = same.to_numpy(zero_copy_only=False)
            earlier[queries[same]] = run.rows[at[same]]
            for i, first in zip(queries[~same], at[~same]):  # another key has this hash: look at the rest
                key = keys[int(i)].as_py()
                j = int(first) + 1
                while j < len(run.hashes) and run.hashes[j] == hashes[i]:
                    if run.keys[j].as_py() == key:
                        earlier[i] = run.rows[j]
                        break
                    j += 1
        return earlier

    def _add(self, hashes: np.ndarray, rows: np.ndarray, keys: pa.StringArray) -> None:
        """New keys, already in hash order, become a pending run; enough pending keys become a run."""
        dtype = np.int32 if rows.max() <= np.iinfo(np.int32).max else np.int64
        self.pending.append(_Run(hashes, rows.astype(dtype), keys))
        self.pending_keys += len(hashes)
        if self.pending_keys >= self.run_keys:
            merged = np.concatenate([r.hashes for r in self.pending])
            order = np.argsort(merged, kind="stable")
            self.runs.append(
                _Run(
                    merged[order],
                    np.concatenate([r.rows for r in self.pending])[order],
                    pa.concat_arrays([r.keys for r in self.pending]).take(pa.array(order)),
                )
            )
            self.pending, self.pending_keys = [], 0
