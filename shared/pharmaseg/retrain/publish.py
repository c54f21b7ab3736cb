"""Publish a retrain request to the retrain topic (demo, tests, the drift check, people)."""

from __future__ import annotations

from typing import Any

from pharmaseg.retrain.message import encode_request, parse_request


def publish_request(
    project: str, topic: str, *, publisher=None, attributes: dict[str, str] | None = None, **fields: Any
) -> str:
    """Validate ``fields`` as a request, publish it, and return the Pub/Sub message id.

    Validation here uses the same parser as the function, with no defaults filled in, so a bad
    request fails at the publisher instead of in the function's logs.
    """
    fields = {k: v for k, v in fields.items() if v is not None}
    parse_request(
        fields,
        default_data_uri=fields.get("data_uri", "gs://default/data.csv"),
        default_window=fields.get("window", "2011-2020"),
    )
    if publisher is None:
        from pharmaseg.gcp import clients as gcp

        publisher = gcp.publisher_client()
    future = publisher.publish(publisher.topic_path(project, topic), encode_request(**fields), **(attributes or {}))
    return future.result(timeout=30)
