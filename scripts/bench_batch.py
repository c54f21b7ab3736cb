"""Batch scoring benchmark: the in-function path against its bound, at 100k and 1M rows.

Each measurement runs in a fresh subprocess so that its peak RSS (VmHWM) is its own:

- ``path``: ``pharmaseg.score_batch.scoring.score_features`` (stream in blocks, validate every row,
  score, write the scored and rejects CSVs to local files) - the function minus GCS/BigQuery I/O;
- ``bound``: parse the same file with ``pyarrow.csv.read_csv`` (float columns) and take the
  nearest centroid with numpy, nothing else.

The section also gives the bytes the exact duplicate index (``duplicates.SeenKeys``) holds once
it has seen every key of the file: the part of the path's memory that grows with the rows.

``run()`` returns a markdown section; ``python scripts/bench_batch.py`` prints it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (100_000, 1_000_000)
SMALL_BLOCK = 1 << 20

_CHILD = r"""
import json, sys, time
import numpy as np
from pharmaseg.model.artifact import ModelArtifact
mode, csv_path, model_path, out_dir, block_size = sys.argv[1:6]
artifact = ModelArtifact.from_json(open(model_path, "rb").read())
start = time.perf_counter()
if mode == "bound":
    import pyarrow.csv as pcsv
    table = pcsv.read_csv(csv_path)
    values = np.column_stack([table.column(n).to_numpy() for n in artifact.feature_names])
    rows = int(len(artifact.predict(values).clusters))
else:
    from pharmaseg.score_batch.csv_out import CsvOut
    from pharmaseg.score_batch.layouts import detect_layout
    from pharmaseg.score_batch.scoring import score_features
    with open(csv_path, "rb") as f:
        layout = detect_layout(f.read(65536))
    with open(csv_path, "rb") as src, open(out_dir + "/s.csv", "wb") as s, open(out_dir + "/r.csv", "wb") as r:
        out = CsvOut(s, r, artifact.k)
        counts = score_features(src, layout, artifact, "bench", out, block_size=int(block_size))
        out.close()
    rows = counts.rows_scored
seconds = time.perf_counter() - start
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child started by a big
# parent (make bench runs the predict benchmark first) would report the parent's peak.
peak_mb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))
"""


def _model(path: Path):
    from pharmaseg.model.artifact import ModelArtifact
    from pharmaseg.model.features import FEATURE_NAMES
    from pharmaseg.model.segments import Segment

    rng = np.random.default_rng(1)
    artifact = ModelArtifact(
        feature_names=list(FEATURE_NAMES),
        window="2011-2020",
        scaler_mean=rng.normal(5, 1, 9),
        scaler_scale=rng.uniform(0.5, 2, 9),
        centroids=rng.normal(size=(3, 9)),
        segments=[Segment(i, f"S{i}", "", 1, 0.0, 0.0, True) for i in range(3)],
        reference={},
        metrics={},
        lineage={},
        assignments={},
        version="bench",
    )
    path.write_bytes(artifact.to_json())
    return artifact


def _features_csv(path: Path, rows: int) -> int:
    """A features CSV of ``rows`` distinct scenario rows (ISO code + label), written in chunks."""
    from pharmaseg.model.features import FEATURE_NAMES
    from pharmaseg.score_batch.countries import ISO3166_ALPHA3

    codes = sorted(ISO3166_ALPHA3)
    rng = np.random.default_rng(2)
    with path.open("w") as f:
        f.write("COUNTRY," + ",".join(FEATURE_NAMES) + "\n")
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            values = rng.normal(5, 2, (n, 9))
            lines = [
                f"{codes[i % len(codes)]}:s{i}," + ",".join(f"{v:.6f}" for v in row)
                for i, row in zip(range(start, start + n), values)
            ]
            f.write("\n".join(lines) + "\n")
    return path.stat().st_size


def _measure(mode: str, csv_path: Path, model_path: Path, out_dir: Path, block_size: int = 0) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(csv_path), str(model_path), str(out_dir), str(block_size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _index_bytes(csv_path: Path) -> tuple[int, int]:
    """(keys, bytes) the duplicate index holds after the file's keys, fed in the path's slices."""
    import pyarrow.csv as pcsv

    from pharmaseg.score_batch.duplicates import SeenKeys
    from pharmaseg.score_batch.scoring import SLICE_ROWS

    keys = pcsv.read_csv(csv_path, convert_options=pcsv.ConvertOptions(include_columns=["COUNTRY"])).column(0)
    keys = keys.combine_chunks()
    seen = SeenKeys()
    for start in range(0, len(keys), SLICE_ROWS):
        seen.first_rows(keys.slice(start, SLICE_ROWS), np.arange(start, start + SLICE_ROWS)[: len(keys) - start] + 2)
    return len(keys), seen.nbytes


def _block_sizes() -> tuple[int, ...]:
    """The block size the function runs with (PHARMASEG_BATCH_BLOCK_BYTES), then 1 MiB for comparison."""
    from pharmaseg import config

    configured = config.setting("PHARMASEG_BATCH_BLOCK_BYTES")
    return (configured,) if configured == SMALL_BLOCK else (configured, SMALL_BLOCK)


MEMORY_GIB = 1.0  # score_batch's deployed memory (terraform/variables.tf function_settings)


def run() -> str:
    """Measure and return the markdown section."""
    started = time.perf_counter()
    rows_out = []
    blocks = _block_sizes()
    peaks: dict[tuple[int, int], float] = {}
    index: dict[int, tuple[int, int]] = {}
    seconds: dict[str, float] = {}  # per row at the largest size: the configured path, and the bound
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model_path = tmp_path / "model.json"
        _model(model_path)
        for size in SIZES:
            csv_path = tmp_path / f"f{size}.csv"
            nbytes = _features_csv(csv_path, size)
            bound = _measure("bound", csv_path, model_path, tmp_path)
            for block in blocks:
                path = _measure("path", csv_path, model_path, tmp_path, block)
                assert path["rows"] == bound["rows"] == size, (path, bound)
                peaks[size, block] = path["peak_mb"]
                if block == blocks[0]:
                    seconds.update(path=path["seconds"] / size, bound=bound["seconds"] / size)
                rows_out.append(
                    f"| {size:,} | {nbytes / 1e6:.0f} MB | {block >> 20} MiB | {size / path['seconds']:,.0f} "
                    f"| {size / bound['seconds']:,.0f} | {path['seconds'] / bound['seconds']:.2f}x "
                    f"| {path['peak_mb']:.0f} MB | {bound['peak_mb']:.0f} MB |"
                )
            index[size] = _index_bytes(csv_path)
            csv_path.unlink()
    small, large = SIZES
    growth = [
        f"{block >> 20} MiB blocks{' (configured)' if block == blocks[0] else ''}: "
        f"{peaks[small, block]:.0f} -> {peaks[large, block]:.0f} MB, "
        f"{peaks[large, block] - peaks[small, block]:+.0f} MB, ratio {peaks[large, block] / peaks[small, block]:.2f}"
        for block in blocks
    ]
    from cloud_prices import PRICES_READ, per_million

    cost = {name: per_million(per_row, 1, MEMORY_GIB, requests=0) for name, per_row in seconds.items()}
    return "\n".join(
        [
            "## Batch scoring (in-function path)",
            "",
            "`score_features` streams the CSV in blocks, validates every row (country code, duplicates, "
            "9 finite numbers, column count), scores with numpy and writes the scored and rejects CSVs; the bound "
            "parses the same file with `pyarrow.csv.read_csv` and takes the nearest centroid, nothing else. "
            "Each in its own process; peak = VmHWM (its own high-water RSS). GCS and BigQuery I/O are not included.",
            "",
            "| rows | file | block | path rows/s | bound rows/s | path time / bound time | path peak RSS "
            "| bound peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows_out,
            "",
            f"Peak RSS of the path from {small:,} to {large:,} rows (the bound holds the whole file): "
            + "; ".join(growth)
            + ". Duplicate index held after the last key: "
            + "; ".join(
                f"{keys:,} keys {held / 2**20:.1f} MiB ({held / keys:.1f} bytes a key)" for keys, held in index.values()
            )
            + f". Measured in {time.perf_counter() - started:.0f} s.",
            "",
            f"Cost of a million rows at Cloud Run list prices (read {PRICES_READ}; scripts/cloud_prices.py), "
            f"score_batch's deployed size (1 vCPU, {MEMORY_GIB:g} GiB), scoring time only (GCS and BigQuery I/O "
            f"and the one event per file, $0.40 per million events, are extra): the path "
            f"{seconds['path'] * 1e6:.1f} instance-seconds, **${cost['path']:.5f}**; the bound "
            f"{seconds['bound'] * 1e6:.1f} s, ${cost['bound']:.5f}. The original project had no batch path: "
            "a million rows there are a million predictions of its API (prediction section).",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
