"""A recording proxy in front of the emulators: every call a function makes, known by its identity.

The emulators have no IAM, so nothing local refuses a call that the function's service account may
not make in Google Cloud. Each function of the stack is therefore pointed at ports of its own (its
``STORAGE_EMULATOR_HOST``, ``BIGQUERY_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST``), all served by
this process, which forwards the call to the emulator unchanged and appends one JSON line to
``<state>/access.jsonl``: which function, which service, which method on which path or RPC, and
the request fields the access audit needs (a BigQuery job's configuration, a Pub/Sub request's
resource). ``pharmaseg_dev.stack.access_audit`` turns those lines into IAM permissions.

Run by ``pharmaseg stack up`` as ``python -m pharmaseg_dev.stack.recorder --state-dir D --port-base B``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack.layout import HOST, RECORDED_SERVICES, StackLayout

ACCESS_LOG = "access.jsonl"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}
# Streaming RPCs of the Pub/Sub API (every other method is unary).
STREAMING_RPCS = {"/google.pubsub.v1.Subscriber/StreamingPull"}


class AccessLog:
    """Append-only JSON lines, one per call, safe across the proxy's threads."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock, self.path.open("a") as handle:
            handle.write(line)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _job_configuration(body: bytes, content_type: str) -> dict[str, Any] | None:
    """A BigQuery job insert's configuration (plain JSON, or the metadata part of an upload)."""
    text = body.decode("utf-8", errors="replace")
    if "multipart" in content_type:
        start = text.find("{")
        text = text[start : text.find("\n--", start)] if start >= 0 else ""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc.get("configuration") if isinstance(doc, dict) else None


def http_handler(function: str, service: str, upstream: str, access: AccessLog, project: str):
    """Forward to ``upstream`` (http://host:port) and record each call as ``function``'s in ``project``."""
    target = urlsplit(upstream)

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = _read_body(self)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if body or self.command in ("POST", "PUT", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
            try:
                conn.request(self.command, self.path, body=body or None, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status, reason, response_headers = response.status, response.reason, response.getheaders()
            finally:
                conn.close()
            own = f"http://{HOST}:{self.server.server_address[1]}"
            if "json" in (response.getheader("Content-Type") or ""):
                # Media links and self links name the emulator: keep the function on the proxy.
                payload = payload.replace(upstream.encode(), own.encode())
            path, _, query = self.path.partition("?")
            record = {"function": function, "project": project, "service": service, "method": self.command}
            record["path"] = path
            record.update(query=query, status=status)
            if service == "bigquery" and self.command == "POST" and path.endswith("/jobs"):
                record["job"] = _job_configuration(body, self.headers.get("Content-Type", ""))
            access.write(record)
            self.send_response(status, reason)
            for name, value in response_headers:
                if name.lower() in HOP_BY_HOP:
                    continue
                self.send_header(name, value.replace(upstream, own) if name.lower() == "location" else value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # noqa: N815

        def log_message(self, *_: Any) -> None:
            return

    return Proxy


def _pubsub_resource(method: str, request: bytes) -> dict[str, str]:
    """The topic, subscription or snapshot a Pub/Sub request names, decoded with the API's own types."""
    from google.pubsub_v1 import types

    name = method.rsplit("/", 1)[-1]
    message_type = getattr(types, f"{name}Request", None) or (types.Topic if name == "CreateTopic" else None)
    if message_type is None:
        return {}
    try:
        message = message_type.deserialize(request)
    except Exception:  # an undecodable request still gets recorded, without its resource
        return {}
    found = {}
    for field in ("topic", "subscription", "snapshot", "name", "project"):
        value = getattr(message, field, None)
        if isinstance(value, str) and value:
            found[field] = value
    return found


def grpc_server(function: str, port: int, upstream: str, access: AccessLog, project: str):
    """A gRPC server on ``port`` passing every call through to ``upstream`` (host:port), recorded."""
    import grpc

    channel = grpc.insecure_channel(upstream)

    def _metadata(context) -> list[tuple[str, str]]:
        return [
            (k, v)
            for k, v in context.invocation_metadata()
            if not k.startswith(":") and not k.startswith("grpc-") and k != "user-agent"
        ]

    class Passthrough(grpc.GenericRpcHandler):
        def service(self, details):
            method = details.method

            def record(code: str, request: bytes | None) -> None:
                entry = {"function": function, "project": project, "service": "pubsub", "method": "RPC"}
                entry.update(path=method, status=code)
                if request is not None:
                    entry["resource"] = _pubsub_resource(method, request)
                access.write(entry)

            if method in STREAMING_RPCS:

                def stream(requests, context):
                    record("STREAM", None)
                    yield from channel.stream_stream(method)(requests, metadata=_metadata(context))

                return grpc.stream_stream_rpc_method_handler(stream)

            def unary(request: bytes, context):
                try:
                    response = channel.unary_unary(method)(request, metadata=_metadata(context), timeout=600)
                except grpc.RpcError as exc:
                    record(exc.code().name, request)
                    context.abort(exc.code(), exc.details() or "")
                record("OK", request)
                return response

            return grpc.unary_unary_rpc_method_handler(unary)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[Passthrough()])
    server.add_insecure_port(f"{HOST}:{port}")
    return server


def serve(layout: StackLayout, functions: list[str]) -> tuple[list[Any], list[Any]]:
    """Start every listener of ``functions``; returns (HTTP servers, gRPC servers), all running."""
    access = AccessLog(layout.state_dir / ACCESS_LOG)
    http_servers, grpc_servers = [], []
    for function in functions:
        for service in RECORDED_SERVICES:
            port = layout.recorder_port(function, service)
            if service == "pubsub":
                server = grpc_server(function, port, layout.pubsub_host, access, layout.project)
                server.start()
                grpc_servers.append(server)
                continue
            handler = http_handler(function, service, layout.url(service), access, layout.project)
            server = ThreadingHTTPServer((HOST, port), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            http_servers.append(server)
    return http_servers, grpc_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pharmaseg_dev.stack.recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    layout = StackLayout(project=args.project, port_base=args.port_base, state_dir=args.state_dir)
    http_servers, grpc_servers = serve(layout, list(cloud_resources.functions()))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(json.dumps({"severity": "INFO", "message": f"recording into {layout.state_dir / ACCESS_LOG}"}), flush=True)
    stopped.wait()
    for server in http_servers:
        server.shutdown()
    for server in grpc_servers:
        server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
