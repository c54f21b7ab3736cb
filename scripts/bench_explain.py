"""Per-row cost of the explanations (docs/explanations.md), against the served prediction.

Baseline: the nearest centroid alone, in plain Python, on the same row in the same run (the least
any per-request answer costs), so the ratios travel across these noisy, shared machines.
Measured: ``Explainer.explain`` (full 9-feature row and a 3-feature partial row), the same plus
``to_dict`` (what an answer needs), and ``explain_many`` per row on a batch slice of 8,192 rows.
Each figure is the best of 9 timeit repeats. Run: `.venv/bin/python scripts/bench_explain.py`.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SLICE_ROWS = 8192


def _nearest(artifact, row):
    """The nearest centroid and its confidence, and nothing else: the baseline."""
    import math

    scaled = [(v - m) / s for v, m, s in zip(row, artifact.scaler_mean.tolist(), artifact.scaler_scale.tolist())]
    distances = [math.sqrt(sum((a - b) * (a - b) for a, b in zip(scaled, c))) for c in artifact.centroids.tolist()]
    first, second = sorted(distances)[:2]
    return distances.index(first), 1.0 - first / second


def _best_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=9)) / number * 1e6


def run(log=print) -> str:
    import numpy as np

    from pharmaseg.config import SETTINGS
    from pharmaseg.model.explain import REQUIRED_FEATURES, Explainer
    from pharmaseg.model.sources import default_data
    from pharmaseg.model.training import train_file

    table, artifact = train_file(default_data())
    explainer = Explainer(artifact, SETTINGS["PHARMASEG_BORDERLINE_CONFIDENCE"].default)
    row = table.values[table.countries.index("DEU")].tolist()
    levels = explainer.used_indexes(REQUIRED_FEATURES)
    rng = np.random.default_rng(0)
    batch = table.values[rng.integers(0, len(table.countries), SLICE_ROWS)] * rng.normal(1, 0.1, (SLICE_ROWS, 9))

    n = 20_000
    baseline = _best_us(lambda: _nearest(artifact, row), n)
    cases = [
        ("explain, 9 features", _best_us(lambda: explainer.explain(row), n)),
        ("explain + to_dict, 9 features", _best_us(lambda: explainer.explain(row).to_dict(), n)),
        ("explain, 3 features (partial)", _best_us(lambda: explainer.explain(row, levels), n)),
        ("explain + to_dict, 3 features", _best_us(lambda: explainer.explain(row, levels).to_dict(), n)),
        (
            f"explain_many per row, {SLICE_ROWS:,}-row slice, batch columns",
            _best_us(lambda: explainer.explain_many(batch, what_if=False), 3) / SLICE_ROWS,
        ),
        (
            f"explain_many per row, {SLICE_ROWS:,}-row slice, with what-if",
            _best_us(lambda: explainer.explain_many(batch), 3) / SLICE_ROWS,
        ),
    ]
    lines = [
        "## Explanations (per row)",
        "",
        "`.venv/bin/python scripts/bench_explain.py`; best of 9 timeit repeats, the DEU row of the",
        "original 2011-2020 model; baseline: the nearest centroid alone, plain Python, on the same row.",
        "",
        "| what | us per row | / nearest |",
        "| --- | --- | --- |",
        f"| baseline: nearest centroid alone, 9 features | {baseline:.2f} | 1.00 |",
    ]
    lines += [f"| {name} | {us:.2f} | {us / baseline:.2f} |" for name, us in cases]
    section = "\n".join(lines) + "\n"
    log(section)
    return section


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    run()
