"""Order of bring-up and the source of the function grants (tfcheck.ordering).

The module is checked as it is, then each rule is broken on a copy of terraform/ and must fail
with a message naming what is missing.
"""

from __future__ import annotations

import json

import pytest
from tfcheck import load_module
from tfcheck.ordering import check_function_access, check_ordering


def _lines(findings) -> str:
    return "\n".join(str(f) for f in findings)


def test_the_module_is_in_order(module):
    findings = check_ordering(module)
    assert not findings, _lines(findings)


def test_function_grants_come_only_from_function_access_json(module, repo_root):
    findings = check_function_access(module, repo_root)
    assert not findings, _lines(findings)


def test_every_function_grant_of_the_file_reaches_a_resource(module, tf_dir):
    """Each kind of "on" has the resource that iterates it (a new kind would be dropped silently)."""
    kinds = {g["on"].split(":")[0] for g in json.loads((tf_dir / "function_access.json").read_text())["grants"]}
    for_each = {str(b.body.get("for_each")) for b in module.resources.values()}
    for kind in kinds:
        assert f"${{local.function_{kind}_grants}}" in for_each, f"no resource iterates local.function_{kind}_grants"


BUILD_SA_DEPENDS = (
    '  description  = "Identity of the Cloud Build runs that turn the function sources into images."\n\n'
    "  depends_on = [google_project_service.this]\n"
)
BUILD_SA_BARE = '  description  = "Identity of the Cloud Build runs that turn the function sources into images."\n'
METRIC_DEPENDS = (
    "  // After the functions whose logs it counts (see the note above).\n"
    "  depends_on = [google_cloudfunctions2_function.this]\n"
)
USER_METRIC_FILTER = (
    'filter          = "resource.type=\\"cloud_run_revision\\" AND metric.type=\\"logging.googleapis.com/user/'
)
DRIFT_FILTER = (
    'filter          = "resource.type=\\"cloud_run_revision\\" AND metric.type=\\"logging.googleapis.com/user/'
    '${google_logging_metric.drift_warnings.name}\\""'
)


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            [("iam.tf", BUILD_SA_DEPENDS, BUILD_SA_BARE)],
            "google_service_account.build: calls iam.googleapis.com but does not depend on its enablement",
        ),
        (
            [
                (
                    "iam.tf",
                    BUILD_SA_DEPENDS,
                    BUILD_SA_BARE + '\n  depends_on = [google_project_service.this["pubsub.googleapis.com"]]\n',
                )
            ],
            "google_service_account.build: calls iam.googleapis.com but does not depend on its enablement",
        ),
        (
            [
                (
                    "iam.tf",
                    '"serviceAccount:${google_project_service_identity.this["pubsub.googleapis.com"].email}"',
                    '"serviceAccount:service-${var.project_id}@gcp-sa-pubsub.iam.gserviceaccount.com"',
                )
            ],
            "grants to the pubsub.googleapis.com service agent but does not depend on the "
            "google_project_service_identity that creates it",
        ),
        (
            [
                (
                    "functions.tf",
                    "    google_project_service.this,\n    time_sleep.iam_propagation,\n",
                    "    google_project_service.this,\n",
                )
            ],
            "google_cloudfunctions2_function.this: does not wait for IAM propagation",
        ),
        (
            [("iam.tf", "    google_project_iam_member.build,\n", "")],
            "does not come after google_project_iam_member.build",
        ),
        (
            [
                (
                    "monitoring.tf",
                    METRIC_DEPENDS,
                    "",
                )
            ],
            "google_logging_metric.drift_warnings: log-based metric created before the functions",
        ),
        (
            [
                (
                    "monitoring.tf",
                    DRIFT_FILTER,
                    USER_METRIC_FILTER + 'pharmaseg/drift_warnings\\""',
                ),
                (
                    "monitoring.tf",
                    "depends_on = [google_project_service.this, google_logging_metric.drift_warnings, "
                    "time_sleep.log_metrics]",
                    "depends_on = [google_project_service.this]",
                ),
            ],
            "google_monitoring_alert_policy.drift: reads the log-based metric of google_logging_metric.drift_warnings "
            "but does not depend on it",
        ),
        (
            [
                (
                    "monitoring.tf",
                    DRIFT_FILTER,
                    USER_METRIC_FILTER + 'pharmaseg/no_such_metric\\""',
                )
            ],
            "reads log-based metric 'pharmaseg/no_such_metric', which no google_logging_metric defines",
        ),
        (
            [
                (
                    "monitoring.tf",
                    "google_logging_metric.drift_warnings, time_sleep.log_metrics]",
                    "google_logging_metric.drift_warnings]",
                )
            ],
            "google_monitoring_alert_policy.drift: does not wait for google_logging_metric.drift_warnings "
            "to become visible to Monitoring",
        ),
    ],
    ids=[
        "service-account-before-iam-api",
        "service-account-after-another-api-only",
        "grant-to-agent-before-identity",
        "function-without-wait",
        "wait-before-a-grant",
        "metric-before-functions",
        "alert-before-metric",
        "alert-on-unknown-metric",
        "alert-without-metric-wait",
    ],
)
def test_ordering_check_catches(broken, edits, expected):
    _, edit = broken
    for file, old, new in edits:
        copy = edit(file, old, new)
    assert expected in _lines(check_ordering(load_module(copy)))


def test_access_check_catches_a_hardcoded_function_grant(broken, repo_root):
    copy, _ = broken
    (copy / "extra.tf").write_text(
        'resource "google_storage_bucket_iam_member" "extra" {\n'
        '  bucket = google_storage_bucket.this["inbox"].name\n'
        '  role   = "roles/storage.objectAdmin"\n'
        '  member = google_service_account.function["predict"].member\n'
        "}\n"
    )
    findings = check_function_access(load_module(copy), repo_root)
    assert "google_storage_bucket_iam_member.extra: grants to a function's service account without iterating" in _lines(
        findings
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"on": "bucket:models"', '"on": "bucket:modelz"', "no bucket 'modelz' in resources.json"),
        ('"on": "dataset"', '"on": "datasets"', "kind must be one of"),
        ('{"function": "predict",', '{"function": "predikt",', "unknown function 'predikt'"),
    ],
    ids=["unknown-bucket", "unknown-kind", "unknown-function"],
)
def test_access_check_catches_a_bad_entry(broken, repo_root, old, new, expected):
    _, edit = broken
    copy = edit("function_access.json", old, new)
    assert expected in _lines(check_function_access(load_module(copy), repo_root))
