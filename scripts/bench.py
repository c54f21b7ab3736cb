"""`make bench`: every benchmark in one run, written to docs/benchmarks.md.

Each section measures its own baseline in the same run (these machines are noisy, so only
ratios within a run mean something). Sections: the prediction function (scripts/bench_predict.py),
batch scoring (scripts/bench_batch.py), the drift check at scale (scripts/bench_drift.py).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("bench_predict", "bench_batch", "bench_drift")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    sys.path.insert(0, str(REPO))
    only = [s for s in sys.argv[1:] if s in SECTIONS] or list(SECTIONS)
    parts = []
    for name in only:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        parts.append(_load(name).run())
    header = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`.venv/bin/python scripts/bench.py`), which rewrites this file.",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Every figure is compared with a baseline measured in the same run.",
        "",
    ]
    (REPO / "docs" / "benchmarks.md").write_text("\n".join(header) + "\n".join(parts))
    print("\n".join(parts))
    print("bench: wrote docs/benchmarks.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
