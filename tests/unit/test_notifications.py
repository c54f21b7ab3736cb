"""The notification contract (Struct and JSON Schema), the four events, and the publisher's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import msgspec
import pytest

from pharmaseg.notifications import SCHEMA, Notification, Notifier, decode, encode, events, log_event
from pharmaseg.notifications.message import KINDS, BatchFailed
from tests.fake_publisher import FakePublisher

AT = datetime(2030, 1, 8, 6, 0, tzinfo=UTC)
MOVERS = [
    {
        "country": "USA",
        "from_segment": "High-Value Pharma Markets",
        "to_segment": "Stable Moderate Markets",
        "market_share": 0.43,
        "confidence_before": 0.6,
        "confidence_after": 0.2,
    },
    {
        "country": "DEU",
        "from_segment": "High-Value Pharma Markets",
        "to_segment": "Stable Moderate Markets",
        "market_share": 0.1,
        "confidence_before": 0.5,
        "confidence_after": 0.3,
    },
]


def decision_row(**fields):
    """A model_versions row as pipeline.decision_row writes it (the fields the events read)."""
    return {
        "version": "1.1.0",
        "evaluated_at": AT.isoformat(timespec="microseconds"),
        "decision": "held",
        "reason": "2021 data published",
        "policy": "auto",
        "message_id": "m-fresh",
        "production_version": "1.0.0",
        "window": "2012-2021",
        "decision_detail": "held for review: gate failed: market_agreement, key_market_moves; moved: ...",
        "movers": MOVERS,
        "decided_by": "gate",
        "report_uri": "gs://reports/models/1.1.0/report.html",
        **fields,
    }


def drift_doc():
    """The parts of a drift check's report document the event reads (check_drift.service.run)."""
    return {
        "report_id": "msg-7",
        "run_at": AT.isoformat(),
        "model_version": "1.0.0",
        "period": {"start": "2030-01-01T00:00:00+00:00", "end": AT.isoformat()},
        "rows": {"online": 200, "batch": 100, "total": 300},
        "result": {
            "verdict": "drift",
            "reason": "2 of 9 features drifted",
            "drifted_features": ["USD_CAP_avg", "PC_GDP_avg"],
            "prediction_drift": {"drift": True, "jensen_shannon": 0.2},
            "joint": None,
        },
        "retrain": {"requested": True, "decision": "requested (no earlier drift-triggered retrain request)"},
        "report_uri": "gs://reports/drift/2030/01/08/msg-7.html",
    }


def every_kind() -> list[Notification]:
    return [
        events.version_held(decision_row(), failed_checks=["market_agreement", "key_market_moves"]),
        events.production_changed(
            decision_row(decision="manual_promotion", decided_by="ana", message_id="manual-1"), replaced="1.0.0"
        ),
        events.drift_found(drift_doc()),
        events.batch_failed(
            uri="gs://inbox/incoming/a.csv",
            generation=12,
            run_id="r1",
            reason="ServiceUnavailable: 503 BigQuery",
            attempt_started_at=AT,
            failed_at=AT,
        ),
    ]


# -- the contract -----------------------------------------------------------------------------------


def test_every_kind_round_trips_and_is_valid_against_the_published_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    made = every_kind()
    assert [n.kind for n in made] == list(KINDS)
    for notification in made:
        data = encode(notification)
        validator.validate(json.loads(data))
        assert decode(data) == notification


def test_the_schema_is_generated_from_the_struct():
    generated = msgspec.json.schema(Notification)
    assert SCHEMA["properties"] == generated["$defs"]["Notification"]["properties"]
    assert SCHEMA["$schema"].endswith("2020-12/schema") and set(SCHEMA["$defs"]) >= {"VersionHeld", "Link", "Mover"}
    assert SCHEMA["properties"]["details"]["discriminator"]["propertyName"] == "kind"


def test_details_of_another_kind_are_refused_by_the_struct_and_the_schema():
    doc = json.loads(encode(every_kind()[0]))
    doc["kind"] = "drift_found"
    with pytest.raises(msgspec.ValidationError, match="details of kind version_held"):
        msgspec.convert(doc, Notification)
    # the schema cannot tie the two kinds together; it still refuses details of no known shape
    doc["details"] = {"kind": "version_held"}
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)


def test_a_consumer_reads_a_notification_with_fields_it_does_not_know():
    doc = json.loads(encode(every_kind()[2]))
    doc["severity"], doc["details"]["new_field"] = "high", 1
    assert decode(json.dumps(doc).encode()).details.report_id == "msg-7"


def test_an_occurrence_without_a_time_zone_is_refused():
    doc = json.loads(encode(every_kind()[1]))
    doc["occurred_at"] = "2030-01-08T06:00:00"
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        decode(json.dumps(doc).encode())


# -- the four events ------------------------------------------------------------------------------


def test_a_held_version_names_its_movers_its_report_and_the_promote_command():
    held = events.version_held(decision_row(), failed_checks=["market_agreement", "key_market_moves"])
    assert held.key == "version_held:1.1.0:m-fresh"
    assert held.title == "Version 1.1.0 held for review: 2 countries (53.0% of the market) would change segment"
    assert "the gate failed market_agreement, key_market_moves" in held.summary
    assert "production stays 1.0.0" in held.summary and "USA (High-Value Pharma Markets -> Stable" in held.summary
    assert [(m.country, m.market_share) for m in held.details.movers] == [("USA", 0.43), ("DEU", 0.1)]
    (link,) = held.links
    assert (link.uri, link.path) == ("gs://reports/models/1.1.0/report.html", "/reports/models/1.1.0/report.html")
    assert held.command == "pharmaseg registry promote 1.1.0 --reason '...' --by <you>"
    assert held.occurred_at == AT


def test_a_version_held_by_policy_never_says_so():
    held = events.version_held(decision_row(policy="never", movers=[]), failed_checks=[])
    assert "Held because its request said never to promote" in held.summary
    assert held.title == "Version 1.1.0 held for review" and "no country changes segment" in held.summary


def test_production_changed_by_a_person_says_who_and_why_and_how_to_undo():
    row = decision_row(
        version="1.0.0", decision="rollback", decided_by="ana", reason="the USA move was wrong", message_id="manual-2"
    )
    changed = events.production_changed(row, replaced="1.1.0")
    assert changed.title == "Production changed: 1.1.0 -> 1.0.0 (rolled back by ana)"
    assert changed.details.by == "ana" and changed.details.reason == "the USA move was wrong"
    assert changed.details.market_share_moved == pytest.approx(0.53)
    assert changed.key == "production_changed:1.0.0:manual-2"
    assert changed.command == "pharmaseg registry rollback --reason '...' --by <you>"


def test_the_first_production_has_nothing_to_roll_back_to():
    first = events.production_changed(decision_row(decision="promoted", movers=[]), replaced=None)
    assert first.title == "Production changed: none -> 1.1.0 (promoted by the gate)"
    assert first.details.from_version is None and first.command is None and "every country is new" in first.summary
    assert b'"market_share_moved":0.0' in encode(first)  # a float, as the schema says, even with no mover


def test_drift_found_links_its_report_as_the_prediction_function_serves_it():
    found = events.drift_found(drift_doc())
    assert found.key == "drift_found:msg-7"
    assert found.title == "Drift found on model 1.0.0: USD_CAP_avg, PC_GDP_avg (and segment shares)"
    assert found.details.drifted_features == ["USD_CAP_avg", "PC_GDP_avg"] and found.details.prediction_drift
    assert not found.details.joint_drift and found.details.rows == 300 and found.details.retrain_requested
    assert found.links[0].path == "/reports/drift/2030/01/08/msg-7.html"


def test_a_report_the_prediction_function_does_not_serve_gets_no_path():
    (link,) = events.report_link("model report", "gs://reports/elsewhere/report.html")
    assert link.path is None and events.report_link("model report", None) == []


def test_every_failed_attempt_at_a_file_is_the_same_event():
    first, second = (
        events.batch_failed(
            uri="gs://inbox/incoming/a.csv", generation=1, run_id="r1", reason="x", attempt_started_at=at, failed_at=at
        )
        for at in (AT, AT.replace(minute=5))
    )
    assert first.key == second.key == "batch_failed:r1" and isinstance(first.details, BatchFailed)
    assert first.details.attempt_started_at != second.details.attempt_started_at
    assert first.details.object == "gs://inbox/incoming/a.csv" and first.details.run_id == "r1"


# -- the publisher ----------------------------------------------------------------------------------


def notifier(publisher, topic="pharmaseg-notifications"):
    lines, made = [], []

    def make():
        made.append(publisher)
        return publisher

    sent = Notifier(
        "p",
        topic,
        publisher=make,
        log=lambda severity, message, **fields: lines.append({"severity": severity, "message": message, **fields}),
    )
    return sent, lines, made


def test_a_notification_is_logged_then_published_with_its_kind_and_key_as_attributes():
    publisher = FakePublisher()
    sent, lines, made = notifier(publisher)
    held, drift = every_kind()[0], every_kind()[2]
    assert sent.send(held, on_failure="raise") == "message-1"
    assert sent.send(drift, on_failure="raise") == "message-2"
    assert len(made) == 1  # the client is made once, on the first publish
    topic, data, attributes = publisher.published[0]
    assert topic == "projects/p/topics/pharmaseg-notifications" and decode(data) == held
    assert attributes == {"kind": "version_held", "key": held.key}
    assert [(line["severity"], line["event"]) for line in lines] == [
        ("NOTICE", "notification_version_held"),
        ("WARNING", "notification_drift_found"),
    ]
    assert lines[0]["message"] == held.title and lines[0]["details"]["movers"][0]["country"] == "USA"
    assert json.dumps(lines[1]["links"]) and lines[1]["key"] == drift.key


def test_without_a_topic_only_the_log_line_is_written():
    sent, lines, made = notifier(FakePublisher(), topic="")
    assert sent.send(every_kind()[3], on_failure="raise") is None
    assert made == [] and [line["event"] for line in lines] == ["notification_batch_failed"]


def test_a_failed_publish_raises_or_is_logged_as_the_caller_chose():
    error = RuntimeError("pubsub unavailable")
    sent, lines, _ = notifier(FakePublisher(fail=error))
    with pytest.raises(RuntimeError, match="unavailable"):
        sent.send(every_kind()[2], on_failure="raise")
    assert sent.send(every_kind()[0], on_failure="log") is None
    failed = lines[-1]
    assert failed["severity"] == "ERROR" and failed["event"] == "notification_failed"
    assert failed["key"] == every_kind()[0].key and "pubsub unavailable" in failed["error"]


def test_the_log_event_names_are_what_terraform_alerts_on():
    assert [log_event(kind) for kind in KINDS] == [
        "notification_version_held",
        "notification_production_changed",
        "notification_drift_found",
        "notification_batch_failed",
    ]


def test_the_default_log_line_is_one_json_line_on_stdout(capsys):
    Notifier("p", None).send(every_kind()[1], on_failure="log")
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["event"] == "notification_production_changed" and doc["details"]["by"] == "ana"
