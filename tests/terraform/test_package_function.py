"""scripts/package_function.py: same sources -> same bytes; any change -> a new md5."""

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
    return tmp_path


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
    assert names == [
        "main.py",
        "pharmaseg/__init__.py",
        "pharmaseg/core.py",
        "pharmaseg/resources/resources.json",
        "requirements.txt",
    ]
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


def test_real_functions_package_reproducibly(tmp_path):
    ready = [
        fn
        for fn in package.declared_functions()
        if (REPO_ROOT / "functions" / fn / "main.py").is_file()
        and (REPO_ROOT / "functions" / fn / "requirements.txt").is_file()
    ]
    if not ready:
        pytest.skip("no function folder is complete yet")
    for fn in ready:
        a = package.package_function(fn, tmp_path / "a")
        b = package.package_function(fn, tmp_path / "b")
        assert package.md5(a) == package.md5(b), fn
        with zipfile.ZipFile(a) as zf:
            assert {
                "main.py",
                "requirements.txt",
                "pharmaseg/__init__.py",
                "pharmaseg/resources/resources.json",
            } <= set(zf.namelist())
