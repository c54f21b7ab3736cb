#!/usr/bin/env python3
"""Demo: the notifications the demo's events put on the notifications topic, as a person reads them.

``run(status)`` takes the stack's status dict. By now the demo has promoted a first production by
hand, the retrain step has held 1.1.0 for review, and the drift step has (usually) found drift and
asked for a retrain. Each of those published one message on the notifications topic before it
wrote its record, and the local stack's pull subscription kept them:

1. ``pharmaseg notifications --json --keep`` looks at what waits without taking it;
2. ``pharmaseg notifications`` prints one block per event (title, summary, links, the command to
   run next) and acknowledges them;
3. a last line says which of the demo's events were told.

Run alone: ``python scripts/demo_notifications.py`` (uses the running stack).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PHARMASEG = Path(sys.executable).parent / "pharmaseg"


def stack_env(status: dict[str, Any]) -> dict[str, str]:
    """The environment that makes ``pharmaseg notifications`` read this stack, wherever it runs."""
    return {
        **os.environ,
        **status["env"],
        "PHARMASEG_STACK_PORT_BASE": str(status["port_base"]),
        "PHARMASEG_STACK_DIR": status["state_dir"],
        "PHARMASEG_STACK_PROJECT": status["project"],
    }


def told(waiting: list[dict[str, Any]]) -> str:
    """Which of the demo's events the notifications tell of, in one line."""
    held = [n["details"]["version"] for n in waiting if n["kind"] == "version_held"]
    changed = [n["details"]["to_version"] for n in waiting if n["kind"] == "production_changed"]
    drift = [n["details"]["model_version"] for n in waiting if n["kind"] == "drift_found"]
    parts = [
        f"held for review: {', '.join(held) or 'none'}",
        f"production changed to: {', '.join(changed) or 'none'}",
        f"drift found on: {', '.join(drift) or 'none'}",
    ]
    return "; ".join(parts)


def run(status: dict[str, Any]) -> None:
    """Print the waiting notifications, acknowledge them, and say which events they tell of."""
    env = stack_env(status)
    look = subprocess.run(
        [str(PHARMASEG), "notifications", "--json", "--keep"], env=env, capture_output=True, text=True, check=True
    )
    waiting = json.loads(look.stdout)
    print(f"$ pharmaseg notifications   (the subscription {status['topics']['notifications']}-pull)", flush=True)
    subprocess.run([str(PHARMASEG), "notifications"], env=env, check=True)
    print(f"\nthe demo's events, as told: {told(waiting)}")
    print(
        "In Google Cloud the same messages are on the notifications topic for whoever subscribes, and the\n"
        "log-based alert policies send each event to var.notification_channels (email, Slack): docs/monitoring.md."
    )


if __name__ == "__main__":
    from pharmaseg_dev.stack import lifecycle
    from pharmaseg_dev.stack.layout import StackLayout

    stack = lifecycle.status(StackLayout.from_env())
    if not stack["up"]:
        sys.exit("no local stack running: `pharmaseg stack up` first")
    run(stack)
