#!/usr/bin/env python3
"""Validate the drift detector in-process: false-alarm and detection rates by sample size.

Each simulated check draws a recent sample, scores it with the production model (for the
segment shares) and runs exactly the statistics of a real check (``pharmaseg.drift.methods``:
KS up to PHARMASEG_DRIFT_KS_MAX_ROWS rows, bootstrap-calibrated Wasserstein/JS bins above, Holm
across 9 features + segment shares at alpha 0.05), with the test path forced per column: KS on raw
values, or "bins" (bootstrap-calibrated Wasserstein + Jensen-Shannon on binned counts). No
emulator is involved: the SQL binning is checked against numpy's in the unit and integration
tests, so this is the same computation.

Scenarios (reference = the 2011-2020 model's 36 training countries):
- ``H0 bootstrap``: whole countries resampled from the training rows (recent = reference).
- ``H0 smoothed``: the same plus a variance-preserving Gaussian kernel (bandwidth 0.5 std):
  a smooth population the 36 countries could have come from; the honest false-alarm rate.
- ``2012-2021 window``: countries resampled from the features of the 2012-2021 window.
- ``shift 0.5 std`` / ``shift 1 std``: H0 smoothed with one feature (USD_CAP_avg) shifted.

Usage: python scripts/validate_drift.py [--runs 400] [--write docs/drift.md]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELLS = ((10, "KS"), (30, "KS"), (100, "KS"), (1000, "KS"), (1000, "bins"), (10000, "KS"), (10000, "bins"))
SHIFTED = "USD_CAP_avg"
BANDWIDTH = 0.5
START, END = "<!-- validation:start -->", "<!-- validation:end -->"


def _data_path() -> Path:
    from pharmaseg.cli import default_data

    return Path(default_data())


def _model_and_windows():
    import hashlib

    from pharmaseg.features import Window
    from pharmaseg.panel import panel_features, read_panel
    from pharmaseg.training import TrainingParams, train

    path = _data_path()
    panel = read_panel(path)
    table = panel_features(panel, Window(2011, 2020))
    artifact = train(
        table,
        TrainingParams(n_bootstrap=5),
        source_uri=str(path),
        source_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        rows_read=len(panel.rows),
    )
    later = panel_features(panel, Window(2012, 2021)).values
    return artifact, np.asarray(table.values, dtype=float), np.asarray(later, dtype=float)


def _smoothed(base: np.ndarray, n: int, rng, stds: np.ndarray) -> np.ndarray:
    """Variance-preserving KDE draw: mean + (x - mean + h*std*eps) / sqrt(1 + h^2)."""
    rows = base[rng.integers(0, len(base), size=n)]
    mean = base.mean(axis=0)
    noise = rng.normal(size=rows.shape) * BANDWIDTH * stds
    return mean + (rows - mean + noise) / np.sqrt(1 + BANDWIDTH**2)


def simulate(runs: int, seed: int = 0, cells=CELLS, log=print) -> list[dict]:
    from pharmaseg.drift import methods

    artifact, train_values, later_values = _model_and_windows()
    refs = methods.references(artifact.reference, artifact.feature_names)
    stds = np.array([r.std for r in refs])
    j_shift = artifact.feature_names.index(SHIFTED)
    policy = methods.DriftPolicy(min_rows=2)
    scenarios = {
        "H0 bootstrap": lambda n, rng: train_values[rng.integers(0, len(train_values), size=n)],
        "H0 smoothed": lambda n, rng: _smoothed(train_values, n, rng, stds),
        "2012-2021 window": lambda n, rng: later_values[rng.integers(0, len(later_values), size=n)],
        "shift 0.5 std": lambda n, rng: _smoothed(train_values, n, rng, stds) + np.eye(9)[j_shift] * 0.5 * stds,
        "shift 1 std": lambda n, rng: _smoothed(train_values, n, rng, stds) + np.eye(9)[j_shift] * 1.0 * stds,
    }
    shares = artifact.reference["segment_shares"]
    results = []
    for n, path in cells:
        nulls = None
        if path == "bins":
            nulls = {
                r.name: methods.null_distribution(r, n, policy.bootstrap, policy.seed + i) for i, r in enumerate(refs)
            }
        for name, draw in scenarios.items():
            rng = np.random.default_rng([seed, n, hash(name) % 10_000])
            started = time.perf_counter()
            alarms = feature_alarms = shifted_flagged = 0
            for _ in range(runs):
                values = draw(n, rng)
                counts = np.bincount(artifact.predict(values).clusters, minlength=artifact.k)
                kwargs = dict(n=n, segment_shares=shares, n_ref=artifact.reference["n"], cluster_counts=counts)
                if path == "KS":
                    raw = {r.name: values[:, j] for j, r in enumerate(refs)}
                    result = methods.evaluate(refs, raw=raw, policy=policy, **kwargs)
                else:
                    binned = {r.name: methods.BinnedSample.from_values(values[:, j], r) for j, r in enumerate(refs)}
                    result = methods.evaluate(refs, binned=binned, policy=policy, nulls=nulls, **kwargs)
                alarms += result.verdict == "drift"
                feature_alarms += bool(result.drifted_features)
                shifted_flagged += SHIFTED in result.drifted_features
            row = {
                "scenario": name,
                "n": n,
                "path": path,
                "rate": alarms / runs,
                "feature_rate": feature_alarms / runs,
                "shifted_rate": shifted_flagged / runs,
                "runs": runs,
                "seconds": time.perf_counter() - started,
            }
            results.append(row)
            log(
                f"{name:18s} n={n:6d} drift={row['rate']:.3f} features={row['feature_rate']:.3f} "
                f"{SHIFTED}={row['shifted_rate']:.3f} ({row['seconds']:.1f}s)"
            )
    return results


def markdown(results: list[dict], runs: int) -> str:
    columns = list(dict.fromkeys((r["n"], r["path"]) for r in results))
    names = list(dict.fromkeys(r["scenario"] for r in results))
    by = {(r["scenario"], r["n"], r["path"]): r for r in results}
    lines = [
        f"Share of simulated checks with verdict `drift` ({runs} runs per cell, alpha = 0.05 family-wise, Holm; "
        "min_rows lowered to 2 so that n = 10 is tested too - with the default min_rows = 30 it is "
        "`insufficient_data`). In brackets: share of runs where a feature (not only the segment shares) was "
        f"flagged; for the shifts, share of runs where the shifted feature ({SHIFTED}) itself was flagged.",
        "",
        "| scenario | " + " | ".join(f"n = {n} ({p})" for n, p in columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for name in names:
        cells = []
        for n, p in columns:
            r = by[(name, n, p)]
            second = r["shifted_rate"] if name.startswith("shift") else r["feature_rate"]
            cells.append(f"{r['rate']:.1%} ({second:.1%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_into(doc: Path, table: str) -> None:
    text = doc.read_text() if doc.exists() else f"{START}\n{END}\n"
    block = f"{START}\n{table}\n{END}"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    doc.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, help="replace the validation block of this markdown file")
    args = parser.parse_args(argv)
    results = simulate(args.runs, args.seed)
    table = markdown(results, args.runs)
    print(table)
    if args.write:
        write_into(args.write, table)
        print(f"written into {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
