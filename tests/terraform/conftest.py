"""Fixtures of the offline Terraform checks: parsed module, provider schema, checkov report."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from tfcheck import ProviderSchema, default_bindings_dir, load_module, run_checkov  # noqa: E402
from tfcheck.tools import default_checkov  # noqa: E402

TF_DIR = REPO_ROOT / "terraform"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tf_dir() -> Path:
    return TF_DIR


@pytest.fixture(scope="session")
def module():
    return load_module(TF_DIR)


@pytest.fixture(scope="session")
def schema() -> ProviderSchema:
    """The provider schema, parsed lazily and cached for the whole session."""
    bindings = default_bindings_dir(REPO_ROOT)
    if not bindings.is_dir():
        pytest.fail(f"cdktn-provider-google bindings missing at {bindings}: run `make infra-tools`")
    return ProviderSchema(bindings)


@pytest.fixture(scope="session")
def checkov_bin() -> Path:
    path = default_checkov(REPO_ROOT)
    if not path.exists():
        pytest.fail(f"{path} missing: run `make infra-tools`")
    return path


@pytest.fixture(scope="session")
def checkov_report(checkov_bin):
    return run_checkov(TF_DIR, checkov_bin)


@pytest.fixture
def broken(tmp_path, tf_dir, repo_root):
    """A copy of terraform/ (with ../shared beside it) and an editor that must find its target."""
    copy = tmp_path / "terraform"
    shutil.copytree(tf_dir, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.zip"))
    (tmp_path / "shared").symlink_to(repo_root / "shared")

    def edit(file: str, old: str, new: str) -> Path:
        path = copy / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}: update the test"
        path.write_text(text.replace(old, new, 1))
        return copy

    return copy, edit
