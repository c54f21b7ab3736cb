import base64
import json

import pytest

from pharmaseg.gcp.pubsub import MalformedMessageError, unwrap


def test_pubsub_message_is_unwrapped_from_the_cloudevent_data():
    data = {"message": {"data": base64.b64encode(b'{"reason": "r"}').decode(), "messageId": "42", "attributes": {}}}
    message = unwrap(data)
    assert message.message_id == "42"
    assert json.loads(message.data) == {"reason": "r"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "data.message is missing"),
        (None, "data.message is missing"),
        ({"message": {"data": "!!!", "messageId": "1"}}, "not valid base64"),
        ({"message": {"data": ""}}, "no messageId"),
    ],
)
def test_bad_envelopes_are_refused(data, message):
    with pytest.raises(MalformedMessageError, match=message):
        unwrap(data)


def test_event_id_stands_in_for_a_missing_message_id():
    assert unwrap({"message": {"data": ""}}, "event-1").message_id == "event-1"
