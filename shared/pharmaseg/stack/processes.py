"""Start, watch and stop the stack's processes: one process group each, found again by pid."""

from __future__ import annotations

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

from pharmaseg.stack.layout import HOST, StackError


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces; everything after its closing paren is split.
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a pid from a reused one)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None = None) -> bool:
    """True if ``pid`` runs (zombies count as gone) and, when given, started at ``started``."""
    _reap(pid)
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


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


def stop(pid: int, started: int | None = None, *, timeout: float = 10.0) -> bool:
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
        while time.monotonic() < deadline:
            _reap(pid)
            if not group_members(pid) and not alive(pid):
                return True
            time.sleep(0.05)
    _reap(pid)
    return not group_members(pid) and not alive(pid)


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
