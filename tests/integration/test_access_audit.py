"""The access audit over every call the functions made during this session's integration tests.

Collected last (see conftest.py): by then the recording proxy of each stack has written down what
predict, score_batch, retrain and check_drift really called. The audit report is written to
``build/access-audit.txt`` and printed at the end of the run.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import access_audit
from pharmaseg_dev.stack.access_audit import Need
from tests.integration.own_stack import session_conftest


@pytest.fixture(scope="module")
def conftest(request):
    """tests/integration/conftest.py as pytest loaded it: the one that saw every stack start."""
    return session_conftest(request)


@pytest.fixture(scope="module")
def session_calls(local_stack, conftest) -> list[dict]:
    logs = conftest.recorded_access_logs()
    calls = access_audit.read_calls(logs)
    silent = sorted(set(cloud_resources.functions()) - {c["function"] for c in calls})
    assert not silent, f"no recorded call of {silent} in {logs}: run the whole of tests/integration"
    return calls


def test_every_call_of_every_function_is_granted_by_terraform(session_calls, conftest):
    calls = session_calls
    report = access_audit.audit(calls, access_audit.load_grants(), access_audit.load_roles())
    conftest.AUDIT_REPORT.parent.mkdir(exist_ok=True)
    conftest.AUDIT_REPORT.write_text(report.text() + "\n")
    assert report.ok, report.text()
    assert report.calls == len(calls) > 100


def test_removing_a_needed_grant_fails_the_audit_naming_function_and_permission(session_calls, local_stack):
    calls, project = session_calls, local_stack["project"]
    grants = access_audit.load_grants()
    inbox = [g for g in grants if (g.function, g.on) == ("score_batch", "bucket:inbox")]
    assert len(inbox) == 1
    report = access_audit.audit(calls, [g for g in grants if g not in inbox], access_audit.load_roles())
    assert not report.ok
    bucket = cloud_resources.bucket_name("inbox", project)
    assert ("score_batch", Need("storage.objects.create", "bucket", bucket)) in report.missing
    text = report.text()
    assert f"MISSING score_batch: storage.objects.create on bucket {bucket}" in text
    assert "roles/storage.objectCreator" in text  # the smallest role that would cover the upload


def test_reading_where_only_reading_is_granted_is_not_enough_to_write(session_calls):
    """Terraform's old grant (objectViewer on the inbox) would have failed every batch with 403."""
    grants = [
        replace(g, role="roles/storage.objectViewer") if (g.function, g.on) == ("score_batch", "bucket:inbox") else g
        for g in access_audit.load_grants()
    ]
    report = access_audit.audit(session_calls, grants, access_audit.load_roles())
    missing = {need.permission for function, need in report.missing if function == "score_batch"}
    assert {"storage.objects.create", "storage.objects.delete"} <= missing
