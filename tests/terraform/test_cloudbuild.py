"""cloudbuild.yaml: Terraform validates with the real provider where the registry is reachable."""

from __future__ import annotations

import re


def test_terraform_validate_runs_after_init_and_before_plan(repo_root):
    text = (repo_root / "cloudbuild.yaml").read_text()
    steps = re.findall(r"^  - id: (\S+)$", text, re.MULTILINE)
    assert steps.index("terraform-init") < steps.index("terraform-validate") < steps.index("terraform-plan"), steps
    validate = text.split("- id: terraform-validate", 1)[1].split("\n  - id:", 1)[0]
    assert "name: hashicorp/terraform:${_TF_VERSION}" in validate
    assert "args: [-chdir=terraform, validate, -no-color]" in validate
