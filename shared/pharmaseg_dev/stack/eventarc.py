"""The local stand-in for Eventarc: Pub/Sub pushes in, CloudEvents in binary content mode out.

In production Eventarc delivers every trigger's events to the function's Cloud Run service as an
HTTP POST whose context attributes are ``ce-*`` headers and whose body is the event data
(https://cloud.google.com/eventarc/docs/cloudevents):

- a Pub/Sub trigger: ``ce-type: google.cloud.pubsub.topic.v1.messagePublished``, ``ce-source:
  //pubsub.googleapis.com/projects/P/topics/T``, ``ce-id`` the message id, ``ce-time`` its publish
  time, body ``{"message": {...}, "subscription": ...}``;
- a Cloud Storage trigger: ``ce-type: google.cloud.storage.object.v1.finalized``, ``ce-source:
  //storage.googleapis.com/projects/_/buckets/B``, ``ce-subject: objects/NAME``, the ``bucket``
  extension, body the object resource; only the trigger's bucket, only finalizes.

Locally, each trigger is a push subscription of the Pub/Sub emulator whose endpoint is this relay
at ``/<function>/pubsub/<topic>`` or ``/<function>/storage/<bucket>``; fake-gcs-server publishes
every bucket's notifications on one topic, and the relay drops what the trigger's filters would
not match, as Eventarc does. The function's answer becomes the push's answer, so a failed event is
redelivered (and dead-lettered) as with ``RETRY_POLICY_RETRY``.

Run by ``pharmaseg stack up`` as ``python -m pharmaseg_dev.stack.eventarc --port P --project P
--function NAME=URL ...``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import signal
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pharmaseg_dev.stack.layout import HOST

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_DATASCHEMA = (
    "https://googleapis.github.io/google-cloudevents/jsonschema/google/events/cloud/storage/v1/StorageObjectData.json"
)
# As long as the push subscription's ack deadline: Eventarc waits for the function's timeout.
DELIVERY_TIMEOUT_S = 600


class NotDeliverable(ValueError):
    """The push body is not a Pub/Sub message the trigger can turn into an event."""


@dataclass(frozen=True)
class Event:
    """A CloudEvent in binary content mode: the ``ce-*`` headers and the body."""

    headers: dict[str, str]
    body: bytes


def _message(push: Any) -> dict[str, Any]:
    if not isinstance(push, dict) or not isinstance(push.get("message"), dict):
        raise NotDeliverable("push body has no message")
    message = push["message"]
    if not (message.get("messageId") or message.get("message_id")):
        raise NotDeliverable("message has no messageId")
    return message


def pubsub_event(push: Any, *, project: str, topic: str) -> Event:
    """Eventarc's messagePublished event for one pushed message."""
    message = _message(push)
    message_id = str(message.get("messageId") or message.get("message_id"))
    publish_time = message.get("publishTime") or message.get("publish_time")
    data = {
        "message": {
            "data": message.get("data", ""),
            "attributes": message.get("attributes") or {},
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": push.get("subscription", ""),
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-type": PUBSUB_PUBLISHED,
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "ce-id": message_id,
        "ce-time": publish_time or "",
        "Content-Type": "application/json; charset=utf-8",
    }
    return Event(headers, json.dumps(data).encode())


def storage_event(push: Any, *, bucket: str) -> Event | None:
    """Eventarc's finalized event for a GCS notification, or None where the trigger's filters drop it.

    Eventarc's Cloud Storage trigger matches one event type and one bucket: a delete, a metadata
    update or another bucket's object never reaches the function.
    """
    message = _message(push)
    attributes = message.get("attributes") or {}
    if attributes.get("eventType") != "OBJECT_FINALIZE" or attributes.get("bucketId") != bucket:
        return None
    try:
        resource = json.loads(base64.b64decode(message.get("data") or "", validate=True))
    except (binascii.Error, ValueError) as exc:
        raise NotDeliverable(f"notification data is not an object resource: {exc}") from None
    if not isinstance(resource, dict) or resource.get("bucket") != bucket or not resource.get("name"):
        raise NotDeliverable("notification data is not this bucket's object resource")
    message_id = str(message.get("messageId") or message.get("message_id"))
    headers = {
        "ce-specversion": "1.0",
        "ce-type": STORAGE_FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{resource['name']}",
        "ce-id": message_id,
        "ce-time": resource.get("updated") or resource.get("timeCreated") or message.get("publishTime") or "",
        "ce-dataschema": STORAGE_DATASCHEMA,
        "ce-bucket": bucket,
        "Content-Type": "application/json; charset=utf-8",
    }
    return Event(headers, json.dumps(resource).encode())


def deliver(event: Event, url: str, *, timeout: float = DELIVERY_TIMEOUT_S) -> int:
    """POST the event to the function's root path; the HTTP status it answered (599: unreachable)."""
    request = urllib.request.Request(url.rstrip("/") + "/", data=event.body, headers=event.headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 599


def make_handler(project: str, functions: dict[str, str], log=print):
    """The request handler of a relay delivering to ``functions`` (name -> URL)."""

    class Relay(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] not in functions or parts[1] not in ("pubsub", "storage"):
                return self._answer(404, f"no trigger at {self.path}")
            function, kind, name = parts
            try:
                push = json.loads(body)
                event = (
                    pubsub_event(push, project=project, topic=name)
                    if kind == "pubsub"
                    else storage_event(push, bucket=name)
                )
            except (ValueError, NotDeliverable) as exc:
                # Eventarc never forwards what it cannot read; acknowledging keeps it from looping.
                log(json.dumps({"severity": "ERROR", "message": f"{self.path}: dropped: {exc}"}))
                return self._answer(204)
            if event is None:
                return self._answer(204)
            status = deliver(event, functions[function])
            log(
                json.dumps(
                    {"severity": "INFO", "trigger": self.path, "ce-id": event.headers["ce-id"], "status": status}
                )
            )
            self._answer(204 if 200 <= status < 300 else 500, "" if status < 300 else f"function answered {status}")

        def _answer(self, status: int, text: str = "") -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:  # one JSON line per delivery instead
            return

    return Relay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pharmaseg_dev.stack.eventarc", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--function", action="append", default=[], metavar="NAME=URL")
    args = parser.parse_args(argv)
    functions = dict(item.split("=", 1) for item in args.function)
    server = ThreadingHTTPServer((HOST, args.port), make_handler(args.project, functions, log=_log))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    _log(json.dumps({"severity": "INFO", "message": f"relay on {HOST}:{args.port} for {', '.join(functions)}"}))
    server.serve_forever()
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
