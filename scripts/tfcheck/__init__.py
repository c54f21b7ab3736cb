"""Offline checks of the Terraform configuration (no provider download, no credentials).

- ``loader``: parse a directory of ``.tf`` files with python-hcl2.
- ``schema``: the google, google-beta and time providers' schemas, read with ``ast`` from the
  cdktn-provider-* bindings.
- ``checks``: argument/block/required checks, reference resolution, variable/output conventions.
- ``ordering``: order of bring-up (APIs, service agents, grants, waits, functions, metrics, alerts)
  and function grants only from ``terraform/function_access.json``.
- ``tools``: ``terraform fmt -check`` and checkov as subprocesses.

Run ``PYTHONPATH=scripts python -m tfcheck terraform`` for all of them.
"""

from tfcheck.checks import Finding, check_conventions, check_references, check_schema
from tfcheck.loader import Module, load_module
from tfcheck.schema import ProviderSchema, default_bindings_dir
from tfcheck.tools import CheckovReport, run_checkov, terraform_fmt_check

__all__ = [
    "CheckovReport",
    "Finding",
    "Module",
    "ProviderSchema",
    "check_conventions",
    "check_references",
    "check_schema",
    "default_bindings_dir",
    "load_module",
    "run_checkov",
    "terraform_fmt_check",
]
