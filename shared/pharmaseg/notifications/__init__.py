"""Notifications: one message on the notifications topic for each event a person should hear about.

- ``message``: the ``Notification`` Struct (kind, title, summary, details, links, key) and its ``SCHEMA``.
- ``events``: the four events (a version held for review, production changed, drift found, a
  batch file that failed), each made from the record its work leaves.
- ``publish``: ``Notifier``, which writes each notification's log line and publishes it.
"""

from pharmaseg.notifications.message import SCHEMA, Notification, decode, encode
from pharmaseg.notifications.publish import Notifier, log_event

__all__ = ["SCHEMA", "Notification", "Notifier", "decode", "encode", "log_event"]
