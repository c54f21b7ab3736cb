#!/usr/bin/env python3
"""Package one Cloud Function into a reproducible zip: build/<name>.zip.

The archive holds the function folder's files (``main.py``, ``requirements.txt``, ...) and, under
``pharmaseg/``, only the library modules the function imports, both at the zip root, so that
``import pharmaseg`` works in the deployed function. The modules are found statically: the import
statements of the function's files, then of each library module they reach, at any depth (the
library imports lazily inside functions); what runs only when a module is executed as a script
(an ``if __name__ == "__main__":`` block) is left out. Package data (pyproject's ``package-data``) ships
with the modules that name its folder (``Path(__file__).parent / "page_assets"``). So the local
stack, the CLI and the drift simulator, which no function imports, are not deployed.

Entries are sorted and carry a fixed timestamp and fixed permissions, so the same sources always
give the same bytes and the same md5: Terraform names the uploaded object after that md5
(``filemd5()``), so only a real change redeploys.

Usage:
    python scripts/package_function.py predict score_batch --out build
    python scripts/package_function.py --all
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY = "pharmaseg"
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


def _module_file(library_dir: Path, module: str) -> Path | None:
    """The source of library module ``module`` (a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    base = library_dir.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if parts and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_main_guard(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _script_only(tree: ast.Module) -> list[ast.stmt]:
    """Statements that never run on import: ``if __name__ == "__main__":`` blocks, and the private
    functions of the module that only those blocks name (``_main``).

    A module's command line is not part of what a function runs: it may import the dev tooling and
    the training code.
    """
    guards = [node for node in tree.body if _is_main_guard(node)]
    named = {n.id for guard in guards for n in ast.walk(guard) if isinstance(n, ast.Name)}
    entries = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in named and node.name.startswith("_")
    ]
    rest = [node for node in tree.body if node not in guards and node not in entries]
    used = {n.id for node in rest for n in ast.walk(node) if isinstance(n, ast.Name)}
    return guards + [node for node in entries if node.name not in used]


def _imports(path: Path, package: str) -> tuple[set[str], set[str]]:
    """(library modules ``path`` imports, names it imports from them that may be modules too).

    Every import statement counts, wherever it is (lazy imports inside functions too), except in
    what runs only as a script. ``package`` resolves relative imports.
    """
    tree = ast.parse(path.read_bytes(), str(path))
    skipped = {id(n) for stmt in _script_only(tree) for n in ast.walk(stmt)}
    modules, members = set(), set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            modules.add(base)
            members.update(f"{base}.{alias.name}" for alias in node.names)
    ours = {m for m in modules if m.split(".")[0] == LIBRARY}
    return ours, {m for m in members if m.split(".")[0] == LIBRARY}


def library_modules(sources: list[Path], library_dir: Path) -> list[Path]:
    """The library files that ``sources`` import, directly or through one another, with the
    ``__init__.py`` of every package on the way (importing ``a.b`` runs ``a/__init__.py``)."""
    found: dict[str, Path] = {}
    todo = [(source, "") for source in sources]
    while todo:
        path, package = todo.pop()
        modules, members = _imports(path, package)
        for name in modules | members:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                module = ".".join(parts[:depth])
                if module in found:
                    continue
                source = _module_file(library_dir, module)
                if source is None:
                    if name in members and depth == len(parts):
                        continue  # an attribute of the module, not a submodule
                    raise PackagingError(f"{path} imports {module}, which is not in {library_dir}")
                found[module] = source
                todo.append((source, module if source.name == "__init__.py" else module.rpartition(".")[0]))
    return sorted(found.values())


def _names_in(path: Path) -> set[str]:
    """The string literals of a module: how it names the data folders it reads."""
    tree = ast.parse(path.read_bytes(), str(path))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def package_data(modules: list[Path], library_dir: Path, repo_root: Path) -> list[Path]:
    """Package-data files (pyproject.toml) whose folder a shipped module of the same package, or of a
    package inside it, names: ``pharmaseg/gcp/resources.py`` reads ``pharmaseg/resources/``."""
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"].get("package-data", {}).get(LIBRARY, [])
    files = set()
    for pattern in patterns:
        folder = PurePosixPath(pattern).parts[:-1]
        depth = len(folder)  # the data folder's package: the deepest folder above it with an __init__.py
        while depth and not (library_dir.joinpath(*folder[:depth]) / "__init__.py").is_file():
            depth -= 1
        if depth == len(folder):
            raise PackagingError(f"package data {pattern!r} is not in a data folder that its reader can name")
        package_dir = library_dir.joinpath(*folder[:depth])
        if any(package_dir in m.parents and folder[depth] in _names_in(m) for m in modules):
            files.update(p for p in library_dir.glob(pattern) if p.is_file())
    return sorted(files)


def archive_entries(name: str, repo_root: Path = REPO_ROOT) -> dict[str, Path]:
    """Map of archive path -> source file for function ``name``."""
    function_dir = repo_root / "functions" / name
    library_dir = repo_root / "shared" / LIBRARY
    if not function_dir.is_dir():
        raise PackagingError(f"no function folder {function_dir}")
    for required in ("main.py", "requirements.txt"):
        if not (function_dir / required).is_file():
            raise PackagingError(f"{function_dir / required} is missing")

    files = _files(function_dir)
    entries = {p.relative_to(function_dir).as_posix(): p for p in files}
    if any(arcname.split("/")[0] in (LIBRARY, f"{LIBRARY}.py") for arcname in entries):
        raise PackagingError(f"functions/{name} has its own {LIBRARY}, which would shadow the library")
    modules = library_modules([p for p in files if p.suffix == ".py"], library_dir)
    for path in [*modules, *package_data(modules, library_dir, repo_root)]:
        entries[f"{LIBRARY}/" + path.relative_to(library_dir).as_posix()] = path
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
