"""External tools: ``terraform fmt -check`` and checkov."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def terraform_fmt_check(path: Path, terraform: str | None = None) -> tuple[bool, str]:
    """(ok, unformatted files) of ``terraform fmt -check -recursive path``."""
    binary = terraform or shutil.which("terraform")
    if binary is None:
        raise FileNotFoundError("terraform is not on PATH")
    proc = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-list=true", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


@dataclass
class CheckovReport:
    """Summary and per-check lists of one checkov run."""

    passed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    parsing_errors: list[str] = field(default_factory=list)

    def describe_failures(self) -> str:
        return "\n".join(
            f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}"
            for c in self.failed
        )


def default_checkov(repo_root: Path) -> Path:
    return repo_root / ".venv-infra" / "bin" / "checkov"


def run_checkov(path: Path, checkov: Path, extra_args: tuple[str, ...] = ()) -> CheckovReport:
    """Run checkov's Terraform policies on ``path`` offline and collect its JSON report."""
    if not Path(checkov).exists():
        raise FileNotFoundError(f"{checkov} not found; run `make infra-tools`")
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",  # no download of the guideline mapping
        "CHECKOV_SKIP_SCA": "TRUE",
        "ANSI_COLORS_DISABLED": "1",
        "LOG_LEVEL": "ERROR",
    }
    proc = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(path),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--compact",
            "--skip-download",
            "--download-external-modules",
            "false",
            *extra_args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = proc.stdout.strip()
    data = json.loads(out) if out else {}
    report = CheckovReport()
    for run in data if isinstance(data, list) else [data]:
        results = run.get("results", {})
        report.passed.extend(results.get("passed_checks", []))
        report.failed.extend(results.get("failed_checks", []))
        report.skipped.extend(results.get("skipped_checks", []))
        report.parsing_errors.extend(results.get("parsing_errors", []))
    return report
