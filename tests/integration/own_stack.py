"""A stack of a test module's own, for tests that kill and restart its processes.

Such tests never touch the session's ``local_stack``: they start their own on fresh ports, with
only the functions they name, and hand every process they start (or restart) to the session's
last-resort cleanup.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from pharmaseg_dev.stack import lifecycle, processes
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]


def session_conftest(request):
    """tests/integration/conftest.py as pytest loaded it (several conftest.py share the name)."""
    return request.config.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))


def functions_dir(root: Path, *names: str) -> Path:
    """A functions folder holding only ``names`` (links to the repository's folders)."""
    folder = root / "functions"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(REPO / "functions" / name)
    return folder


@contextmanager
def function_settings(settings: dict[str, str]):
    """The environment the stack code hands on to the functions it starts (and restarts)."""
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_own_stack(conftest, layout_factory, root: Path, settings: dict[str, str], *, project: str, **overrides):
    """Start the module's stack; retried on the next block of ports if a process lost its port.

    Other test sessions on this machine take ports from the same range, and one may bind a port
    between the free-port check and an emulator's own bind: that emulator exits while the foreign
    one answers its readiness check. Our own project id keeps the foreign emulator's topics,
    subscriptions and buckets apart from ours; a process of ours that is gone shows the collision.
    ``overrides`` are layout fields, called with the attempt number when callable.
    """
    for attempt in range(3):
        layout = layout_factory(
            root / f"state-{attempt}",
            project=project,
            functions_dir=root / "functions",
            **{name: value(attempt) if callable(value) else value for name, value in overrides.items()},
        )
        with function_settings(settings):
            status = conftest.start_stack(layout)
        time.sleep(2)  # a process that lost its port has exited by now
        if all(lifecycle.status(layout)["running"].values()):
            return layout, status
        conftest.stop_stack(layout, status)
    pytest.fail(f"the {project} stack did not stay up on three blocks of ports: {lifecycle.status(layout)['running']}")


def stop_own_stack(conftest, layout, status) -> None:
    conftest.stop_stack(layout, lifecycle.status(layout))  # what runs now, restarted processes included
    conftest.stop_stack(layout, status)  # forgets the pids of the processes replaced during the tests


def kill_function(layout, name: str) -> None:
    """kill -9 the function's whole process group (functions-framework and its worker)."""
    pid = lifecycle.read_state(layout)["functions"][name]["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: not processes.group_members(pid) and not processes.alive(pid), timeout=10, interval=0.05)


def restart_missing(conftest, layout, settings: dict[str, str]) -> float:
    """``stack up`` on the running stack: starts what is not running (a function), keeps the rest."""
    t0 = time.monotonic()
    with function_settings(settings):
        lifecycle.up(layout, log=lambda *_: None)
    track(conftest, layout)
    return time.monotonic() - t0


def track(conftest, layout) -> None:
    """Let the session's last-resort cleanup know the processes started here."""
    state = lifecycle.read_state(layout)
    for record in [*state["processes"].values(), *state["functions"].values()]:
        conftest._live[record["pid"]] = record.get("start_time")
