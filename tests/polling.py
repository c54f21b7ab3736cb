"""Waiting for something the emulators do asynchronously (push deliveries, log routing, load jobs)."""

import time


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25):
    """Poll ``predicate`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
