"""CLI: ``PYTHONPATH=scripts python -m tfcheck [terraform-dir]`` runs every offline check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfcheck.checks import check_conventions, check_references, check_schema
from tfcheck.consistency import check_consistency
from tfcheck.loader import load_module
from tfcheck.ordering import check_function_access, check_ordering
from tfcheck.schema import ProviderSchema, default_bindings_dir
from tfcheck.tools import default_checkov, run_checkov, terraform_fmt_check

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tfcheck", description="Offline checks of the Terraform configuration.")
    parser.add_argument("path", nargs="?", type=Path, default=REPO_ROOT / "terraform")
    parser.add_argument("--bindings", type=Path, default=default_bindings_dir(REPO_ROOT))
    parser.add_argument("--checkov", type=Path, default=default_checkov(REPO_ROOT))
    parser.add_argument("--no-checkov", action="store_true", help="skip the checkov run")
    args = parser.parse_args(argv)

    failures = 0
    ok, listing = terraform_fmt_check(args.path)
    print(f"fmt: {'ok' if ok else 'unformatted: ' + listing}")
    failures += not ok

    module = load_module(args.path)
    schema = ProviderSchema(args.bindings)
    for name, findings in (
        ("schema", check_schema(module, schema)),
        ("references", check_references(module, schema)),
        ("conventions", check_conventions(module)),
        ("consistency", check_consistency(module, REPO_ROOT)),
        ("ordering", check_ordering(module)),
        ("access", check_function_access(module, REPO_ROOT)),
    ):
        print(f"{name}: {len(findings)} finding(s)")
        for finding in findings:
            print(f"  {finding}")
        failures += len(findings)

    if not args.no_checkov:
        report = run_checkov(args.path, args.checkov)
        print(f"checkov: passed={len(report.passed)} failed={len(report.failed)} skipped={len(report.skipped)}")
        if report.failed:
            print(report.describe_failures())
        failures += len(report.failed) + len(report.parsing_errors)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
