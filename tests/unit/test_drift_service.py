"""Service logic without emulators: the trigger message, the period, the cooldown, the row and request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pharmaseg import config
from pharmaseg.check_drift import methods, pointer, retrain, rows, service, trigger
from pharmaseg.config import DriftSettings
from pharmaseg.runtime import Event, accept

NOW = datetime(2030, 1, 8, tzinfo=UTC)


def _settings(**kw):
    base = dict(project="p", dataset="d", models_bucket="m", reports_bucket="r", retrain_topic="t")
    return DriftSettings(**{**base, **kw})


def test_empty_message_uses_the_configured_period():
    request = trigger.parse_message(b"")
    period = trigger.period_for(request, _settings(drift_period_days=7), NOW)
    assert period.end == NOW and period.start == NOW - timedelta(days=7)


def test_message_overrides():
    request = trigger.parse_message(
        b'{"period_start": "2030-01-01T00:00:00Z", "period_end": "2030-01-02", "retrain": "never"}'
    )
    period = trigger.period_for(request, _settings(), NOW)
    assert period.start == datetime(2030, 1, 1, tzinfo=UTC) and period.end == datetime(2030, 1, 2, tzinfo=UTC)
    assert request["retrain"] == "never"
    assert trigger.period_for(trigger.parse_message('{"period_days": 1.5}'), _settings(), NOW).start == NOW - timedelta(
        hours=36
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        b'{"period_days": 0}',
        b'{"period_days": true}',
        b'{"period_start": "yesterday"}',
        b'{"period_end": "2030-01-01"}',
        b'{"period_start": "2030-01-01", "period_days": 3}',
        b'{"retrain": "force"}',
        b'{"perod_days": 3}',
    ],
)
def test_malformed_messages_are_refused(body):
    with pytest.raises(methods.DriftError):
        trigger.parse_message(body)


def test_period_end_must_follow_start():
    request = trigger.parse_message(b'{"period_start": "2030-01-02", "period_end": "2030-01-01"}')
    with pytest.raises(methods.DriftError):
        trigger.period_for(request, _settings(), NOW)


def test_cooldown_logic():
    allowed, why = retrain.cooldown_decision(None, NOW, 168)
    assert allowed and "no earlier" in why
    allowed, why = retrain.cooldown_decision(NOW - timedelta(hours=10), NOW, 168)
    assert not allowed and why.startswith("cooldown") and "2030-01-14" in why
    allowed, _ = retrain.cooldown_decision(NOW - timedelta(hours=169), NOW, 168)
    assert allowed
    assert retrain.cooldown_decision(NOW - timedelta(seconds=1), NOW, 0)[0]


def test_settings_from_env(monkeypatch):
    for name, value in {
        "GOOGLE_CLOUD_PROJECT": "p",
        "PHARMASEG_MODELS_BUCKET": "m",
        "PHARMASEG_REPORTS_BUCKET": "r",
        "PHARMASEG_DRIFT_ALPHA": "0.01",
        "PHARMASEG_DRIFT_CORRECTION": "bh",
        "PHARMASEG_DRIFT_JOINT_MAX_ROWS": "800",
    }.items():
        monkeypatch.setenv(name, value)
    settings = config.load("check_drift")
    policy = methods.DriftPolicy.of(settings)
    assert policy.alpha == 0.01 and policy.correction == "bh" and policy.joint_max_rows == 800
    assert policy.min_rows == 30 and settings.drift_cooldown_hours == 168 and settings.drift_retrain == "auto"
    monkeypatch.setenv("PHARMASEG_DRIFT_RETRAIN", "sometimes")
    monkeypatch.setenv("PHARMASEG_DRIFT_MIN_ROWS", "many")
    with pytest.raises(config.SettingsError) as err:
        config.load("check_drift")
    assert "PHARMASEG_DRIFT_RETRAIN: 'sometimes' is not one of auto, never" in str(err.value)
    assert "PHARMASEG_DRIFT_MIN_ROWS: invalid literal" in str(err.value)


def _doc(verdict="drift"):
    feature = {
        "feature": "USD_CAP_avg",
        "method": "ks",
        "statistic": 0.5,
        "p_value": 1e-5,
        "p_adjusted": 1e-4,
        "wasserstein": 1.1,
        "jensen_shannon": 0.4,
        "psi": 0.9,
        "drift": True,
        "details": {},
    }
    return {
        "report_id": "msg-1",
        "run_at": NOW.isoformat(),
        "model_version": "1.0.0",
        "period": {"start": "2030-01-01T00:00:00+00:00", "end": NOW.isoformat()},
        "rows": {"online": 10, "batch": 30, "total": 40},
        "result": {"verdict": verdict, "reason": "drift in USD_CAP_avg", "features": [feature], "prediction_drift": {}},
        "retrain": {"requested": True},
        "report_uri": "gs://r/drift/x.html",
    }


def test_drift_row_matches_the_table_schema():
    from pharmaseg.gcp import resources as cloud_resources

    row = rows.drift_row(_doc())
    schema = cloud_resources.table_schema("drift_reports")
    assert set(row) == {f["name"] for f in schema}
    feature_fields = {f["name"] for f in next(f for f in schema if f["name"] == "features")["fields"]}
    assert set(row["features"][0]) == feature_fields


def _joint_doc():
    return {
        "test": "joint structure",
        "method": "pca_reconstruction",
        "n": 5000,
        "components": 5,
        "statistic": 0.9,
        "p_value": 1e-6,
        "p_adjusted": 1e-5,
        "drift": True,
        "details": {"sampled_from": 120000, "recent_error_mean": 1.65, "reference_error_mean": 0.75},
    }


def test_the_joint_record_matches_its_schema_and_is_null_when_not_tested():
    from pharmaseg.gcp import resources as cloud_resources

    doc = _doc()
    doc["result"]["joint"] = _joint_doc()
    row = rows.drift_row(doc)
    schema = next(f for f in cloud_resources.table_schema("drift_reports") if f["name"] == "joint")
    assert schema["mode"] == "NULLABLE" and set(row["joint"]) == {f["name"] for f in schema["fields"]}
    assert row["joint"]["sampled_from"] == 120000 and row["joint"]["drift"] is True
    assert rows.drift_row(_doc())["joint"] is None


def test_latest_pointer_names_the_joint_test_and_objects_relative_to_the_bucket():
    doc = _doc()
    doc["result"]["drifted_features"] = ["USD_CAP_avg"]
    doc["result"]["joint"] = _joint_doc()
    doc["report_uri"], doc["json_uri"] = "gs://r/drift/2030/01/08/msg-1.html", "gs://r/drift/2030/01/08/msg-1.json"
    latest = pointer.latest_pointer(doc, "r")
    assert latest["drifted_features"] == ["USD_CAP_avg", "joint structure"]
    assert latest["html_object"] == "drift/2030/01/08/msg-1.html" and latest["json_object"].endswith("msg-1.json")
    assert set(latest) == {
        "report_id", "run_at", "verdict", "reason", "drifted_features", "model_version", "period",
        "report_uri", "json_uri", "html_object", "json_object",
    }  # fmt: skip
    doc["result"]["joint"]["drift"] = False
    assert pointer.latest_pointer(doc, "r")["drifted_features"] == ["USD_CAP_avg"]


def test_retrain_message_follows_the_retrain_contract():
    from pharmaseg.retrain.message import parse_request

    message = retrain.retrain_message(_doc(), "auto")
    assert message["reason"].startswith("drift detected by check msg-1 on model 1.0.0")
    parsed = parse_request(message, default_data_uri="gs://b/x.csv", default_window="2011-2020")
    assert parsed.promotion == "auto"


def test_an_event_of_another_type_is_acknowledged_and_logged(capsys):
    assert accept(service.DriftService(_settings()), Event("google.cloud.storage.object.v1.finalized", {})) is None
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "ERROR" and line["event"] == "drift_check_rejected"
    assert "unexpected event type" in line["message"] and "google.cloud.pubsub" in line["message"]


def test_the_strategy_page_reads_the_pointer_the_check_writes():
    from pharmaseg.predict import page

    assert page.LATEST_DRIFT == pointer.LATEST_OBJECT


def test_conflicting_settings_stop_the_function_when_its_module_loads(monkeypatch):
    """Each setting is valid alone; together they are not, and the revision must not start."""
    from pathlib import Path

    from functions_framework import create_app

    for name, value in {
        "GOOGLE_CLOUD_PROJECT": "p",
        "PHARMASEG_MODELS_BUCKET": "m",
        "PHARMASEG_REPORTS_BUCKET": "r",
        "PHARMASEG_DRIFT_MIN_ROWS": "100",
        "PHARMASEG_DRIFT_JOINT_MAX_ROWS": "50",
    }.items():
        monkeypatch.setenv(name, value)
    source = Path(__file__).resolve().parents[2] / "functions/check_drift/main.py"
    with pytest.raises(methods.DriftError, match=r"joint_max_rows \(50\) must be at least min_rows \(100\)"):
        create_app("check_drift", str(source), "cloudevent")


def test_every_bad_field_of_the_trigger_is_named_in_one_error():
    with pytest.raises(methods.DriftError) as info:
        trigger.parse_message(b'{"period_days": 0, "retrain": "force", "perod": 1}')
    for part in ("unknown field(s) perod", "period_days must be a number", "retrain must be auto or never"):
        assert part in str(info.value)
    assert trigger.SCHEMA["$defs"]["DriftTrigger"]["additionalProperties"] is False


def test_a_monitoring_page_that_cannot_be_rebuilt_is_a_warning_not_a_failed_check(capsys):
    class Unreachable:
        def query(self, sql, job_config=None):
            raise RuntimeError("BigQuery is down")

    checker = service.DriftService(_settings(), bq=Unreachable(), gcs=object(), publisher=object())
    checker._rebuild_monitoring(None, NOW, "msg-1")  # returns: the check goes on to its log line
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["severity"] == "WARNING" and line["event"] == "monitoring_page_failed"
    assert line["report_id"] == "msg-1" and "BigQuery is down" in line["message"]
