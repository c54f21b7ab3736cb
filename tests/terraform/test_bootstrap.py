"""scripts/bootstrap_project.sh enables every API Terraform needs before it can plan."""

from __future__ import annotations

import re


def test_bootstrap_enables_the_services_terraform_needs_first(module, repo_root):
    declared = set(re.findall(r'"([a-z]+\.googleapis\.com)"', str(module.locals["bootstrap_services"])))
    assert {"cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com"} <= declared, declared
    script = (repo_root / "scripts" / "bootstrap_project.sh").read_text()
    block = script.split("BOOTSTRAP_SERVICES=(", 1)[1].split(")", 1)[0]
    enabled = set(block.split())
    assert declared <= enabled, f"bootstrap_project.sh does not enable {sorted(declared - enabled)}"
    assert 'gcloud services enable "${BOOTSTRAP_SERVICES[@]}"' in script


def test_terraform_also_records_the_bootstrap_services(module):
    services = str(module.locals["services"])
    assert "local.bootstrap_services" in services, "apis.tf must keep them enabled (never disabled on destroy)"
