"""``pharmaseg stack up|down|status|logs``: argparse wiring for the main CLI.

``pharmaseg_dev.cli`` calls ``add_commands(subparsers)``; ``python -m pharmaseg_dev.stack`` works too.
Every handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pharmaseg_dev.stack import lifecycle
from pharmaseg_dev.stack.layout import StackError, StackLayout


def _err(message: str) -> None:
    print(f"pharmaseg stack: {message}", file=sys.stderr)


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack (or reuse the running one)."""
    try:
        state = lifecycle.up(StackLayout.from_env(), log=lambda m: print(m, file=sys.stderr))
    except StackError as exc:
        _err(str(exc))
        return 1
    _print_status(state, as_json=args.json)
    return 1 if state["function_errors"] else 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop everything the stack started."""
    try:
        lifecycle.down(StackLayout.from_env(), log=lambda m: print(m, file=sys.stderr))
    except StackError as exc:
        _err(str(exc))
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Describe the stack; exit 0 only when it is up."""
    try:
        state = lifecycle.status(StackLayout.from_env())
    except StackError as exc:
        _err(str(exc))
        return 1
    _print_status(state, as_json=args.json)
    return 0 if state["up"] else 1


def cmd_audit(args: argparse.Namespace) -> int:
    """Check the calls the stack's functions made against Terraform's grants; exit 1 on findings."""
    from pharmaseg_dev.stack import access_audit, recorder

    layout = StackLayout.from_env()
    log = layout.state_dir / recorder.ACCESS_LOG
    if not log.exists():
        _err(f"no calls recorded in {log}: start the stack and use it (`make demo`) first")
        return 1
    return access_audit.main([str(log)])


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the tail of a component's log files."""
    layout = StackLayout.from_env()
    names = (
        [args.component] if args.component else sorted({p.name.split(".")[0] for p in layout.logs_dir.glob("*.log")})
    )
    if not names:
        _err(f"no logs in {layout.logs_dir}")
        return 1
    found = False
    for name in names:
        for stream in ("stdout", "stderr"):
            path = layout.log_path(name, stream)
            if path.exists():
                found = True
                print(f"==> {path} <==")
                print(lifecycle.processes.tail(path, args.lines))
    if not found:
        _err(f"no log for {args.component!r} in {layout.logs_dir}")
        return 1
    return 0


def _push_line(subscription: dict[str, Any]) -> str:
    bucket = f" [{subscription['bucket']}]" if subscription.get("bucket") else ""
    return f"{subscription['topic']}{bucket} -> {subscription['function']}"


def _print_status(state: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, indent=2, sort_keys=True))
        return
    flag = {True: "running", False: "stopped"}
    print(f"project   {state['project']}    stack {'UP' if state['up'] else 'DOWN'}    state {state['state_dir']}")
    rows = [
        (n, url, flag[state["running"].get(n, False)], state["pids"].get(n, ""))
        for n, url in state["emulators"].items()
    ]
    helpers = {
        "logrouter": "-> " + state["tables"]["predictions_log"],
        "recorder": "each function's calls -> access.jsonl",
        "eventarc": state["eventarc"],
    }
    rows += [(n, text, flag[state["running"][n]], state["pids"].get(n, "")) for n, text in helpers.items()]
    rows += [
        (n, url, flag[state["running"].get(n, False)], state["pids"].get(n, ""))
        for n, url in state["functions"].items()
    ]
    rows += [(n, "", f"FAILED: {e}", "") for n, e in state["function_errors"].items()]
    width = max(len(r[1]) for r in rows) if rows else 10
    print(f"\n{'component':<12} {'url':<{width}} {'state':<8} pid")
    for name, url, st, pid in rows:
        print(f"{name:<12} {url:<{width}} {st:<8} {pid}")
    print("\nbuckets   " + ", ".join(f"{r}={b}" for r, b in state["buckets"].items()))
    print("topics    " + ", ".join(f"{r}={t}" for r, t in state["topics"].items()))
    if state["subscriptions"]:
        print("push      " + ", ".join(_push_line(sub) for sub in state["subscriptions"].values()))
    print(f"dataset   {state['dataset']} ({len(state['tables'])} tables)")
    print("\nexport " + " ".join(f"{k}={v}" for k, v in state["env"].items()))


def add_commands(subparsers: Any) -> None:
    """Add ``stack`` (with up, down, status, logs) to an argparse subparsers object."""
    stack = subparsers.add_parser(
        "stack",
        help="local Google Cloud stack (emulators + functions)",
        description="Run the emulators, resources and functions locally. "
        "Env: PHARMASEG_STACK_PORT_BASE, PHARMASEG_STACK_DIR, PHARMASEG_STACK_PROJECT, PHARMASEG_EMULATORS_VENV.",
    )
    sub = stack.add_subparsers(dest="stack_command", metavar="{up,down,status,logs,audit}", required=True)
    p = sub.add_parser("up", help="start the stack (reuses a running one)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(handler=cmd_up)
    p = sub.add_parser("down", help="stop everything the stack started")
    p.set_defaults(handler=cmd_down)
    p = sub.add_parser("status", help="show URLs, resources and what runs")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=cmd_status)
    p = sub.add_parser("audit", help="check every call the functions made against Terraform's grants")
    p.set_defaults(handler=cmd_audit)
    p = sub.add_parser(
        "logs", help="tail a component's log (a function, logrouter, recorder, eventarc, storage, pubsub, bigquery)"
    )
    p.add_argument("component", nargs="?")
    p.add_argument("-n", "--lines", type=int, default=40)
    p.set_defaults(handler=cmd_logs)


def main(argv: list[str] | None = None) -> int:
    """``python -m pharmaseg_dev.stack ...`` without the main CLI."""
    parser = argparse.ArgumentParser(prog="python -m pharmaseg_dev.stack")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stack", *(argv if argv is not None else sys.argv[1:])])
    return args.handler(args)
