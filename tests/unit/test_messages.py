"""Event data declared as msgspec Structs: every bad field named at once, schemas generated from them."""

from __future__ import annotations

import pytest

from pharmaseg.gcp import events as storage_events
from pharmaseg.gcp import pubsub
from pharmaseg.gcp.events import STORAGE_FINALIZED, EventError, ObjectRef, parse_event


def test_the_object_resource_keeps_what_the_functions_read_and_converts_gcs_strings():
    resource = {"bucket": "b", "name": "n.csv", "generation": "17", "size": "", "contentType": "text/csv", "etag": "x"}
    assert parse_event(STORAGE_FINALIZED, resource) == ObjectRef("b", "n.csv", 17, None, "text/csv")


def test_every_bad_field_of_an_object_resource_is_named():
    with pytest.raises(EventError) as caught:
        parse_event(STORAGE_FINALIZED, {"bucket": 3, "generation": "seventeen"})
    message = str(caught.value)
    assert "bucket:" in message and "name: missing" in message and "generation:" in message


def test_every_bad_field_of_a_pubsub_message_is_named():
    with pytest.raises(pubsub.MalformedMessageError) as caught:
        pubsub.unwrap({"message": {"messageId": "1", "data": "!!", "attributes": ["a"]}})
    assert str(caught.value) == "message.data is not valid base64; message.attributes is not an object"


def test_a_pubsub_message_decodes_its_base64_data_and_takes_either_spelling():
    message = pubsub.unwrap(
        {"message": {"message_id": "7", "data": "aGk=", "publish_time": "t", "attributes": {"a": 1}}}
    )
    assert message == pubsub.PubSubMessage("7", b"hi", {"a": "1"}, "t")


@pytest.mark.parametrize(
    "schema, required",
    [(storage_events.SCHEMA, ["bucket", "generation", "name"]), (pubsub.SCHEMA, ["message"])],
)
def test_the_json_schemas_are_generated_from_the_structs(schema, required):
    (definition,) = [d for d in schema["$defs"].values() if sorted(d.get("required", [])) == required]
    assert definition["type"] == "object"
