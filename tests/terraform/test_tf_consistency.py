"""Terraform against resources.json, config.py SETTINGS, the functions' code and requirements."""

from __future__ import annotations

import json

from tfcheck.consistency import (
    check_entry_point_wiring,
    check_function_env,
    check_sources_of_truth,
    entry_point_findings,
    load_config,
    load_spec,
    requirements_findings,
)
from tfcheck.loader import unquote


def _lines(findings) -> str:
    return "\n".join(str(f) for f in findings)


def test_resources_and_schemas_come_from_resources_json(module, repo_root):
    findings = check_sources_of_truth(module, repo_root)
    assert not findings, _lines(findings)


def test_terraform_creates_what_the_local_stack_creates(module, repo_root):
    """Same roles as pharmaseg.gcp.resources, which the local stack provisions from."""
    from pharmaseg.gcp import resources as cloud_resources

    spec = load_spec(repo_root)
    assert list(spec["buckets"]) == cloud_resources.bucket_roles()
    assert list(spec["topics"]) == cloud_resources.topic_roles()
    assert list(spec["tables"]) == cloud_resources.table_roles()
    assert spec["dataset"] == cloud_resources.dataset_name()
    assert set(spec["functions"]) == set(cloud_resources.functions())


def test_function_env_and_setting_variables_are_generated_from_config(module, repo_root):
    findings = check_function_env(module, load_config(repo_root))
    assert not findings, _lines(findings)


def test_entry_points_are_wired_from_resources_json(module):
    findings = check_entry_point_wiring(module)
    assert not findings, _lines(findings)


def test_entry_points_exist_in_main_py(repo_root):
    findings, missing = entry_point_findings(repo_root)
    assert not findings, _lines(findings)
    assert not missing, f"declared in resources.json without a functions/<name>/main.py: {', '.join(missing)}"


def test_requirements_are_pinned_and_complete(repo_root):
    findings, missing = requirements_findings(repo_root)
    assert not findings, _lines(findings)
    assert not missing, f"declared in resources.json without a functions/<name>/requirements.txt: {', '.join(missing)}"


def test_predict_is_private_by_default(module):
    assert module.variables["allow_unauthenticated"].body["default"] is False
    public = module.resources[("google_cloud_run_v2_service_iam_member", "predict_public")]
    assert public.body["count"] == "${var.allow_unauthenticated ? 1 : 0}"
    for (rtype, name), block in module.resources.items():
        if (rtype, name) == ("google_cloud_run_v2_service_iam_member", "predict_public"):
            continue
        assert "allUsers" not in str(block.body) and "allAuthenticatedUsers" not in str(block.body), f"{rtype}.{name}"


def test_functions_scale_to_zero_by_default(module):
    sizing = module.variables["function_settings"].body
    assert "min_instance_count = optional(number, 0)" in str(sizing["type"]).replace("'", "")
    for fn, settings in sizing["default"].items():
        assert settings.get("min_instance_count", 0) == 0, fn


def test_event_triggers_retry_and_filter_the_inbox(module):
    fn = module.resources[("google_cloudfunctions2_function", "this")].body
    trigger = fn["dynamic"][0]['"event_trigger"']["content"][0]
    assert trigger["retry_policy"] == '"RETRY_POLICY_RETRY"'
    filters = trigger["dynamic"][0]['"event_filters"']
    assert filters["content"][0]["attribute"] == '"bucket"'
    assert "event_trigger.value.bucket" in filters["for_each"]
    event_types = module.locals["event_types"]
    assert event_types["storage_finalize"] == '"google.cloud.storage.object.v1.finalized"'
    assert event_types["pubsub"] == '"google.cloud.pubsub.topic.v1.messagePublished"'


def test_every_trigger_kind_of_resources_json_is_handled(module, repo_root):
    kinds = {f["trigger"] for f in load_spec(repo_root)["functions"].values()}
    assert kinds <= {"http", *module.locals["event_types"]}, kinds


def test_predictions_sink_feeds_the_predictions_log_table(module, repo_root):
    spec = load_spec(repo_root)
    # A sink names its table after the log: run.googleapis.com/stdout -> run_googleapis_com_stdout.
    assert spec["tables"]["predictions_log"]["table"] == "run_googleapis_com_stdout"
    sink = module.resources[("google_logging_project_sink", "predictions")].body
    assert sink["bigquery_options"][0]["use_partitioned_tables"] is True
    assert sink["filter"] == "${local.prediction_log_filter}"
    log_filter = module.locals["prediction_log_filter"]
    assert 'jsonPayload.event=\\"prediction\\"' in log_filter
    assert "run.googleapis.com%2Fstdout" in log_filter
    assert 'local.function_names[\\"predict\\"]' in log_filter or "local.function_names" in log_filter
    writer = module.resources[("google_bigquery_dataset_iam_member", "sink_writer")].body
    assert writer["member"] == "${google_logging_project_sink.predictions.writer_identity}"
    assert writer["role"] == '"roles/bigquery.dataEditor"'


def test_drift_warning_metric_and_alerts(module):
    metric = module.resources[("google_logging_metric", "drift_warnings")].body
    assert 'jsonPayload.event=\\"drift_detected\\"' in metric["filter"] and "severity=WARNING" in metric["filter"]
    alerts = {name for (t, name) in module.resources if t == "google_monitoring_alert_policy"}
    assert {"drift", "function_errors"} <= alerts
    assert ("google_monitoring_dashboard", "this") in module.resources


def test_every_notification_has_a_log_match_alert_on_the_line_its_function_writes(module, repo_root):
    """One policy per kind of pharmaseg.notifications, matching log_event(kind) in the function that
    publishes it, which is also granted the notifications topic."""
    from pharmaseg.notifications import log_event
    from pharmaseg.notifications.message import KINDS

    alerts = module.locals["notification_alerts"]
    assert list(alerts) == list(KINDS)
    policy = module.resources[("google_monitoring_alert_policy", "notifications")].body
    assert policy["for_each"] == "${local.notification_alerts}"
    (condition,) = policy["conditions"]
    assert 'jsonPayload.event=\\"notification_${each.key}\\"' in condition["condition_matched_log"][0]["filter"]
    assert all(log_event(kind) == f"notification_{kind}" for kind in KINDS)
    grants = json.loads((repo_root / "terraform" / "function_access.json").read_text())["grants"]
    publishers = {
        g["function"] for g in grants if (g["on"], g["role"]) == ("topic:notifications", "roles/pubsub.publisher")
    }
    assert {unquote(a["function"]) for a in alerts.values()} <= publishers


def test_log_match_policies_have_what_google_requires(module):
    """A log-match condition must be its policy's only condition, and the policy needs a
    notification_rate_limit (provider docs of google_monitoring_alert_policy, alert_strategy)."""
    log_match = [
        (address, block.body)
        for address, block in module.resources.items()
        if address[0] == "google_monitoring_alert_policy"
        and any("condition_matched_log" in c for c in block.body["conditions"])
    ]
    assert log_match
    for address, body in log_match:
        assert len(body["conditions"]) == 1, address
        (strategy,) = body["alert_strategy"]
        assert strategy["notification_rate_limit"][0]["period"], address
