"""The local Eventarc relay: what it builds from a push, and that functions-framework reads it as in production."""

from __future__ import annotations

import base64
import json

import pytest
from functions_framework import create_app

from pharmaseg_dev.stack import eventarc

RECEIVER = """
import json
import functions_framework

@functions_framework.cloud_event
def receive(cloud_event):
    seen = {k: cloud_event.get(k) for k in ("type", "source", "subject", "id", "time", "bucket")}
    with open(OUT, "a") as out:
        out.write(json.dumps({**seen, "data": cloud_event.data}) + "\\n")
"""


def notification(bucket="inbox", name="incoming/a.csv", event_type="OBJECT_FINALIZE"):
    resource = {"bucket": bucket, "name": name, "generation": "1701", "size": "12", "updated": "2026-12-02T05:00:00Z"}
    return {
        "message": {
            "data": base64.b64encode(json.dumps(resource).encode()).decode(),
            "attributes": {
                "eventType": event_type,
                "bucketId": bucket,
                "objectId": name,
                "payloadFormat": "JSON_API_V1",
            },
            "messageId": "42",
            "publishTime": "2026-12-02T05:00:01Z",
        },
        "subscription": "projects/p/subscriptions/s",
    }


class Received:
    """What the receiving function wrote, one event a line."""

    def __init__(self, path):
        self.path = path

    def __iter__(self):
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        return iter([json.loads(line) for line in lines])


@pytest.fixture
def receiver(tmp_path):
    """A functions-framework CloudEvent function, served through its own test client."""
    out = tmp_path / "events.jsonl"
    source = tmp_path / "main.py"
    source.write_text(f"OUT = {str(out)!r}\n" + RECEIVER)
    return create_app("receive", str(source), "cloudevent").test_client(), Received(out)


def post(client, event: eventarc.Event):
    return client.post("/", data=event.body, headers=event.headers)


def test_a_finalize_in_the_triggers_bucket_arrives_as_eventarcs_storage_event(receiver):
    client, seen = receiver
    event = eventarc.storage_event(notification(), bucket="inbox")
    assert post(client, event).status_code == 200
    (got,) = seen
    assert got["type"] == "google.cloud.storage.object.v1.finalized"
    assert got["source"] == "//storage.googleapis.com/projects/_/buckets/inbox"
    assert got["subject"] == "objects/incoming/a.csv" and got["bucket"] == "inbox"
    assert got["id"] == "42" and got["time"].startswith("2026-12-02T05:00:00")
    assert got["data"]["name"] == "incoming/a.csv" and got["data"]["generation"] == "1701"


@pytest.mark.parametrize("push", [notification(bucket="reports"), notification(event_type="OBJECT_DELETE")])
def test_what_the_triggers_filters_do_not_match_is_dropped(push):
    assert eventarc.storage_event(push, bucket="inbox") is None


def test_a_pubsub_message_arrives_as_eventarcs_message_published_event(receiver):
    client, seen = receiver
    push = {
        "message": {"data": base64.b64encode(b'{"reason": "r"}').decode(), "messageId": "7", "publishTime": "t0"},
        "subscription": "projects/p/subscriptions/s",
    }
    assert post(client, eventarc.pubsub_event(push, project="p", topic="pharmaseg-retrain")).status_code == 200
    (got,) = seen
    assert got["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert got["source"] == "//pubsub.googleapis.com/projects/p/topics/pharmaseg-retrain"
    assert got["id"] == "7"
    assert base64.b64decode(got["data"]["message"]["data"]) == b'{"reason": "r"}'
    assert got["data"]["message"]["messageId"] == got["data"]["message"]["message_id"] == "7"
    assert got["data"]["subscription"] == "projects/p/subscriptions/s"


@pytest.mark.parametrize(
    "push, why",
    [
        ({"subscription": "s"}, "no message"),
        ({"message": {"data": ""}}, "no messageId"),
        (
            {
                "message": {
                    "messageId": "1",
                    "data": "not base64!",
                    "attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "inbox"},
                }
            },
            "not an object resource",
        ),
    ],
)
def test_an_unreadable_push_is_refused_with_the_reason(push, why):
    with pytest.raises(eventarc.NotDeliverable, match=why):
        eventarc.storage_event(push, bucket="inbox")
