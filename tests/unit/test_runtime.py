"""The functions' one rule: Unprocessable and foreign event types are acknowledged and logged, the rest raises."""

from __future__ import annotations

import json

import pytest
from cloudevents.http import CloudEvent

from pharmaseg.runtime import Clients, Event, Unprocessable, accept, deliver


class Echo:
    event_types = ("t.ok",)
    refused = "echo_refused"

    def __init__(self, outcome=None):
        self.outcome = outcome

    def handle(self, event: Event):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return event


def last_log(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_cloud_event_is_reduced_to_what_services_use():
    attributes = {"type": "t.ok", "source": "//s", "id": "7", "time": "2026-01-01T00:00:00Z", "subject": "objects/a"}
    event = deliver(Echo(), CloudEvent(attributes, {"k": 1}))
    assert event == Event("t.ok", {"k": 1}, id="7", time="2026-01-01T00:00:00Z", source="//s", subject="objects/a")


def test_unprocessable_is_logged_under_its_own_name_and_acknowledged(capsys):
    assert accept(Echo(Unprocessable("bad field", log_event="echo_bad", message_id="m")), Event("t.ok")) is None
    line = last_log(capsys)
    assert (line["severity"], line["event"], line["message"], line["message_id"]) == (
        "ERROR",
        "echo_bad",
        "bad field",
        "m",
    )


def test_unprocessable_without_a_name_takes_the_service_s(capsys):
    assert accept(Echo(Unprocessable("stale")), Event("t.ok")) is None
    assert last_log(capsys)["event"] == "echo_refused"


def test_another_event_type_is_acknowledged_naming_both_types(capsys):
    assert accept(Echo(), Event("t.other")) is None
    line = last_log(capsys)
    assert line["event"] == "echo_refused" and line["event_type"] == "t.other"
    assert line["message"] == "unexpected event type 't.other'; expected t.ok"


def test_any_other_failure_propagates_so_the_event_is_redelivered():
    with pytest.raises(ConnectionError):
        accept(Echo(ConnectionError("bigquery down")), Event("t.ok"))


def test_clients_are_created_on_first_use_only(monkeypatch):
    made = []
    monkeypatch.setattr("pharmaseg.gcp.clients.storage_client", lambda project: made.append(project) or "storage")
    clients = Clients("p", bigquery="given")
    assert made == [] and clients.bigquery == "given"
    assert clients.storage == "storage" and clients.storage == "storage" and made == ["p"]
