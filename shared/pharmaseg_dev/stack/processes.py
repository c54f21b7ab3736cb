"""Start, watch and stop the stack's processes: one process group each, found again by pid.

A record keeps each pid with psutil's create time, because the state file outlives the processes
it names: a pid alone could by then belong to another process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from pharmaseg_dev.stack.layout import HOST, StackError

# psutil's create time is boot time + ticks since boot, and the boot time follows steps of the wall
# clock: a record matches within a second (no pid is reused that fast).
SAME_START_S = 1.0
GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def start_time(pid: int) -> float | None:
    """The process's create time (seconds since the epoch), or None if there is no such process."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def alive(pid: int, started: float | None = None) -> bool:
    """True if ``pid`` runs (zombies count as gone) and, when given, started at ``started``."""
    _reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() in GONE:
            return False
        return started is None or abs(proc.create_time() - started) < SAME_START_S
    except psutil.Error:
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    members = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if proc.info["status"] not in GONE and os.getpgid(proc.pid) == pgid:
                members.append(proc.pid)
    return members


def _reap(pid: int) -> None:
    """Collect our own exited child so that it does not linger as a zombie (others: no effect)."""
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout=0)


def spawn(
    cmd: list[str],
    *,
    stdout: Path,
    stderr: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Start ``cmd`` in a new session (its own process group), logs appended to files."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    with open(stdout, "ab") as out, open(stderr or stdout, "ab") as err:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True
        )
    # Popen's object is dropped: the pid and its start time identify the process from now on.
    proc.returncode = 0  # silence "subprocess still running" ResourceWarning at garbage collection
    return {"pid": proc.pid, "start_time": start_time(proc.pid), "cmd": cmd, "log": str(stdout)}


def stop(pid: int, started: float | None = None, *, timeout: float = 10.0) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL what is left after ``timeout``; True if all gone."""
    if started is not None and not alive(pid, started) and not group_members(pid):
        return True
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise StackError(f"cannot signal process group {pid}: {exc}") from exc
        deadline = time.monotonic() + wait
        while True:
            if not alive(pid) and not group_members(pid):
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    return False


def port_free(port: int, host: str = HOST) -> bool:
    """True if nothing listens on ``host:port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def wait_ready(name: str, record: dict[str, Any], ready: Callable[[], bool], *, timeout: float = 60.0) -> float:
    """Poll ``ready`` until true; fail fast, with the log's tail, if the process dies. Returns seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if ready():
            return time.monotonic() - t0
        if not alive(record["pid"]):
            raise StackError(f"{name} exited during startup; see {record['log']}:\n{tail(Path(record['log']))}")
        time.sleep(0.1)
    raise StackError(f"{name} not ready after {timeout:.0f}s; see {record['log']}")
