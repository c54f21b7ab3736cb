#!/usr/bin/env python3
"""Package one Cloud Function into a reproducible zip: build/<name>.zip.

The archive holds the function folder's files (``main.py``, ``requirements.txt``, ...) and the
shared library as source under ``pharmaseg/``, both at the zip root, so that ``import pharmaseg``
works in the deployed function. Entries are sorted and carry a fixed timestamp and fixed
permissions, so the same sources always give the same bytes and the same md5: Terraform names
the uploaded object after that md5 (``filemd5()``), so only a real change redeploys.

Usage:
    python scripts/package_function.py predict score_batch --out build
    python scripts/package_function.py --all
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry
FILE_MODE = 0o644
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "tests", ".venv"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
EXCLUDED_NAMES = {".DS_Store", ".gcloudignore", ".env"}


class PackagingError(Exception):
    """A function cannot be packaged (missing folder, entry file or requirements)."""


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _files(root: Path) -> list[Path]:
    """Files under ``root`` that belong in a deployment, sorted, without caches or tests."""
    kept = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS or part.endswith(EXCLUDED_SUFFIXES) for part in rel.parts):
            continue
        if path.is_dir() or path.name in EXCLUDED_NAMES or path.name.endswith(EXCLUDED_SUFFIXES):
            continue
        if _is_test_file(path.name):
            continue
        kept.append(path)
    return sorted(kept, key=lambda p: p.relative_to(root).as_posix())


def archive_entries(name: str, repo_root: Path = REPO_ROOT) -> dict[str, Path]:
    """Map of archive path -> source file for function ``name``."""
    function_dir = repo_root / "functions" / name
    library_dir = repo_root / "shared" / "pharmaseg"
    if not function_dir.is_dir():
        raise PackagingError(f"no function folder {function_dir}")
    for required in ("main.py", "requirements.txt"):
        if not (function_dir / required).is_file():
            raise PackagingError(f"{function_dir / required} is missing")
    if not (library_dir / "__init__.py").is_file():
        raise PackagingError(f"no shared library at {library_dir}")

    entries = {p.relative_to(function_dir).as_posix(): p for p in _files(function_dir)}
    if any(arcname.split("/")[0] in ("pharmaseg", "pharmaseg.py") for arcname in entries):
        raise PackagingError(f"functions/{name} has its own pharmaseg, which would shadow the library")
    for path in _files(library_dir):
        entries["pharmaseg/" + path.relative_to(library_dir).as_posix()] = path
    return dict(sorted(entries.items()))


def package_function(name: str, out_dir: Path, repo_root: Path = REPO_ROOT) -> Path:
    """Write ``out_dir/<name>.zip`` and return its path."""
    entries = archive_entries(name, repo_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.zip"
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for arcname, path in entries.items():
            info = zipfile.ZipInfo(arcname, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100000 | FILE_MODE) << 16  # regular file, rw-r--r--
            info.create_system = 3  # Unix, whatever the building machine
            archive.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    tmp.replace(target)
    return target


def md5(path: Path) -> str:
    """Hex md5 of a file, the value Terraform's filemd5() gives."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def declared_functions(repo_root: Path = REPO_ROOT) -> list[str]:
    """Function names declared in resources.json (the ones Terraform deploys)."""
    spec = json.loads((repo_root / "shared/pharmaseg/resources/resources.json").read_text())
    return sorted(spec["functions"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="function names (folders under functions/)")
    parser.add_argument("--all", action="store_true", help="every function of resources.json")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build", help="output directory (default build/)")
    parser.add_argument("--repo-root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = declared_functions(args.repo_root) if args.all else args.names
    if not names:
        parser.error("name at least one function, or --all")
    try:
        for name in names:
            path = package_function(name, args.out, args.repo_root)
            print(f"{path}  md5={md5(path)}")
    except PackagingError as exc:
        print(f"package_function: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
