"""The in-function path's bounded-memory pieces: the paced reader, the key hash and the duplicate index."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from pharmaseg.score_batch import duplicates
from pharmaseg.score_batch.duplicates import SeenKeys, hash_strings
from pharmaseg.score_batch.stream import Paced


def test_paced_reader_stays_two_blocks_ahead_of_its_consumer():
    data = b"a,b\n" + b"1,2\n" * 50_000  # ~200 KB in 4 KB blocks: ~50 blocks
    paced = Paced(io.BytesIO(data))
    rows, ahead = 0, []
    opts = pcsv.ReadOptions(use_threads=False, block_size=4096)
    for batch in paced.batches(lambda stream: pcsv.open_csv(stream, read_options=opts)):
        rows += batch.num_rows
        ahead.append(paced._reads - paced._batches)
    assert rows == 50_000
    assert max(ahead) <= 2 and len(ahead) > 40  # pyarrow alone would queue up to 32 blocks


def test_hash_is_by_value_whatever_the_buffers():
    values = ["DEU", "DEU:scénario long 123456789", "DEU:scénario long 12345678", "", "ABCDEFGH", "ABCDEFGH\x00"]
    hashes = hash_strings(pa.array(values))
    assert len(set(hashes.tolist())) == len(values)
    sliced = pa.array(["zz", *values]).slice(1)
    assert (hash_strings(sliced) == hashes).all()
    assert hash_strings(pa.array([], pa.string())).dtype == np.uint64


def test_seen_keys_across_runs_and_blocks():
    keys = pa.array([f"K{i % 5000}" for i in range(20_000)])
    seen = SeenKeys(run_keys=1000)
    first = np.concatenate(
        [seen.first_rows(keys.slice(o, 700), np.arange(o, o + 700) + 2) for o in range(0, 20_000, 700)]
    )
    expected = np.array([0 if i < 5000 else i % 5000 + 2 for i in range(20_000)])
    assert (first == expected).all()
    assert len(seen.runs) == 3 and seen.runs[0].rows.dtype == np.int32


def test_seen_keys_compare_keys_when_hashes_collide(monkeypatch):
    # One hash for every key: each lookup has to tell keys apart by their text alone.
    monkeypatch.setattr(duplicates, "_hash32", lambda keys: np.full(len(keys), 7, dtype=np.uint32))
    seen = SeenKeys()
    assert seen.first_rows(pa.array(["A", "B"]), np.array([2, 3])).tolist() == [0, 0]
    assert seen.first_rows(pa.array(["B", "C", "A", "C"]), np.array([4, 5, 6, 7])).tolist() == [3, 0, 2, 5]
    # Hash = length: "CD" meets only "AB" under its hash, which is a different key.
    monkeypatch.setattr(duplicates, "_hash32", lambda keys: pc.utf8_length(keys).to_numpy().astype(np.uint32))
    seen = SeenKeys()
    seen.first_rows(pa.array(["AB"]), np.array([2]))
    assert seen.first_rows(pa.array(["CD", "AB"]), np.array([3, 4])).tolist() == [0, 2]


def test_seen_keys_are_exact_across_runs_with_few_hash_values(monkeypatch):
    monkeypatch.setattr(duplicates, "_hash32", lambda keys: (hash_strings(keys) % np.uint64(64)).astype(np.uint32))
    rng = np.random.default_rng(3)
    pool = [f"DEU:{rng.integers(10**6)}-{i}" for i in range(1000)]
    keys = [pool[i] for i in rng.integers(0, len(pool), 10_000)]
    seen = SeenKeys(run_keys=300)
    got = np.concatenate(
        [
            seen.first_rows(pa.array(keys[o : o + 700]), np.arange(o, o + 700)[: len(keys[o : o + 700])] + 2)
            for o in range(0, len(keys), 700)
        ]
    )
    first: dict[str, int] = {}
    expected = []
    for row, key in enumerate(keys, start=2):
        expected.append(first.get(key, 0))
        first.setdefault(key, row)
    assert got.tolist() == expected
    assert len(seen.runs) >= 2  # lookups went through merged runs and pending ones


def test_seen_keys_hold_twelve_bytes_and_the_key_per_key():
    keys = [f"FRA:scenario-{i}" for i in range(5000)]
    seen = SeenKeys(run_keys=1000)
    for o in range(0, len(keys), 500):
        seen.first_rows(pa.array(keys[o : o + 500]), np.arange(o, o + 500) + 2)
    per_run = sum(4 + (len(r.keys) + 7) // 8 for r in seen.runs + seen.pending)  # closing offset, validity bits
    assert seen.nbytes == 12 * len(keys) + sum(len(k) for k in keys) + per_run
