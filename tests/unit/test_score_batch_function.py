"""The batch function's handling of events it cannot use: acknowledged (2xx) and logged, never retried."""

import json
from pathlib import Path

import pytest
from functions_framework import create_app

SOURCE = str(Path(__file__).resolve().parents[2] / "functions/score_batch/main.py")


@pytest.fixture(autouse=True)
def configured(monkeypatch):
    """The function's required settings (a function missing them fails at its first event)."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("PHARMASEG_MODELS_BUCKET", "m")


def send(event_type, data):
    client = create_app("score_batch", SOURCE, "cloudevent").test_client()
    headers = {
        "ce-id": "1",
        "ce-source": "//storage.googleapis.com/",
        "ce-type": event_type,
        "ce-specversion": "1.0",
        "ce-time": "2026-11-26T00:00:00Z",
        "Content-Type": "application/json",
    }
    return client.post("/", headers=headers, data=json.dumps(data))


def test_malformed_storage_event_is_acknowledged_and_logged(capfd):
    response = send("google.cloud.storage.object.v1.finalized", {"name": "incoming/x.csv"})  # no bucket
    assert response.status_code == 200
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["event"] == "batch_bad_event" and line["severity"] == "ERROR" for line in lines)


def test_wrong_event_type_is_acknowledged(capfd):
    assert send("google.cloud.pubsub.topic.v1.somethingElse", {}).status_code == 200
    assert "batch_bad_event" in capfd.readouterr().out
