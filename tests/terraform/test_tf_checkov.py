"""checkov's Terraform policies (CKV_GCP_*, CKV2_GCP_*, ...) on terraform/: zero failures."""

from __future__ import annotations

import re


def test_checkov_reports_no_failed_check(checkov_report):
    assert not checkov_report.parsing_errors, checkov_report.parsing_errors
    assert not checkov_report.failed, checkov_report.describe_failures()


def test_checkov_ran_the_gcp_policies(checkov_report):
    ids = {c["check_id"] for c in checkov_report.passed + checkov_report.skipped}
    assert any(i.startswith("CKV_GCP_") for i in ids), sorted(ids)
    assert len(checkov_report.passed) >= 30


def test_every_skip_is_an_inline_comment_with_a_reason(checkov_report, tf_dir):
    skip = re.compile(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)")
    comments = {}
    for path in tf_dir.glob("*.tf"):
        for match in skip.finditer(path.read_text()):
            comments[match.group(1)] = match.group(2).strip()
    for check in checkov_report.skipped:
        assert check["check_id"] in comments, f"{check['check_id']} skipped without an inline comment"
        assert len(comments[check["check_id"]]) >= 20, f"{check['check_id']}: give a real reason"
