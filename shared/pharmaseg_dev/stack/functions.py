"""Run each function folder with functions-framework, configured as Terraform configures it."""

from __future__ import annotations

from typing import Any

from pharmaseg import config
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack import processes
from pharmaseg_dev.stack.layout import HOST, RECORDED_SERVICES, StackError, StackLayout


def discover(layout: StackLayout) -> dict[str, dict[str, Any]]:
    """Functions of resources.json whose ``functions/<name>/main.py`` exists, in resources order."""
    return {
        name: spec
        for name, spec in cloud_resources.functions().items()
        if (layout.functions_dir / name / "main.py").is_file()
    }


def signature_type(spec: dict[str, Any]) -> str:
    return "http" if spec["trigger"] == "http" else "cloudevent"


def emulator_env(layout: StackLayout) -> dict[str, str]:
    """The variables that point Google clients (and pharmaseg.gcp.clients) at this stack's emulators."""
    return {
        "GOOGLE_CLOUD_PROJECT": layout.project,
        "STORAGE_EMULATOR_HOST": layout.url("storage"),
        "PUBSUB_EMULATOR_HOST": layout.pubsub_host,
        "BIGQUERY_EMULATOR_HOST": layout.url("bigquery"),
    }


def recorded_env(layout: StackLayout, name: str) -> dict[str, str]:
    """Function ``name``'s view of the emulators: its own ports of the recording proxy.

    The proxy knows the caller by the port, so the access audit can check every call against
    the grants of that function's service account.
    """
    ports = {service: layout.recorder_port(name, service) for service in RECORDED_SERVICES}
    return {
        "GOOGLE_CLOUD_PROJECT": layout.project,
        "STORAGE_EMULATOR_HOST": f"http://{HOST}:{ports['storage']}",
        "PUBSUB_EMULATOR_HOST": f"{HOST}:{ports['pubsub']}",
        "BIGQUERY_EMULATOR_HOST": f"http://{HOST}:{ports['bigquery']}",
    }


def client_env(layout: StackLayout) -> dict[str, str]:
    """What a person's shell needs for the CLI against this stack: the emulators, the buckets, and
    the notifications topic (a promotion or rollback by hand is notified there)."""
    env = emulator_env(layout)
    for role in cloud_resources.bucket_roles():
        env[f"PHARMASEG_{role.upper()}_BUCKET"] = cloud_resources.bucket_name(role, layout.project)
    env["PHARMASEG_NOTIFICATIONS_TOPIC"] = cloud_resources.topic_name("notifications")
    return env


def settings_env(layout: StackLayout, name: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Every config setting the function reads: stack-owned names forced, tunables passed through.

    Resource settings (project, ``PHARMASEG_<ROLE>_BUCKET``, ``PHARMASEG_<ROLE>_TOPIC``,
    ``PHARMASEG_DATASET``) always name this stack's resources; the others take the caller's
    environment, else their documented default.
    """
    forced = {"GOOGLE_CLOUD_PROJECT": layout.project, "PHARMASEG_DATASET": cloud_resources.dataset_name()}
    for role in cloud_resources.bucket_roles():
        forced[f"PHARMASEG_{role.upper()}_BUCKET"] = cloud_resources.bucket_name(role, layout.project)
    for role in cloud_resources.topic_roles():
        forced[f"PHARMASEG_{role.upper()}_TOPIC"] = cloud_resources.topic_name(role)
    env = {}
    for setting in config.SETTINGS.values():
        if name not in setting.functions:
            continue
        value = forced.get(setting.name) or config.value(setting.name, environ=environ)
        if value is None and setting.default is not None:
            value = str(setting.default)
        if value is not None:
            env[setting.name] = value
    return env


def function_env(layout: StackLayout, name: str) -> dict[str, str]:
    env = config.environment()
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.update(recorded_env(layout, name))
    env.update(cloud_resources.runtime_environment())
    env.update(settings_env(layout, name))
    env.update(
        {
            "PYTHONUNBUFFERED": "1",  # one log line per print, as Cloud Run's stdout capture sees it
            "K_SERVICE": name,
            "K_REVISION": f"{name}-local",
            "FUNCTION_TARGET": cloud_resources.functions()[name]["entry_point"],
            "FUNCTION_SIGNATURE_TYPE": signature_type(cloud_resources.functions()[name]),
            "PORT": str(layout.port(name)),
        }
    )
    return env


def command(layout: StackLayout, name: str) -> list[str]:
    spec = cloud_resources.functions()[name]
    return [
        str(layout.python_bin("functions-framework")),
        "--target",
        spec["entry_point"],
        "--source",
        str(layout.functions_dir / name / "main.py"),
        "--host",
        HOST,
        "--port",
        str(layout.port(name)),
        "--signature-type",
        signature_type(spec),
    ]


def start(layout: StackLayout, names: list[str], *, timeout: float = 60.0) -> tuple[dict, dict]:
    """Start the named functions in parallel; returns (records of those up, errors of those that failed).

    A function that fails to import does not stop the others: its error names its log file.
    """
    if not names:
        return {}, {}
    layout.python_bin("functions-framework")
    busy = [f"{layout.port(n)} ({n})" for n in names if not processes.port_free(layout.port(n))]
    if busy:
        raise StackError(f"port {', '.join(busy)} in use: `pharmaseg stack down` or set PHARMASEG_STACK_PORT_BASE")
    records: dict[str, dict[str, Any]] = {}
    for name in names:
        # Fresh logs per start: the log router follows files by inode and starts new ones at 0.
        stdout, stderr = layout.log_path(name, "stdout"), layout.log_path(name, "stderr")
        stdout.unlink(missing_ok=True)
        stderr.unlink(missing_ok=True)
        record = processes.spawn(
            command(layout, name),
            stdout=stdout,
            stderr=stderr,
            env=function_env(layout, name),
            cwd=layout.functions_dir / name,
        )
        record.update(
            port=layout.port(name),
            url=layout.url(name),
            stderr=str(stderr),
            trigger=cloud_resources.functions()[name]["trigger"],
        )
        record["log"] = str(stderr)  # startup failures (tracebacks) land on stderr
        records[name] = record
    up, errors = {}, {}
    for name, record in records.items():
        try:
            # functions-framework imports the module before it binds: an open port means it loaded.
            record["startup_s"] = round(
                processes.wait_ready(name, record, lambda r=record: processes.port_open(r["port"]), timeout=timeout), 2
            )
            record["log"] = str(layout.log_path(name, "stdout"))
            up[name] = record
        except StackError as exc:
            processes.stop(record["pid"])
            errors[name] = str(exc).splitlines()[0]
    return up, errors
