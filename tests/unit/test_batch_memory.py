"""The in-function path's bounded-memory pieces: the paced reader, the key hash and the duplicate index."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from pharmaseg.batch.duplicates import SeenKeys, hash_strings
from pharmaseg.batch.stream import Paced


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
    assert len(seen.runs) == 3 and seen.runs[0][1].dtype == np.int32
