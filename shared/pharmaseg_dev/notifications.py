"""``pharmaseg notifications``: print what waits in the local stack's notifications subscription.

The stack keeps a pull subscription on the notifications topic (``stack.provision.PULLED``); this
command pulls every waiting message, drops the duplicates that at-least-once delivery brings (the
same ``key``), prints one block per notification in the order the events happened, and
acknowledges them all, unless ``--keep`` hands them straight back for the next reader.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import msgspec

from pharmaseg.notifications import Notification, decode
from pharmaseg_dev.stack.layout import StackLayout

PULL_BATCH = 100
WIDTH = 100


@dataclass
class Pulled:
    """What one pass over the subscription found: notifications (first of each key), and the rest."""

    notifications: list[Notification] = field(default_factory=list)
    duplicates: int = 0
    unreadable: list[str] = field(default_factory=list)  # why each message that is no notification is not
    ack_ids: list[str] = field(default_factory=list)


def pull(subscriber: Any, subscription: str, *, keep: bool) -> Pulled:
    """Every message waiting in ``subscription``; acknowledged, or handed back at once with ``keep``.

    Messages pulled are not offered again while their ack deadline runs, so pulling until an
    empty answer reads each waiting message once. Duplicates and unreadable messages are
    acknowledged too: none of them would read better the next time.
    """
    pulled, seen = Pulled(), set()
    while True:
        response = subscriber.pull(
            subscription=subscription, max_messages=PULL_BATCH, return_immediately=True, timeout=30
        )
        if not response.received_messages:
            break
        for received in response.received_messages:
            pulled.ack_ids.append(received.ack_id)
            try:
                notification = decode(received.message.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                pulled.unreadable.append(f"message {received.message.message_id}: {exc}")
                continue
            if notification.key in seen:
                pulled.duplicates += 1
            else:
                seen.add(notification.key)
                pulled.notifications.append(notification)
    for start in range(0, len(pulled.ack_ids), PULL_BATCH):
        ack_ids = pulled.ack_ids[start : start + PULL_BATCH]
        if keep:
            subscriber.modify_ack_deadline(subscription=subscription, ack_ids=ack_ids, ack_deadline_seconds=0)
        else:
            subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)
    pulled.notifications.sort(key=lambda n: n.occurred_at)
    return pulled


def block(notification: Notification, predict_url: str | None = None) -> str:
    """One notification as a person reads it: when and what, the summary, its links, its command."""
    when = notification.occurred_at.astimezone(UTC)
    lines = [f"[{when:%Y-%m-%d %H:%M:%S}Z] {notification.kind}: {notification.title}"]
    lines += textwrap.wrap(
        notification.summary, WIDTH, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    for link in notification.links:
        lines.append(f"  {link.label}: {link.uri}")
        if link.path and predict_url:
            lines.append(f"  {' ' * len(link.label)}  {predict_url.rstrip('/')}{link.path}")
    if notification.command:
        lines.append(f"  next: {notification.command}")
    lines.append(f"  key: {notification.key}")
    return "\n".join(lines)


def cmd_notifications(args: argparse.Namespace) -> int:
    from pharmaseg.gcp import clients as gcp
    from pharmaseg_dev.stack import lifecycle
    from pharmaseg_dev.stack.provision import pull_subscription

    layout = StackLayout.from_env()
    status = lifecycle.status(layout)
    if not status["up"]:
        print("pharmaseg notifications: no local stack running: `pharmaseg stack up` first", file=sys.stderr)
        return 1
    subscriber = gcp.subscriber_client(endpoint=status["env"]["PUBSUB_EMULATOR_HOST"])
    subscription = subscriber.subscription_path(status["project"], pull_subscription("notifications"))
    pulled = pull(subscriber, subscription, keep=args.keep)
    for problem in pulled.unreadable:
        print(f"pharmaseg notifications: not a notification: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(msgspec.to_builtins(pulled.notifications), indent=2))
        return 0
    if not pulled.notifications:
        print("no notifications waiting")
        return 0
    predict_url = status["functions"].get("predict")
    print("\n\n".join(block(n, predict_url) for n in pulled.notifications))
    dropped = f"; {pulled.duplicates} duplicate(s) dropped" if pulled.duplicates else ""
    done = "kept for the next reader" if args.keep else "acknowledged"
    print(f"\n{len(pulled.notifications)} notification(s), {done}{dropped}")
    return 0


def add_command(subparsers: Any) -> None:
    """Add ``notifications`` to the main CLI's subparsers."""
    command = subparsers.add_parser(
        "notifications",
        help="print (and acknowledge) the notifications waiting on the local stack",
        description="Pull every notification waiting in the local stack's subscription on the notifications "
        "topic and print one block per event (duplicates dropped). Env: as `pharmaseg stack`.",
    )
    command.add_argument("--json", action="store_true", help="print a JSON list of the notifications")
    command.add_argument("--keep", action="store_true", help="do not acknowledge: the next reader gets them again")
    command.set_defaults(handler=cmd_notifications)
