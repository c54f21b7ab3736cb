"""Retrying a batch run's calls to GCS and BigQuery in place, with ``google.api_core.retry.Retry``.

The client libraries already retry their own requests; this covers what they leave to the caller:
a BigQuery statement and its result as one call (its answer can be lost after it ran, so it is
sent again: the run protocol is written to be safe to replay), a whole staging pass over a file,
the 5xx a proxy answers while a service restarts. Transient means ``if_transient_error`` (429,
500, 503, dropped connections, auth transport errors) plus 502/504, socket timeouts, refused or
reset connections and a client's own retries running out (``RetryError``). Up to ``ATTEMPTS``
calls with Retry's jittered exponential backoff (sleeps drawn up to 0.5 s, 1 s, 2 s, 4 s); no
time limit of its own, the function's timeout bounds a run. Every retry is logged.

google-api-core is imported on first use, as the clients are: importing ``pharmaseg.score_batch`` for
the scoring alone (tests, ``scripts/bench_batch.py``) does not load it and grpc (about 19 MB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pharmaseg.logs import log

ATTEMPTS = 5
T = TypeVar("T")


def is_transient(exc: Exception) -> bool:
    """Worth another try in place: the same call may well succeed a moment later."""
    import requests
    from google.api_core import exceptions
    from google.api_core.retry import if_transient_error

    also = (
        exceptions.BadGateway,
        exceptions.GatewayTimeout,
        exceptions.RetryError,
        ConnectionError,
        TimeoutError,
        requests.exceptions.Timeout,
    )
    return if_transient_error(exc) or isinstance(exc, also)


def retried(fn: Callable[[], T], *, what: str) -> T:
    """``fn()``, called again on a transient error, at most ``ATTEMPTS`` times in all.

    Retry has no attempt limit of its own (it stops on a time limit), so ``on_error`` counts the
    failures and, at the last one, re-raises it: the caller sees the error itself, as it would
    without retries.
    """
    from google.api_core.retry import Retry

    failures = 0

    def on_error(exc: Exception) -> None:
        nonlocal failures
        failures += 1
        if failures >= ATTEMPTS:
            raise exc
        log(
            "WARNING",
            f"{what}: transient error, retrying",
            event="batch_retry",
            attempt=failures,
            error=repr(exc)[:300],
        )

    retry = Retry(predicate=is_transient, initial=0.5, maximum=4.0, multiplier=2.0, timeout=None, on_error=on_error)
    return retry(fn)()
