"""`make bench`: every benchmark in one run, written to docs/benchmarks.md.

Each section measures its own baseline in the same run (these machines are noisy, so only
ratios within a run mean something). Sections: the prediction function (scripts/bench_predict.py),
the contract library (bench_contract.py), the explanations (bench_explain.py), batch scoring
(bench_batch.py), the drift check at scale (bench_drift.py).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("bench_predict", "bench_contract", "bench_explain", "bench_batch", "bench_drift")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a section's dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def _merge(previous: str, sections: dict[str, str]) -> str:
    """Replace the sections that were run, keep the others from the last full run."""
    kept = {}
    for name in SECTIONS:
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in previous and end in previous:
            kept[name] = previous[previous.index(start) + len(start) : previous.index(end)].strip("\n")
    kept.update(sections)
    body = "\n".join(f"<!-- {n}:start -->\n{kept[n]}\n<!-- {n}:end -->\n" for n in SECTIONS if n in kept)
    # Written by hand (the reading of the figures, profiles): kept as it is.
    start, end = "<!-- notes:start -->", "<!-- notes:end -->"
    if start in previous and end in previous:
        body += "\n" + previous[previous.index(start) : previous.index(end) + len(end)] + "\n"
    return body


def main() -> int:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "scripts"))  # the sections import their shared helpers (cloud_prices)
    only = [s for s in sys.argv[1:] if s in SECTIONS] or list(SECTIONS)
    sections = {}
    for name in only:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        sections[name] = _load(name).run()
    target = REPO / "docs" / "benchmarks.md"
    header = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`.venv/bin/python scripts/bench.py [SECTION ...]`), which rewrites the",
        "sections it runs. Every figure is compared with a baseline measured in the same run; the",
        "machines are shared and noisy, so only ratios within a run mean something.",
        f"Sections run last: {', '.join(only)}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
    ]
    previous = target.read_text() if target.exists() else ""
    target.write_text("\n".join(header) + "\n" + _merge(previous, sections))
    print("\n".join(sections.values()))
    print(f"bench: wrote {target.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
