"""Each checker catches a deliberate break in a copy of terraform/."""

from __future__ import annotations

import pytest
from tfcheck import (
    check_conventions,
    check_references,
    check_schema,
    load_module,
    run_checkov,
    terraform_fmt_check,
)
from tfcheck.consistency import check_function_env, check_sources_of_truth, load_config


def _messages(findings) -> str:
    return "\n".join(str(f) for f in findings)


def test_the_unbroken_copy_is_clean(broken, schema):
    copy, _ = broken
    module = load_module(copy)
    assert not check_schema(module, schema) and not check_references(module, schema)


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "storage.tf",
            '  storage_class               = "STANDARD"\n',
            '  storage_class               = "STANDARD"\n  bogus_argument = 1\n',
            "unknown argument 'bogus_argument'",
        ),
        ("functions.tf", "storage_source {", "storage_sauce {", "unknown argument 'storage_sauce'"),
        ("functions.tf", "  location    = var.region\n", "", "missing required argument 'location'"),
        (
            "functions.tf",
            "      event_type            = local.event_types[event_trigger.value.trigger]\n",
            "",
            "missing required argument 'event_type'",
        ),
        (
            "monitoring.tf",
            'resource "google_logging_metric" "drift_verdicts"',
            'resource "google_logging_metricz" "drift_verdicts"',
            "does not exist in the google provider schema",
        ),
        (
            "storage.tf",
            '    action {\n      type = "Delete"',
            '    actions {\n      type = "Delete"',
            "unknown argument 'actions'",
        ),
    ],
    ids=[
        "unknown-argument",
        "unknown-nested-block",
        "missing-required",
        "missing-required-nested",
        "unknown-type",
        "unknown-block-in-block",
    ],
)
def test_schema_check_catches(broken, schema, file, old, new, expected):
    _, edit = broken
    findings = check_schema(load_module(edit(file, old, new)), schema)
    assert expected in _messages(findings)


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("storage.tf", "var.noncurrent_version_days", "var.does_not_exist", "undeclared variable var.does_not_exist"),
        ("functions.tf", "local.function_env[each.key]", "local.nope[each.key]", "undeclared local value local.nope"),
        (
            "functions.tf",
            "google_service_account.trigger.email",
            "google_service_account.ghost.email",
            "undeclared resource google_service_account.ghost",
        ),
        (
            "functions.tf",
            "google_service_account.trigger.email",
            "google_service_account.trigger.emial",
            "has no attribute 'emial'",
        ),
        (
            "iam.tf",
            "data.google_storage_project_service_account.gcs.email_address",
            "data.google_storage_project_service_account.other.email_address",
            "undeclared data source data.google_storage_project_service_account.other",
        ),
    ],
    ids=["variable", "local", "resource", "attribute", "data-source"],
)
def test_reference_check_catches(broken, schema, file, old, new, expected):
    _, edit = broken
    findings = check_references(load_module(edit(file, old, new)), schema)
    assert expected in _messages(findings)


def test_conventions_check_catches_an_undescribed_variable(broken):
    _, edit = broken
    copy = edit("variables.tf", '  description = "Extra labels added to every resource that supports labels."\n', "")
    assert "var.labels: missing description" in _messages(check_conventions(load_module(copy)))


def test_fmt_check_catches_misformatting(broken):
    _, edit = broken
    copy = edit(
        "storage.tf",
        "  force_destroy               = !var.deletion_protection",
        "  force_destroy =       !var.deletion_protection",
    )
    ok, listing = terraform_fmt_check(copy)
    assert not ok and "storage.tf" in listing


def test_checkov_catches_a_public_bucket(broken, checkov_bin):
    _, edit = broken
    copy = edit("storage.tf", 'public_access_prevention    = "enforced"', 'public_access_prevention    = "inherited"')
    copy = edit("storage.tf", "uniform_bucket_level_access = true", "uniform_bucket_level_access = false")
    report = run_checkov(copy, checkov_bin)
    failed = {c["check_id"] for c in report.failed}
    assert {"CKV_GCP_29", "CKV_GCP_114"} <= failed, failed


def test_consistency_catches_a_hand_edited_settings_file(broken, repo_root):
    _, edit = broken
    line = "        PHARMASEG_BATCH_LEASE_SECONDS         = tostring(var.batch_lease_seconds)\n"
    copy = edit("settings.tf", line, "")
    findings = check_function_env(load_module(copy), load_config(repo_root))
    assert "settings.tf" in _messages(findings) and "stale" in _messages(findings)


def test_consistency_catches_a_hand_written_function_env(broken, repo_root):
    copy, edit = broken
    (copy / "settings.tf").unlink()
    copy = edit("locals.tf", "  labels = merge(", "  function_env = {}\n\n  labels = merge(")
    findings = check_function_env(load_module(copy), load_config(repo_root))
    assert "local.function_env: must be the one generated in settings.tf" in _messages(findings)


def test_consistency_catches_functions_without_the_client_library_environment(broken, repo_root):
    """The local stack runs every function with resources.json's runtime_environment: so must Cloud Run."""
    _, edit = broken
    whole = "merge(local.function_env[each.key], local.runtime_environment)"
    copy = edit("functions.tf", whole, "local.function_env[each.key]")
    findings = check_function_env(load_module(copy), load_config(repo_root))
    assert f"service_config.environment_variables must be {whole}" in _messages(findings)


def test_consistency_catches_a_copied_schema(broken, repo_root):
    _, edit = broken
    copy = edit(
        "bigquery.tf",
        'schema              = file("${local.resources_dir}/schemas/${each.key}.json")',
        'schema              = jsonencode([{ name = "x", type = "STRING" }])',
    )
    findings = check_sources_of_truth(load_module(copy), repo_root)
    assert "schema must be file(" in _messages(findings)


def test_consistency_catches_a_hardcoded_extra_bucket(broken, repo_root):
    copy, _ = broken
    (copy / "extra.tf").write_text(
        'resource "google_storage_bucket" "extra" {\n  name     = "x"\n  location = "EU"\n}\n'
    )
    findings = check_sources_of_truth(load_module(copy), repo_root)
    assert "expected exactly one google_storage_bucket" in _messages(findings)
