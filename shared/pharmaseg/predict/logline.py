"""The prediction log line: one JSON line on stdout per answered country, in Cloud Logging's format.

It is a contract with three readers: the Logging sink (Terraform) that copies the lines into
BigQuery's ``run_googleapis_com_stdout`` table, whose ``jsonPayload`` schema is
``resources/schemas/predictions_log.json``; the local stack's log router, which does the same;
and the drift check's queries, which read ``jsonPayload.features.*``, ``cluster``,
``model_version``, ``input_kind`` and the shadow fields. The Struct below is that schema's ``jsonPayload`` (a test
checks the two agree field by field), encoded by msgspec: a few microseconds, no network call.
"""

from __future__ import annotations

import sys

import msgspec


class LoggedReason(msgspec.Struct):
    feature: str
    share: float | None
    contribution: float


class PredictionLogLine(msgspec.Struct, omit_defaults=True):
    severity: str
    message: str
    time: str
    event: str
    request_id: str
    country: str
    input_kind: str
    features: dict[str, float]  # the features the model scored (for a partial input, those given)
    features_used: list[str]
    cluster: int
    cluster_name: str
    confidence: float
    borderline: bool
    runner_up: str
    reasons: list[LoggedReason]
    model_version: str
    variant: str
    latency_ms: float
    # Shadow scoring: the version under review, the segment it would have answered, and whether
    # that is production's; absent when no version is under review or it could not answer.
    shadow_version: str | None = None
    shadow_cluster_name: str | None = None
    shadow_agrees: bool | None = None


_encoder = msgspec.json.Encoder()


def write(lines: list[PredictionLogLine], stream=None) -> None:
    """Write the lines in one write and one flush: a batch of 100 countries is one system call."""
    out = stream or sys.stdout
    data = b"".join(_encoder.encode(line) + b"\n" for line in lines)
    binary = getattr(out, "buffer", None)
    if binary is None:
        out.write(data.decode())
        out.flush()
    else:
        out.flush()  # keep the order with text already written to the stream
        binary.write(data)
        binary.flush()
