"""The retrain request contract: defaults, every refusal with a clear reason, Pub/Sub decoding."""

from __future__ import annotations

import jsonschema
import pytest

from pharmaseg.retrain.message import (
    SCHEMA,
    MalformedRequestError,
    decode_request,
    encode_request,
    parse_request,
)

DEFAULTS = {"default_data_uri": "gs://sources/oecd.csv", "default_window": "2011-2020", "default_bootstrap": 50}


def parse(doc):
    return parse_request(doc, **DEFAULTS)


def test_minimal_request_takes_defaults():
    request = parse({"reason": "yearly refresh"})
    assert request.data_uri == "gs://sources/oecd.csv"
    assert request.window == "2011-2020"
    assert (request.k, request.seed, request.n_init, request.n_bootstrap) == (3, 42, 10, 50)
    assert request.promotion == "auto"


def test_full_request_round_trips():
    doc = {
        "reason": "2021 data",
        "data_uri": "gs://b/x.csv",
        "window": "2012-2021",
        "k": 4,
        "seed": 7,
        "n_init": 50,
        "n_bootstrap": 10,
        "promotion": "force",
        "requested_by": "drift-check",
    }
    assert parse(doc).to_dict() == doc
    assert decode_request(encode_request(**doc), **DEFAULTS).to_dict() == doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "reason is required"),
        ({"reason": "  "}, "reason is required"),
        ({"reason": "x" * 501}, "longer than 500"),
        ({"reason": "r", "promtion": "force"}, "unknown field(s) promtion"),
        ({"reason": "r", "promotion": "always"}, "promotion must be one of auto, never, force"),
        ({"reason": "r", "k": 1}, "k must be between 2 and 10"),
        ({"reason": "r", "k": "3"}, "k must be an integer"),
        ({"reason": "r", "k": True}, "k must be an integer"),
        ({"reason": "r", "n_init": 0}, "n_init must be between 1 and 100"),
        ({"reason": "r", "n_bootstrap": 0}, "n_bootstrap must be between 1 and 500"),
        ({"reason": "r", "seed": -1}, "seed must be between"),
        ({"reason": "r", "window": "2011"}, "not of the form START-END"),
        ({"reason": "r", "window": "2020-2020"}, "at least two years"),
        ({"reason": "r", "data_uri": "/tmp/x.csv"}, "must be gs://BUCKET/OBJECT"),
        ({"reason": "r", "data_uri": "gs://bucket-only"}, "must be gs://BUCKET/OBJECT"),
        ({"reason": "r", "data_uri": 3}, "data_uri must be a string"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(doc, message):
    with pytest.raises(MalformedRequestError, match=None) as info:
        parse(doc)
    assert message in str(info.value)


def test_no_data_uri_and_no_default_is_refused():
    with pytest.raises(MalformedRequestError, match="no default is configured"):
        parse_request({"reason": "r"}, default_data_uri=None, default_window="2011-2020")


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"not json", "not JSON"), (b"\xff\xfe", "not JSON"), (b"x" * 20000, "at most")],
)
def test_undecodable_data_is_refused(data, message):
    with pytest.raises(MalformedRequestError, match=message):
        decode_request(data, **DEFAULTS)


@pytest.mark.parametrize(
    "doc",
    [
        {"reason": "r"},
        {"reason": "r", "window": "2012-2021", "k": 3, "promotion": "never", "data_uri": "gs://b/o"},
        {"reason": "r", "promtion": "force"},
        {"reason": "r", "k": 1},
        {"reason": "r", "promotion": "always"},
        {"reason": "r", "window": "2011"},
        {"reason": "r", "data_uri": "/tmp/x"},
        {"reason": ""},
        {},
    ],
)
def test_published_json_schema_agrees_with_the_parser(doc):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    schema_ok = jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)
    try:
        parse(doc)
        parser_ok = True
    except MalformedRequestError:
        parser_ok = False
    assert schema_ok == parser_ok


def test_every_bad_field_is_named_in_one_error():
    with pytest.raises(MalformedRequestError) as info:
        parse({"reason": "r", "k": 1, "promotion": "always", "window": "2020-2020", "promtion": "x"})
    assert [field for field, _ in info.value.problems] == ["promtion", "k", "promotion", "window"]
    for part in ("unknown field(s) promtion", "k must be between 2 and 10", "promotion must be one of", "two years"):
        assert part in str(info.value)


def test_the_schema_is_generated_from_the_message_struct():
    import msgspec

    from pharmaseg.retrain.message import RetrainMessage

    generated = msgspec.json.schema(RetrainMessage)["$defs"]["RetrainMessage"]
    assert SCHEMA["properties"] == generated["properties"] and SCHEMA["required"] == ["reason"]
    assert SCHEMA["additionalProperties"] is False
