"""``up``, ``down`` and ``status`` of the whole local stack, remembered in ``<state>/stack.json``."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from typing import Any

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import emulators, functions, processes, provision, recorder
from pharmaseg_dev.stack.layout import RECORDED_SERVICES, StackError, StackLayout

STATE_VERSION = 1
# The stack's own processes beside the emulators: the log sink, the recording proxy, Eventarc's relay.
HELPERS = ("logrouter", "recorder", "eventarc")


def read_state(layout: StackLayout) -> dict[str, Any] | None:
    try:
        return json.loads(layout.state_file.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise StackError(f"unreadable state file {layout.state_file}: {exc}; remove it after checking pids") from exc


def write_state(layout: StackLayout, state: dict[str, Any]) -> None:
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(layout.state_file)


def _alive(record: dict[str, Any] | None) -> bool:
    return bool(record) and processes.alive(record["pid"], record.get("start_time"))


def _emulators_alive(state: dict[str, Any]) -> bool:
    return all(_alive(state["processes"].get(name)) for name in emulators.EMULATORS)


def _start_helper(layout: StackLayout, module: str, *args: str, ready=None) -> dict[str, Any]:
    """``python -m pharmaseg_dev.stack.<module> --project P ARGS``, logged to ``logs/<module>``;
    waits for ``ready`` when given."""
    cmd = [str(layout.python_bin("python")), "-m", f"pharmaseg_dev.stack.{module}", "--project", layout.project, *args]
    record = processes.spawn(cmd, stdout=layout.log_path(module), cwd=layout.repo_root)
    if ready is not None:
        processes.wait_ready(module, record, ready, timeout=30)
    return record


def _start_logrouter(layout: StackLayout) -> dict[str, Any]:
    """The Cloud Logging sink's stand-in (see stack.logrouter)."""
    return _start_helper(
        layout, "logrouter", "--state-dir", str(layout.state_dir), "--endpoint", layout.url("bigquery")
    )


def _start_recorder(layout: StackLayout) -> dict[str, Any]:
    """The recording proxy every function reaches the emulators through (see stack.recorder)."""
    ports = [layout.recorder_port(f, s) for f in cloud_resources.functions() for s in RECORDED_SERVICES]
    return _start_helper(
        layout,
        "recorder",
        *("--state-dir", str(layout.state_dir), "--port-base", str(layout.port_base)),
        ready=lambda: all(processes.port_open(p) for p in ports),
    )


def _start_relay(layout: StackLayout) -> dict[str, Any]:
    """The Eventarc stand-in between the push subscriptions and the functions (see stack.eventarc)."""
    targets = [f"--function={name}={layout.url(name)}" for name in cloud_resources.functions()]
    return _start_helper(
        layout,
        "eventarc",
        *("--port", str(layout.port("eventarc")), *targets),
        ready=lambda: processes.port_open(layout.port("eventarc")),
    )


def up(layout: StackLayout, *, log=print) -> dict[str, Any]:
    """Start (or complete) the stack and return its status; a running stack is reused."""
    t0 = time.monotonic()
    state = read_state(layout)
    if state is not None and not _emulators_alive(state):
        log("found a stale stack (an emulator is gone): stopping what is left, then starting afresh")
        down(layout, log=log)
        state = None
    if state is None:
        emulators.check_tools(layout)
        wanted = list(functions.discover(layout))
        layout.python_bin("functions-framework")
        emulators.check_ports(layout, [*emulators.EMULATORS, "bigquery_grpc", "eventarc", *wanted])
        _clean_data(layout)
        # The calls of the last stack are kept past `down` for an audit; a new stack records anew.
        (layout.state_dir / recorder.ACCESS_LOG).unlink(missing_ok=True)
        state = {
            "version": STATE_VERSION,
            "project": layout.project,
            "port_base": layout.port_base,
            "state_dir": str(layout.state_dir),
            "started_at": datetime.now(UTC).isoformat(),
            "processes": {},
            "functions": {},
            "function_errors": {},
            "timings": {},
        }
        try:
            started = emulators.start(layout)
            state["processes"].update(started)
            write_state(layout, state)  # from here on, `down` can clean up even if `up` is interrupted
            state["timings"]["emulators_s"] = round(time.monotonic() - t0, 2)
            log(
                f"emulators up in {state['timings']['emulators_s']}s: "
                + ", ".join(f"{n} {r['url']}" for n, r in started.items())
            )
        except BaseException:
            layout.state_file.unlink(missing_ok=True)
            raise
    else:
        log(f"stack already running (state {layout.state_file}): reusing it")
    try:
        _complete(layout, state, log=log)
    except BaseException:
        if not state.get("complete_once"):
            log("startup failed: stopping what was started")
            down(layout, log=lambda *_: None)
        raise
    state["timings"]["up_s"] = round(time.monotonic() - t0, 2)
    state["complete_once"] = True
    write_state(layout, state)
    return status(layout)


def _complete(layout: StackLayout, state: dict[str, Any], *, log) -> None:
    """Provision resources and start whatever is missing: log router, functions, push subscriptions."""
    t = time.monotonic()
    state["buckets"] = provision.create_buckets(layout)
    state["topics"] = provision.create_topics(layout)
    state.update(provision.create_tables(layout))
    state["timings"]["provision_s"] = round(time.monotonic() - t, 2)
    if not _alive(state["processes"].get("logrouter")):
        state["processes"]["logrouter"] = _start_logrouter(layout)
    for name, start in (("recorder", _start_recorder), ("eventarc", _start_relay)):
        if not _alive(state["processes"].get(name)):
            state["processes"][name] = start(layout)
    write_state(layout, state)

    wanted = functions.discover(layout)
    missing = [n for n in wanted if not _alive(state["functions"].get(n))]
    if missing:
        t = time.monotonic()
        started, errors = functions.start(layout, missing)
        state["functions"].update(started)
        for name in started:
            state["function_errors"].pop(name, None)
        state["function_errors"].update(errors)
        for name in errors:
            state["functions"].pop(name, None)
            log(f"function {name} failed to start: {errors[name]}")
        state["timings"]["functions_s"] = round(time.monotonic() - t, 2)
        write_state(layout, state)
    running = [n for n, r in state["functions"].items() if _alive(r)]
    state["subscriptions"] = provision.create_push_subscriptions(layout, running)
    provision.delete_push_subscriptions(layout, [n for n in cloud_resources.functions() if n not in running])


def _clean_data(layout: StackLayout) -> None:
    """Each fresh stack starts empty (BigQuery is in memory; storage and Pub/Sub data follow)."""
    for path in (layout.gcs_root, layout.state_dir / "pubsub"):
        shutil.rmtree(path, ignore_errors=True)
    (layout.state_dir / "logrouter-offsets.json").unlink(missing_ok=True)


def down(layout: StackLayout, *, log=print) -> dict[str, bool]:
    """Stop every process the state names (functions, router, emulators), verify, remove the state."""
    state = read_state(layout)
    if state is None:
        log(f"no stack running (no {layout.state_file})")
        return {}
    records = {**state.get("functions", {}), **state.get("processes", {})}
    # Functions and the router first, so nothing publishes into emulators that are going away.
    order = [*state.get("functions", {}), *reversed(HELPERS), *emulators.EMULATORS]
    stopped = {}
    for name in order:
        if name in records:
            record = records[name]
            stopped[name] = processes.stop(record["pid"], record.get("start_time"))
    left = {n: processes.group_members(records[n]["pid"]) for n in stopped}
    left = {n: pids for n, pids in left.items() if pids}
    if left:
        raise StackError(f"processes still running after SIGKILL: {left}; state kept in {layout.state_file}")
    layout.state_file.unlink(missing_ok=True)
    _clean_data(layout)
    log(f"stopped {', '.join(stopped) or 'nothing'}; logs kept in {layout.logs_dir}")
    return stopped


def status(layout: StackLayout) -> dict[str, Any]:
    """One JSON-able object describing the stack, whether it runs or not."""
    state = read_state(layout) or {}
    procs = state.get("processes", {})
    funcs = state.get("functions") or {n: {"url": layout.url(n)} for n in functions.discover(layout)}
    running = {name: _alive(procs.get(name)) for name in (*emulators.EMULATORS, *HELPERS)}
    running.update({name: _alive(r) if "pid" in r else False for name, r in funcs.items()})
    project = state.get("project", layout.project)
    return {
        "project": project,
        "up": bool(state) and all(running[n] for n in emulators.EMULATORS),
        "running": running,
        "state_dir": str(layout.state_dir),
        "port_base": state.get("port_base", layout.port_base),
        "emulators": {n: layout.url(n) for n in emulators.EMULATORS},
        "eventarc": layout.url("eventarc"),
        "access_log": str(layout.state_dir / recorder.ACCESS_LOG),
        "env": functions.client_env(layout),
        "functions": {n: r["url"] for n, r in funcs.items()},
        "function_errors": state.get("function_errors", {}),
        "buckets": state.get("buckets")
        or {r: cloud_resources.bucket_name(r, project) for r in cloud_resources.bucket_roles()},
        "topics": state.get("topics") or {r: cloud_resources.topic_name(r) for r in cloud_resources.topic_roles()},
        "subscriptions": state.get("subscriptions", {}),
        "dataset": state.get("dataset", cloud_resources.dataset_name()),
        "tables": {
            r: cloud_resources.table_id(project, cloud_resources.dataset_name(), r)
            for r in cloud_resources.table_roles()
        },
        "gcs_root": str(layout.gcs_root),
        "pids": {n: r["pid"] for n, r in {**procs, **funcs}.items() if "pid" in r},
        "logs": {n: r["log"] for n, r in {**procs, **funcs}.items() if "log" in r},
        "timings": state.get("timings", {}),
    }
