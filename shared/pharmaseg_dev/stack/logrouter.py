"""The local stand-in for the Cloud Logging sink: prediction log lines -> BigQuery, by load jobs.

In production a log sink copies the predict function's structured stdout lines into the
``predictions_log`` table (``run_googleapis_com_stdout``). Locally this process tails every
``<state>/logs/<service>.stdout.log``, keeps the JSON lines whose ``event`` is ``"prediction"``,
wraps each in the log-entry shape the sink writes, and appends them with a newline-delimited
JSON load job every ``interval`` seconds. Offsets (by inode) are saved after each successful
load, so a restart neither loses nor repeats lines.

Run by ``pharmaseg stack up`` as
``python -m pharmaseg_dev.stack.logrouter --state-dir D --project P --endpoint http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pharmaseg.gcp import bigquery as bq
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.logs import log

ROLE = "predictions_log"
SUFFIX = ".stdout.log"
# Keys Cloud Logging lifts out of a structured line instead of keeping them in jsonPayload.
SPECIAL_PREFIX = "logging.googleapis.com/"
LIFTED = {"severity", "time", "timestamp", "timestampSeconds", "timestampNanos", "httpRequest"}


def _timestamp(line: dict[str, Any], now: datetime) -> str:
    value = line.get("timestamp") or line.get("time")
    if isinstance(value, str) and value:
        return value
    if "timestampSeconds" in line:
        seconds = float(line["timestampSeconds"]) + float(line.get("timestampNanos", 0)) / 1e9
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    return now.isoformat()


def project_onto(value: Any, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Keep only the keys the RECORD schema declares (recursively); a real sink would add columns."""
    out = {}
    for field in fields:
        name = field["name"]
        if name not in value or value[name] is None:
            continue
        item = value[name]
        if field["type"] in ("RECORD", "STRUCT"):
            if field.get("mode") == "REPEATED":
                out[name] = [project_onto(v, field["fields"]) for v in item if isinstance(v, dict)]
            elif isinstance(item, dict):
                out[name] = project_onto(item, field["fields"])
        else:
            out[name] = item
    return out


def to_log_entry(
    line: dict[str, Any], *, service: str, project: str, insert_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """One structured stdout line -> the row the Cloud Logging sink writes (predictions_log schema)."""
    now = now or datetime.now(UTC)
    payload = {k: v for k, v in line.items() if k not in LIFTED and not k.startswith(SPECIAL_PREFIX)}
    schema = {f["name"]: f for f in cloud_resources.table_schema(ROLE)}
    return {
        "timestamp": _timestamp(line, now),
        "severity": str(line.get("severity", "DEFAULT")).upper(),
        "logName": f"projects/{project}/logs/run.googleapis.com%2Fstdout",
        "insertId": line.get(f"{SPECIAL_PREFIX}insertId") or insert_id,
        "jsonPayload": project_onto(payload, schema["jsonPayload"]["fields"]),
        "resource": {
            "type": "cloud_run_revision",
            "labels": {
                "service_name": service,
                "revision_name": f"{service}-local",
                "configuration_name": service,
                "location": "local",
                "project_id": project,
            },
        },
    }


def parse_prediction(raw: str) -> dict[str, Any] | None:
    """The line's JSON object if it is a prediction event, else None (plain text, other events)."""
    raw = raw.strip()
    if not raw.startswith("{"):
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    return line if isinstance(line, dict) and line.get("event") == "prediction" else None


class Router:
    """Tails ``*.stdout.log`` under ``logs_dir`` and loads prediction lines into BigQuery."""

    def __init__(
        self, logs_dir: Path, project: str, *, offsets_file: Path, endpoint: str | None = None, client: Any = None
    ):
        self.logs_dir = logs_dir
        self.endpoint = endpoint
        self.project = project
        self.offsets_file = offsets_file
        self.client = client
        self.table_id = cloud_resources.table_id(project, cloud_resources.dataset_name(), ROLE)
        self.offsets: dict[str, dict[str, int]] = {}
        if offsets_file.exists():
            self.offsets = json.loads(offsets_file.read_text())
        self.loaded = 0

    def _collect(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
        rows, new_offsets = [], {}
        now = datetime.now(UTC)
        for path in sorted(self.logs_dir.glob(f"*{SUFFIX}")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            known = self.offsets.get(path.name, {})
            start = known.get("offset", 0) if known.get("inode") == stat.st_ino else 0
            if stat.st_size < start:  # truncated in place
                start = 0
            if stat.st_size == start:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(stat.st_size - start)
            end = chunk.rfind(b"\n") + 1  # only whole lines; a partial last line waits
            service = path.name[: -len(SUFFIX)]
            position = start
            for raw in chunk[:end].split(b"\n")[:-1] if end else []:
                line = parse_prediction(raw.decode("utf-8", errors="replace"))
                if line is not None:
                    insert_id = hashlib.sha1(f"{path.name}:{stat.st_ino}:{position}".encode()).hexdigest()[:20]
                    rows.append(to_log_entry(line, service=service, project=self.project, insert_id=insert_id, now=now))
                position += len(raw) + 1
            new_offsets[path.name] = {"inode": stat.st_ino, "offset": start + end}
        return rows, new_offsets

    def _load(self, rows: list[dict[str, Any]]) -> None:
        if self.client is None:
            from pharmaseg.gcp import clients as gcp

            self.client = gcp.bigquery_client(self.project, endpoint=self.endpoint)
        bq.load_ndjson(self.client, self.table_id, rows, ROLE, timeout=60)

    def tick(self) -> int:
        """One pass: load what is new; returns rows loaded. Offsets move only after a successful load."""
        rows, new_offsets = self._collect()
        if rows:
            self._load(rows)
            self.loaded += len(rows)
        if new_offsets:
            self.offsets.update(new_offsets)
            tmp = self.offsets_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.offsets))
            tmp.replace(self.offsets_file)
        return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pharmaseg_dev.stack.logrouter", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--endpoint", required=True, help="BigQuery emulator URL (http://127.0.0.1:P)")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    logs_dir = args.state_dir / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    router = Router(
        logs_dir, args.project, offsets_file=args.state_dir / "logrouter-offsets.json", endpoint=args.endpoint
    )
    stopping = False

    def _stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log("INFO", f"log router started, table {router.table_id}")
    failures = 0
    while not stopping:
        try:
            n = router.tick()
            if n:
                log("INFO", f"loaded {n} rows", total=router.loaded)
            failures = 0
        except Exception as exc:  # keep routing: the next tick retries the same lines
            failures += 1
            log("ERROR", f"load failed ({failures}): {exc!r}")
        deadline = time.monotonic() + min(args.interval * (2 ** min(failures, 4)), 30)
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
