"""The three emulators: fake-gcs-server, gcloud's Pub/Sub emulator and bqemulator."""

from __future__ import annotations

import time
from typing import Any

from pharmaseg import config
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import processes
from pharmaseg_dev.stack.layout import HOST, StackError, StackLayout

EMULATORS = ("storage", "pubsub", "bigquery")


def storage_command(layout: StackLayout, *, events: bool) -> list[str]:
    """fake-gcs-server on the filesystem backend; with ``events``, every bucket's finalizes go to Pub/Sub.

    Every bucket, because the server takes one bucket filter and two buckets trigger functions
    (inbox and sources); each storage-triggered function ignores the buckets it does not watch,
    where Eventarc filters by bucket in production.
    """
    cmd = [
        str(layout.fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        HOST,
        "-port",
        str(layout.port("storage")),
        "-external-url",
        layout.url("storage"),
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(layout.gcs_root),
        "-log-level",
        "warn",
    ]
    if events:
        cmd += [
            "-event.pubsub-project-id",
            layout.project,
            "-event.pubsub-topic",
            cloud_resources.topic_name("storage_events"),
            "-event.list",
            "finalize",
        ]
    return cmd


def pubsub_command(layout: StackLayout) -> list[str]:
    return [
        layout.gcloud_binary(),
        "beta",
        "emulators",
        "pubsub",
        "start",
        f"--host-port={layout.pubsub_host}",
        f"--project={layout.project}",
        f"--data-dir={layout.state_dir / 'pubsub'}",
        "--verbosity=warning",
    ]


def bigquery_command(layout: StackLayout) -> list[str]:
    return [
        str(layout.bqemulator_binary()),
        "start",
        "--rest-host",
        HOST,
        "--rest-port",
        str(layout.port("bigquery")),
        "--grpc-host",
        HOST,
        "--grpc-port",
        str(layout.port("bigquery_grpc")),
        "--project",
        layout.project,
        *(
            ["--persistent", "--data-dir", str(layout.bigquery_data_dir)]
            if layout.bigquery_data_dir
            else ["--ephemeral"]
        ),
        "--log-level",
        "warning",
    ]


def _env(layout: StackLayout, name: str, *, events: bool) -> dict[str, str]:
    env = config.environment()
    # Never let an emulator reach real Google Cloud through a developer's settings.
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    if name == "storage" and events:
        env["PUBSUB_EMULATOR_HOST"] = layout.pubsub_host
    if name == "bigquery":
        # load_table_from_uri("gs://...") reads fake-gcs-server's files directly.
        env["BQEMU_GCS_LOCAL_ROOT"] = str(layout.gcs_root)
    if name == "pubsub":
        env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"
    return env


def _ready(layout: StackLayout, name: str):
    if name == "storage":
        return lambda: processes.http_ok(f"{layout.url('storage')}/storage/v1/b")
    if name == "bigquery":
        return lambda: processes.http_ok(f"{layout.url('bigquery')}/bigquery/v2/projects/{layout.project}/datasets")
    # The Pub/Sub emulator answers REST too once its gRPC server is up.
    return lambda: processes.http_ok(f"{layout.url('pubsub')}/v1/projects/{layout.project}/topics")


def check_tools(layout: StackLayout, names: tuple[str, ...] = EMULATORS) -> None:
    """Raise StackError naming the fix if a tool an emulator needs is missing."""
    for name in names:
        {"storage": layout.fake_gcs_binary, "bigquery": layout.bqemulator_binary, "pubsub": layout.gcloud_binary}[
            name
        ]()


def check_ports(layout: StackLayout, components: list[str]) -> None:
    busy = [f"{layout.port(c)} ({c})" for c in components if not processes.port_free(layout.port(c))]
    if busy:
        raise StackError(
            f"port {', '.join(busy)} in use: `pharmaseg stack down` (state dir {layout.state_dir}) "
            f"or set PHARMASEG_STACK_PORT_BASE to another base (now {layout.port_base})"
        )


def start(
    layout: StackLayout, names: tuple[str, ...] = EMULATORS, *, events: bool = True, timeout: float = 90.0
) -> dict[str, dict[str, Any]]:
    """Start the named emulators side by side and wait until each answers; all or nothing."""
    check_tools(layout, names)
    ports = [n for n in names] + (["bigquery_grpc"] if "bigquery" in names else [])
    check_ports(layout, ports)
    events = events and "pubsub" in names
    layout.gcs_root.mkdir(parents=True, exist_ok=True)
    (layout.state_dir / "pubsub").mkdir(parents=True, exist_ok=True)
    commands = {
        "storage": lambda: storage_command(layout, events=events),
        "pubsub": lambda: pubsub_command(layout),
        "bigquery": lambda: bigquery_command(layout),
    }
    # Pub/Sub first: fake-gcs-server publishes to it. Slow starters run in parallel anyway.
    order = [n for n in ("pubsub", "bigquery", "storage") if n in names]
    started: dict[str, dict[str, Any]] = {}
    try:
        for name in order:
            record = processes.spawn(
                commands[name](), stdout=layout.log_path(name), env=_env(layout, name, events=events)
            )
            record.update(port=layout.port(name), url=layout.url(name), t0=time.monotonic())
            started[name] = record
        for name in order:
            record = started[name]
            processes.wait_ready(name, record, _ready(layout, name), timeout=timeout)
            record["startup_s"] = round(time.monotonic() - record.pop("t0"), 2)
        return started
    except BaseException:
        for record in started.values():
            processes.stop(record["pid"])
        raise


def stop(records: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Stop each emulator's process group; name -> True if nothing of it is left."""
    return {name: processes.stop(r["pid"], r.get("start_time")) for name, r in records.items()}
