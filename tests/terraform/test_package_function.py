"""scripts/package_function.py: only what the function imports; same sources -> same bytes; any change -> a new md5."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("package_function", REPO_ROOT / "scripts" / "package_function.py")
package = importlib.util.module_from_spec(_spec)
sys.modules["package_function"] = package
_spec.loader.exec_module(package)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A miniature repository: one function and a two-module library."""
    fn = tmp_path / "functions" / "demo"
    fn.mkdir(parents=True)
    (fn / "main.py").write_text("import pharmaseg\n\n\ndef demo(request):\n    return pharmaseg.VALUE\n")
    (fn / "requirements.txt").write_text("functions-framework==3.10.2\n")
    (fn / "main_test.py").write_text("def test_x():\n    pass\n")
    (fn / "__pycache__").mkdir()
    (fn / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    lib = tmp_path / "shared" / "pharmaseg"
    (lib / "resources").mkdir(parents=True)
    (lib / "__init__.py").write_text("from pharmaseg.core import VALUE\n")
    (lib / "core.py").write_text("VALUE = 42\n")
    (lib / "resources" / "resources.json").write_text('{"functions": {"demo": {}}}')
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.package-data]\npharmaseg = ["resources/*.json"]\n')
    return tmp_path


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def library_entries(name: str, repo: Path) -> list[str]:
    return [a for a in package.archive_entries(name, repo) if a.startswith("pharmaseg/")]


def test_same_sources_give_the_same_md5(repo, tmp_path):
    first = package.md5(package.package_function("demo", tmp_path / "a", repo))
    for path in repo.rglob("*"):  # new mtimes must not matter
        os.utime(path, (2_000_000_000, 2_000_000_000))
    second = package.md5(package.package_function("demo", tmp_path / "b", repo))
    assert first == second


def test_a_library_change_changes_the_md5(repo, tmp_path):
    before = package.md5(package.package_function("demo", tmp_path / "a", repo))
    (repo / "shared" / "pharmaseg" / "core.py").write_text("VALUE = 43\n")
    assert package.md5(package.package_function("demo", tmp_path / "b", repo)) != before


def test_a_function_change_changes_the_md5(repo, tmp_path):
    before = package.md5(package.package_function("demo", tmp_path / "a", repo))
    (repo / "functions" / "demo" / "requirements.txt").write_text("functions-framework==3.10.1\n")
    assert package.md5(package.package_function("demo", tmp_path / "b", repo)) != before


def test_archive_layout_lets_main_import_pharmaseg(repo, tmp_path):
    archive = package.package_function("demo", tmp_path / "out", repo)
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {package.FIXED_DATE}
        zf.extractall(tmp_path / "x")
    assert names == ["main.py", "pharmaseg/__init__.py", "pharmaseg/core.py", "requirements.txt"]
    out = subprocess.run(
        [sys.executable, "-c", "import main; print(main.demo(None))"],
        cwd=tmp_path / "x",
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert out.stdout.strip() == "42", out.stderr


def test_missing_requirements_is_an_error(repo, tmp_path):
    (repo / "functions" / "demo" / "requirements.txt").unlink()
    with pytest.raises(package.PackagingError, match="requirements.txt"):
        package.package_function("demo", tmp_path / "out", repo)


def test_cli_packages_every_declared_function(repo, tmp_path):
    assert package.main(["--all", "--out", str(tmp_path / "out"), "--repo-root", str(repo)]) == 0
    assert (tmp_path / "out" / "demo.zip").is_file()


def test_only_the_modules_the_function_imports_ship(repo):
    """Imports at any depth count (lazy ones inside functions too), through packages' __init__.py,
    but not what runs only as a script: a private entry point that only the __main__ block calls."""
    lib = repo / "shared" / "pharmaseg"
    write(
        lib,
        {
            "core.py": (
                "VALUE = 42\n\n\ndef lazy():\n    from pharmaseg.sub import leaf\n\n    return leaf\n\n\n"
                "def _main():\n    import pharmaseg.devtool\n\n\n"
                "def run():\n    from pharmaseg import tool\n\n\n"
                'if __name__ == "__main__":\n    import pharmaseg.unused\n\n    _main()\n    run()\n'
            ),
            "sub/__init__.py": "",
            "sub/leaf.py": "from pharmaseg.sub.deep import helper\n",
            "sub/deep/__init__.py": "",
            "sub/deep/helper.py": "",
            "tool.py": "",
            "devtool.py": "",
            "unused.py": "",
        },
    )
    assert library_entries("demo", repo) == [
        "pharmaseg/__init__.py",
        "pharmaseg/core.py",
        "pharmaseg/sub/__init__.py",
        "pharmaseg/sub/deep/__init__.py",
        "pharmaseg/sub/deep/helper.py",
        "pharmaseg/sub/leaf.py",
        "pharmaseg/tool.py",
    ]


def test_a_private_entry_point_called_elsewhere_ships_its_imports(repo):
    write(
        repo / "shared" / "pharmaseg",
        {
            "core.py": (
                "VALUE = _main\n\n\ndef _main():\n    import pharmaseg.devtool\n\n\n"
                'if __name__ == "__main__":\n    _main()\n'
            ),
            "devtool.py": "",
        },
    )
    assert "pharmaseg/devtool.py" in library_entries("demo", repo)


def test_package_data_ships_with_the_module_that_names_its_folder(repo):
    lib = repo / "shared" / "pharmaseg"
    write(lib, {"reader.py": 'from pathlib import Path\n\nDIR = Path(__file__).parent / "resources"\n'})
    assert "pharmaseg/resources/resources.json" not in library_entries("demo", repo)
    write(lib, {"core.py": "import pharmaseg.reader\n\nVALUE = 42\n"})
    assert "pharmaseg/resources/resources.json" in library_entries("demo", repo)


def test_package_data_ships_with_a_reader_in_a_subpackage(repo):
    """gcp/resources.py reads pharmaseg/resources/: a reader one package down still ships the folder."""
    lib = repo / "shared" / "pharmaseg"
    write(
        lib,
        {
            "gcp/__init__.py": "",
            "gcp/names.py": 'from pathlib import Path\n\nDIR = Path(__file__).parents[1] / "resources"\n',
        },
    )
    write(lib, {"core.py": "import pharmaseg.gcp.names\n\nVALUE = 42\n"})
    assert "pharmaseg/resources/resources.json" in library_entries("demo", repo)


@pytest.mark.parametrize("fn", ["score_batch", "retrain", "check_drift"])
def test_functions_that_name_tables_ship_the_resources_and_schemas(fn, tmp_path):
    """They look up bucket, topic and table names and schemas at run time: a deployed archive without
    resources.json would fail at its first table."""
    with zipfile.ZipFile(package.package_function(fn, tmp_path)) as zf:
        names = set(zf.namelist())
    assert "pharmaseg/resources/resources.json" in names
    assert "pharmaseg/resources/schemas/drift_reports.json" in names


def test_an_import_of_a_missing_library_module_names_the_importer(repo, tmp_path):
    write(repo / "shared" / "pharmaseg", {"core.py": "from pharmaseg.gone import thing\n\nVALUE = 42\n"})
    with pytest.raises(package.PackagingError, match=r"core\.py imports pharmaseg\.gone"):
        package.package_function("demo", tmp_path / "out", repo)


def test_relative_imports_resolve_in_their_package(repo):
    write(
        repo / "shared" / "pharmaseg",
        {"__init__.py": "from .core import VALUE\n", "core.py": "from . import sub\n", "sub/__init__.py": ""},
    )
    assert "pharmaseg/sub/__init__.py" in library_entries("demo", repo)


def test_every_declared_function_has_its_files(repo_root):
    missing = [
        f"functions/{fn}/{required}"
        for fn in package.declared_functions()
        for required in ("main.py", "requirements.txt")
        if not (repo_root / "functions" / fn / required).is_file()
    ]
    assert not missing, f"declared in resources.json but missing: {', '.join(missing)}"


@pytest.mark.parametrize("fn", package.declared_functions())
def test_real_functions_package_reproducibly_without_dev_code(fn, tmp_path):
    a = package.package_function(fn, tmp_path / "a")
    b = package.package_function(fn, tmp_path / "b")
    assert package.md5(a) == package.md5(b), fn
    with zipfile.ZipFile(a) as zf:
        names = set(zf.namelist())
    assert {"main.py", "requirements.txt", "pharmaseg/__init__.py"} <= names
    dev_only = {n for n in names if n.startswith("pharmaseg_dev/")}
    assert not dev_only, f"{fn} ships the dev-only {sorted(dev_only)}"
