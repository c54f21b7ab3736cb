"""Terraform against the project's sources of truth.

- ``shared/pharmaseg/resources/resources.json``: the buckets, topics, dataset, tables and
  functions Terraform creates are exactly the ones declared there (the local stack creates the
  same), because each resource iterates the decoded file; table schemas are ``file()``s of
  ``resources/schemas/<role>.json``.
- ``shared/pharmaseg/config.py`` SETTINGS: the functions' environments (``local.function_env``)
  and the settings' variables are ``settings.tf``, generated from SETTINGS and current, and each
  function's ``environment_variables`` is its entry.
- ``functions/<name>/main.py``: the entry point exists (once the file exists).
- ``functions/<name>/requirements.txt``: exact pins, no local paths, the library's own dependencies.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from tfcheck.checks import Finding
from tfcheck.loader import Module, unquote

RESOURCES = "shared/pharmaseg/resources"

# Terraform resource type -> (local it must iterate, key of resources.json that local comes from)
RESOURCE_SETS = {
    "google_storage_bucket": ("bucket_names", "buckets"),
    "google_pubsub_topic": ("topic_names", "topics"),
    "google_bigquery_table": ("tables", "tables"),
    "google_cloudfunctions2_function": ("functions", "functions"),
}


# Resources that exist only for the deployment and that no code reads, so resources.json (the
# names the code and the local stack share) does not declare them. Each is named with its reason.
TERRAFORM_ONLY = {
    ("google_storage_bucket", "function_sources"): "function archives; no trigger listens to it (storage.tf)",
}


def load_spec(repo_root: Path) -> dict[str, Any]:
    return json.loads((repo_root / RESOURCES / "resources.json").read_text())


def _load_fresh(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while building the class
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def load_config(repo_root: Path) -> ModuleType:
    """shared/pharmaseg_dev/config_docs.py over this checkout's shared/pharmaseg/config.py, read
    fresh (the installed pharmaseg may be another checkout's): ``terraform_settings`` and the
    name and command of the file it generates."""
    config = _load_fresh(repo_root / "shared/pharmaseg/config.py", "_tfcheck_pharmaseg_config")
    saved = sys.modules.get("pharmaseg.config")
    sys.modules["pharmaseg.config"] = config  # config_docs renders the settings of this checkout
    try:
        return _load_fresh(repo_root / "shared/pharmaseg_dev/config_docs.py", "_tfcheck_config_docs")
    finally:
        if saved is None:
            sys.modules.pop("pharmaseg.config", None)
        else:
            sys.modules["pharmaseg.config"] = saved


def _expr(value: Any) -> str:
    """An expression without the ${} hcl2 wraps around it."""
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def _first_block(body: dict, name: str) -> dict:
    value = body.get(name) or [{}]
    return value[0] if isinstance(value, list) else {}


def check_sources_of_truth(module: Module, repo_root: Path) -> list[Finding]:
    findings: list[Finding] = []

    def bad(where: str, message: str, file: str = "locals.tf") -> None:
        findings.append(Finding("consistency", file, where, message))

    spec = load_spec(repo_root)
    resources_dir = _expr(module.locals.get("resources_dir", "")).strip('"')
    resolved = (module.path / resources_dir.replace("${path.module}", ".")).resolve()
    if resolved != (repo_root / RESOURCES).resolve():
        bad("local.resources_dir", f"points to {resolved}, not {repo_root / RESOURCES}")
    if _expr(module.locals.get("spec", "")) != 'jsondecode(file("${local.resources_dir}/resources.json"))':
        bad("local.spec", 'must be jsondecode(file("${local.resources_dir}/resources.json"))')
    if _expr(module.locals.get("dataset_id", "")) != "local.spec.dataset":
        bad("local.dataset_id", "must be local.spec.dataset")

    for rtype, (local_name, key) in RESOURCE_SETS.items():
        blocks = [b for (t, n), b in module.resources.items() if t == rtype and (t, n) not in TERRAFORM_ONLY]
        if len(blocks) != 1:
            bad(rtype, f"expected exactly one {rtype} (iterating local.{local_name}), found {len(blocks)}", "-")
            continue
        block = blocks[0]
        if _expr(block.body.get("for_each")) != f"local.{local_name}":
            bad(block.address, f"for_each must be local.{local_name} (the {key} of resources.json)", block.file)
        local_expr = _expr(module.locals.get(local_name, ""))
        if f"local.spec.{key}" not in local_expr:
            bad(f"local.{local_name}", f"must derive from local.spec.{key}")
        if not spec.get(key):
            bad(f"local.{local_name}", f"resources.json declares no {key}")

    if "replace(" not in _expr(module.locals.get("bucket_names", "")) or "{project}" not in str(
        module.locals.get("bucket_names", "")
    ):
        bad("local.bucket_names", "must replace {project} in the resources.json templates")
    names = {
        "google_storage_bucket": ("name", "each.value"),
        "google_pubsub_topic": ("name", "each.value"),
        "google_bigquery_table": ("table_id", "each.value.table"),
        "google_bigquery_dataset": ("dataset_id", "local.dataset_id"),
    }
    for rtype, (arg, expected) in names.items():
        for block in (b for (t, n), b in module.resources.items() if t == rtype and (t, n) not in TERRAFORM_ONLY):
            if _expr(block.body.get(arg)) != expected:
                bad(block.address, f"{arg} must be {expected} (the name from resources.json)", block.file)

    tables = [b for (t, _), b in module.resources.items() if t == "google_bigquery_table"]
    for block in tables:
        if _expr(block.body.get("schema")) != 'file("${local.resources_dir}/schemas/${each.key}.json")':
            bad(block.address, 'schema must be file("${local.resources_dir}/schemas/${each.key}.json")', block.file)
        partitioning = _first_block(block.body, "time_partitioning")
        if (
            _expr(partitioning.get("field")) != "each.value.partition_field"
            or unquote(str(partitioning.get("type"))) != "DAY"
        ):
            bad(block.address, "time_partitioning must be DAY on each.value.partition_field", block.file)
        if _expr(block.body.get("clustering")) != "each.value.clustering":
            bad(block.address, "clustering must be each.value.clustering", block.file)

    for role, table in spec["tables"].items():
        path = repo_root / RESOURCES / "schemas" / f"{role}.json"
        if not path.is_file():
            bad(f"table {role}", f"no schema file {path}", str(path))
            continue
        fields = {f["name"]: f for f in json.loads(path.read_text())}
        part = fields.get(table["partition_field"])
        if part is None or part["type"] not in ("TIMESTAMP", "DATE", "DATETIME"):
            bad(f"table {role}", f"partition field {table['partition_field']!r} is not a date/time column", str(path))
        for column in table["clustering"]:
            if column not in fields:
                bad(f"table {role}", f"clustering column {column!r} not in the schema", str(path))
    return findings


FUNCTION_ENVIRONMENT = "merge(local.function_env[each.key], local.runtime_environment)"


def check_function_env(module: Module, config: ModuleType) -> list[Finding]:
    """The functions' environments are the generated settings file, current with SETTINGS, and the
    client-library variables of resources.json that the local stack sets too."""
    findings: list[Finding] = []
    generated = Path(config.TERRAFORM_FILE).name
    functions = [b for (t, _), b in module.resources.items() if t == "google_cloudfunctions2_function"]
    for block in functions:
        service = _first_block(block.body, "service_config")
        if _expr(service.get("environment_variables")) != FUNCTION_ENVIRONMENT:
            findings.append(
                Finding(
                    "consistency",
                    block.file,
                    block.address,
                    f"service_config.environment_variables must be {FUNCTION_ENVIRONMENT}",
                )
            )
    if "local.spec.runtime_environment" not in _expr(module.locals.get("runtime_environment", "")):
        findings.append(
            Finding(
                "consistency", "locals.tf", "local.runtime_environment", "must come from local.spec.runtime_environment"
            )
        )
    path = module.path / generated
    if not path.is_file() or path.read_text() != config.terraform_settings():
        findings.append(
            Finding("consistency", generated, "-", f"stale or missing: regenerate it with `{config.TERRAFORM_COMMAND}`")
        )
    where = module.local_files.get("function_env")
    if where != generated:
        findings.append(
            Finding(
                "consistency", where or generated, "local.function_env", f"must be the one generated in {generated}"
            )
        )
    return findings


def entry_point_findings(repo_root: Path) -> tuple[list[Finding], list[str]]:
    """(findings, functions whose main.py does not exist yet)."""
    findings, missing = [], []
    for fn, spec in load_spec(repo_root)["functions"].items():
        main = repo_root / "functions" / fn / "main.py"
        if not main.is_file():
            missing.append(fn)
            continue
        tree = ast.parse(main.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if spec["entry_point"] not in defined:
            findings.append(
                Finding(
                    "consistency", str(main), fn, f"entry point {spec['entry_point']!r} is not a top-level function"
                )
            )
    return findings, missing


def check_entry_point_wiring(module: Module) -> list[Finding]:
    findings = []
    for (t, _), block in module.resources.items():
        if t == "google_cloudfunctions2_function":
            build = _first_block(block.body, "build_config")
            if _expr(build.get("entry_point")) != "each.value.entry_point":
                findings.append(
                    Finding(
                        "consistency",
                        block.file,
                        block.address,
                        "build_config.entry_point must be each.value.entry_point",
                    )
                )
    return findings


_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;#]+))?")


def requirements_findings(repo_root: Path) -> tuple[list[Finding], list[str]]:
    """(findings, functions whose requirements.txt does not exist yet)."""
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    core = {}
    for dep in pyproject["project"]["dependencies"]:
        m = _REQ.match(dep)
        core[m.group(1).lower().replace("_", "-")] = m.group(4)
    findings, missing = [], []
    for fn in load_spec(repo_root)["functions"]:
        path = repo_root / "functions" / fn / "requirements.txt"
        if not path.is_file():
            missing.append(fn)
            continue
        pins = {}
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = _REQ.match(line)
            if line.startswith(("-e", "--editable", ".", "/", "file:", "git+")) or m is None:
                findings.append(Finding("requirements", str(path), fn, f"{line!r}: only pinned PyPI packages deploy"))
                continue
            if not m.group(3):
                findings.append(Finding("requirements", str(path), fn, f"{line!r} is not pinned with =="))
            pins[m.group(1).lower().replace("_", "-")] = m.group(4)
        if "functions-framework" not in pins:
            findings.append(Finding("requirements", str(path), fn, "functions-framework is missing"))
        for name, version in core.items():
            if name not in pins:
                findings.append(Finding("requirements", str(path), fn, f"{name} (needed by pharmaseg) is missing"))
            elif version and pins[name] and pins[name] != version:
                findings.append(
                    Finding("requirements", str(path), fn, f"{name}=={pins[name]} differs from pyproject's {version}")
                )
    return findings, missing


def check_consistency(module: Module, repo_root: Path) -> list[Finding]:
    """Every consistency check that can run on what exists today."""
    return [
        *check_sources_of_truth(module, repo_root),
        *check_function_env(module, load_config(repo_root)),
        *check_entry_point_wiring(module),
        *entry_point_findings(repo_root)[0],
        *requirements_findings(repo_root)[0],
    ]
