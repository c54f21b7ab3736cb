"""The batch run's in-place retries: which errors are retried, how often, how long it waits, what it logs."""

from __future__ import annotations

import json
import time

import pytest
import requests
from google.api_core import exceptions

from pharmaseg.score_batch import retries


@pytest.fixture
def sleeps(monkeypatch):
    """Retry's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def flaky(errors):
    """A call that raises each of ``errors`` in turn, then returns how many calls it took."""
    calls = []

    def call():
        calls.append(None)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return len(calls)

    return call


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ServiceUnavailable("503"),
        exceptions.TooManyRequests("429"),
        exceptions.InternalServerError("500"),
        exceptions.BadGateway("502"),
        exceptions.GatewayTimeout("504"),
        exceptions.RetryError("the client's own retries ran out", None),
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        requests.exceptions.ConnectionError("dropped"),
        requests.exceptions.ReadTimeout("read timeout"),
    ],
)
def test_transient_errors_are_retried_in_place(error, sleeps, capsys):
    assert retries.retried(flaky([error, error]), what="bigquery query") == 3
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["event"], e["attempt"], e["message"]) for e in logged] == [
        ("batch_retry", 1, "bigquery query: transient error, retrying"),
        ("batch_retry", 2, "bigquery query: transient error, retrying"),
    ]
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    "error", [exceptions.BadRequest("bad SQL"), exceptions.NotFound("gone"), ValueError("a bug"), KeyError("x")]
)
def test_other_errors_are_raised_at_once(error, sleeps):
    with pytest.raises(type(error)):
        retries.retried(flaky([error]), what="read head")
    assert sleeps == []


def test_a_lasting_outage_gives_up_after_five_attempts_with_its_own_error(sleeps):
    down = [exceptions.ServiceUnavailable(f"try {i}") for i in range(1, 10)]
    call = flaky(down)
    with pytest.raises(exceptions.ServiceUnavailable, match="try 5"):
        retries.retried(call, what="load")
    assert len(sleeps) == retries.ATTEMPTS - 1
    # exponential from 0.5 s, jittered: each sleep is drawn below 0.5, 1, 2, 4 s
    assert all(0 <= s <= bound for s, bound in zip(sleeps, (0.5, 1.0, 2.0, 4.0)))
