"""Emulator fixtures for the integration tests, started with the project's own stack code.

Session-scoped servers start once (on a free block of loopback ports, state under pytest's tmp,
never a developer's running stack) and always stop at the end, even after failures:

- ``gcs_server``: fake-gcs-server only (``.url``, ``.root``, ``.client()``).
- ``pubsub_server``: the Pub/Sub emulator only (``.host``, ``.publisher()``, ``.subscriber()``).
- ``bigquery_server``: bqemulator only (``.url``, ``.client()``).
- ``local_stack``: the full stack with whatever ``functions/<name>/main.py`` exist; the status dict.

``gcs``, ``pubsub``, ``bigquery`` and ``local_stack_env`` are their function-scoped twins that also
set the emulator variables (STORAGE_EMULATOR_HOST, ...) for the test only. Every test under
tests/integration is marked ``integration``.
"""

from __future__ import annotations

import atexit
import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pharmaseg.gcp import clients as gcp
from pharmaseg_dev.stack import emulators, lifecycle, processes
from pharmaseg_dev.stack.layout import PORT_BLOCK, StackError, StackLayout

# Far from the developer default (9400); each xdist worker gets its own range.
TEST_PORT_START = 21000

_live: dict[int, int | None] = {}  # pid -> start time of every process the fixtures started
_state_dirs: list[Path] = []  # every stack's state dir: the access audit reads their access.jsonl
AUDIT_MODULE = "test_access_audit.py"
AUDIT_REPORT = Path(__file__).resolve().parents[2] / "build" / "access-audit.txt"
AUDIT_REPORT.unlink(missing_ok=True)  # loaded once per run, before any test: the report shown is this run's


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
    # The access audit checks the calls of every test before it: it runs last.
    items.sort(key=lambda item: Path(item.fspath).name == AUDIT_MODULE)


def pytest_terminal_summary(terminalreporter):
    if AUDIT_REPORT.exists():
        terminalreporter.section("access audit")
        terminalreporter.write(AUDIT_REPORT.read_text())


def recorded_access_logs() -> list[Path]:
    """The access.jsonl of every stack this session started (kept after the stack stopped)."""
    return [d / "access.jsonl" for d in _state_dirs if (d / "access.jsonl").exists()]


def _last_resort_cleanup() -> None:
    for pid, started in list(_live.items()):
        processes.stop(pid, started, timeout=3)


atexit.register(_last_resort_cleanup)


def _raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that fixture teardown still stops the emulators."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)


def free_port_base(start: int | None = None) -> int:
    """The first block of PORT_BLOCK loopback ports, all free, at or above ``start``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base = start or TEST_PORT_START + 400 * int(worker[2:] or 0)
    while base < 65000:
        if all(processes.port_free(p) for p in range(base, base + PORT_BLOCK)):
            return base
        base += PORT_BLOCK
    raise RuntimeError("no free block of loopback ports")


_next_base = {"port": None}


def make_layout(state_dir: Path, **overrides: Any) -> StackLayout:
    """A layout on fresh ports (successive calls never share a block) with its state in ``state_dir``."""
    start = _next_base["port"]
    base = free_port_base(start)
    _state_dirs.append(Path(state_dir))
    _next_base["port"] = base + PORT_BLOCK
    defaults = StackLayout()
    return StackLayout(
        project=overrides.pop("project", "pharmaseg-test"),
        port_base=base,
        state_dir=state_dir,
        emulators_venv=overrides.pop("emulators_venv", defaults.emulators_venv),
        functions_dir=overrides.pop("functions_dir", defaults.functions_dir),
        **overrides,
    )


def _start(layout: StackLayout, names: tuple[str, ...], *, events: bool = False) -> dict[str, dict[str, Any]]:
    try:
        emulators.check_tools(layout, names)
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)
    _raise_on_sigterm()
    records = emulators.start(layout, names, events=events)
    _live.update({r["pid"]: r.get("start_time") for r in records.values()})
    return records


def _stop(records: dict[str, dict[str, Any]]) -> None:
    result = emulators.stop(records)
    for r in records.values():
        _live.pop(r["pid"], None)
    assert all(result.values()), f"emulator processes left running: {result}"


@dataclass
class GcsServer:
    url: str
    root: Path
    project: str
    pid: int

    def client(self):
        """A google.cloud.storage.Client on this server, with AnonymousCredentials."""
        return gcp.storage_client(self.project, endpoint=self.url)


@dataclass
class PubsubServer:
    host: str  # PUBSUB_EMULATOR_HOST form, host:port
    url: str
    project: str
    pid: int

    def publisher(self):
        return gcp.publisher_client(endpoint=self.host)

    def subscriber(self):
        return gcp.subscriber_client(endpoint=self.host)


@dataclass
class BigqueryServer:
    url: str
    project: str
    pid: int

    def client(self):
        """A google.cloud.bigquery.Client on this server, with AnonymousCredentials."""
        return gcp.bigquery_client(self.project, endpoint=self.url)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> GcsServer:
    layout = make_layout(tmp_path_factory.mktemp("gcs"))
    records = _start(layout, ("storage",))
    try:
        yield GcsServer(layout.url("storage"), layout.gcs_root, layout.project, records["storage"]["pid"])
    finally:
        _stop(records)


@pytest.fixture(scope="session")
def pubsub_server(tmp_path_factory) -> PubsubServer:
    layout = make_layout(tmp_path_factory.mktemp("pubsub"))
    records = _start(layout, ("pubsub",))
    try:
        yield PubsubServer(layout.pubsub_host, layout.url("pubsub"), layout.project, records["pubsub"]["pid"])
    finally:
        _stop(records)


@pytest.fixture(scope="session")
def bigquery_server(tmp_path_factory) -> BigqueryServer:
    layout = make_layout(tmp_path_factory.mktemp("bigquery"))
    records = _start(layout, ("bigquery",))
    try:
        yield BigqueryServer(layout.url("bigquery"), layout.project, records["bigquery"]["pid"])
    finally:
        _stop(records)


@pytest.fixture
def gcs(gcs_server, monkeypatch) -> GcsServer:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", gcs_server.project)
    return gcs_server


@pytest.fixture
def pubsub(pubsub_server, monkeypatch) -> PubsubServer:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_server.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", pubsub_server.project)
    return pubsub_server


@pytest.fixture
def bigquery(bigquery_server, monkeypatch) -> BigqueryServer:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_server.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", bigquery_server.project)
    return bigquery_server


def start_stack(layout: StackLayout) -> dict[str, Any]:
    """``stack up`` on ``layout`` for tests: a clear failure if the emulators are missing."""
    try:
        emulators.check_tools(layout)
    except StackError as exc:
        pytest.fail(str(exc), pytrace=False)
    _raise_on_sigterm()
    try:
        status = lifecycle.up(layout, log=lambda *_: None)
    finally:
        state = lifecycle.read_state(layout) or {}
        for record in [*state.get("processes", {}).values(), *state.get("functions", {}).values()]:
            _live[record["pid"]] = record.get("start_time")
    return status


def stop_stack(layout: StackLayout, status: dict[str, Any]) -> None:
    lifecycle.down(layout, log=lambda *_: None)
    for pid in status["pids"].values():
        _live.pop(pid, None)


@pytest.fixture(scope="session")
def local_stack_layout(tmp_path_factory) -> StackLayout:
    return make_layout(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def local_stack(local_stack_layout) -> dict[str, Any]:
    """The full stack (emulators, resources, log router, existing functions): its status dict.

    Its functions re-check model aliases every second (instead of 30 s), so tests see a
    promotion served promptly without waiting out the production TTL.
    """
    previous = os.environ.get("PHARMASEG_ALIAS_TTL_SECONDS")
    os.environ["PHARMASEG_ALIAS_TTL_SECONDS"] = "1"
    try:
        status = start_stack(local_stack_layout)
    finally:
        if previous is None:
            os.environ.pop("PHARMASEG_ALIAS_TTL_SECONDS")
        else:
            os.environ["PHARMASEG_ALIAS_TTL_SECONDS"] = previous
    if status["function_errors"]:
        warnings.warn(f"functions that failed to start: {status['function_errors']}", stacklevel=1)
    try:
        yield status
    finally:
        stop_stack(local_stack_layout, status)


@pytest.fixture
def local_stack_env(local_stack, monkeypatch) -> dict[str, Any]:
    """``local_stack`` with its emulator variables set for this test."""
    for name, value in local_stack["env"].items():
        monkeypatch.setenv(name, value)
    return local_stack


@pytest.fixture(scope="session")
def stack_layout_factory():
    """``make_layout(state_dir, **overrides)``: a StackLayout on a block of ports no other fixture uses."""
    return make_layout
