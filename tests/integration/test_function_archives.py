"""Each function's archive, unzipped beside a clean venv that holds only its requirements.txt,
imports and answers under functions-framework: what Cloud Functions' build would run.

The archives carry only the library modules their function imports (scripts/package_function.py),
so a module left out, or a requirement missing, shows here as a failure naming the
ModuleNotFoundError. The venvs are cached in ``.venv-functions/`` (git-ignored), one per function,
keyed by the hash of its requirements.txt and the Python version: a fresh clone pays the four
installs once (about 70 s here), later runs reuse them.
"""

from __future__ import annotations

import base64
import copy
import fcntl
import hashlib
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
import requests

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg_dev.stack import functions as stack_functions
from pharmaseg_dev.stack import processes
from pharmaseg_dev.stack.layout import HOST, StackError, StackLayout

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_CACHE = REPO_ROOT / ".venv-functions"
FUNCTIONS = list(cloud_resources.functions())
EVENT_FUNCTIONS = [name for name, spec in cloud_resources.functions().items() if spec["trigger"] != "http"]

_spec = importlib.util.spec_from_file_location("package_function", REPO_ROOT / "scripts" / "package_function.py")
package = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package)


def function_venv(name: str) -> Path:
    """A venv holding only ``functions/<name>/requirements.txt`` (and what it pulls in), built once."""
    requirements = REPO_ROOT / "functions" / name / "requirements.txt"
    if not requirements.is_file():
        pytest.fail(f"{requirements} is missing")
    key = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:12]
    venv = VENV_CACHE / f"{name}-{key}"
    VENV_CACHE.mkdir(exist_ok=True)
    with open(VENV_CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers build each venv once
        if not (venv / ".installed").is_file():
            for stale in VENV_CACHE.glob(f"{name}-*"):
                shutil.rmtree(stale)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            install = subprocess.run(
                [
                    str(venv / "bin" / "pip"),
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                    str(requirements),
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if install.returncode:
                pytest.fail(f"pip install -r {requirements} failed:\n{install.stderr[-4000:]}", pytrace=False)
            (venv / ".installed").write_text(requirements.read_text())
    return venv


def unpacked(name: str, tmp_path: Path) -> Path:
    """The function's archive as scripts/package_function.py builds it, unzipped."""
    try:
        archive = package.package_function(name, tmp_path / "build")
    except package.PackagingError as exc:
        pytest.fail(f"{name} cannot be packaged: {exc}", pytrace=False)
    folder = tmp_path / name
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Served:
    """One functions-framework process serving an unzipped archive from its clean venv."""

    def __init__(self, name: str, venv: Path, folder: Path, env: dict[str, str]):
        spec = cloud_resources.functions()[name]
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = folder.parent / f"{name}.log"
        cmd = [
            str(venv / "bin" / "functions-framework"),
            "--target",
            spec["entry_point"],
            "--source",
            "main.py",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--signature-type",
            stack_functions.signature_type(spec),
        ]
        self.record = processes.spawn(cmd, stdout=self.log, env=env, cwd=folder)
        try:
            # functions-framework imports main.py before it binds: an open port means it loaded.
            processes.wait_ready(name, self.record, lambda: processes.port_open(self.port), timeout=120)
        except StackError as exc:
            self.stop()
            pytest.fail(f"the {name} archive does not start in its clean venv: {exc}", pytrace=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        assert processes.stop(self.record["pid"], self.record["start_time"]), f"{self.url} left running"


def function_env(name: str, venv: Path, project: str, gcs, pubsub, bigquery) -> dict[str, str]:
    """What the stack gives a function (its settings, the emulators), and nothing of this venv's."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "STORAGE_EMULATOR_HOST": gcs.url,
        "PUBSUB_EMULATOR_HOST": pubsub.host,
        "BIGQUERY_EMULATOR_HOST": bigquery.url,
        **stack_functions.settings_env(StackLayout(project=project), name, environ={}),
    }


@pytest.fixture
def project() -> str:
    return f"archive-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def trained():
    from tests.models import trained

    return trained()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_module_of_the_archive_imports_with_only_its_requirements(name, tmp_path):
    venv, folder = function_venv(name), unpacked(name, tmp_path)
    modules = sorted(
        ".".join(p.relative_to(folder).with_suffix("").parts).removesuffix(".__init__")
        for p in (folder / "pharmaseg").rglob("*.py")
    )
    script = (
        "import importlib, sys, traceback\n"
        "for m in sys.argv[1:]:\n"
        "    try: importlib.import_module(m)\n"
        "    except Exception: print(m, traceback.format_exc(limit=-1).strip().splitlines()[-1])\n"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, *modules],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and not result.stdout, f"{name}: modules that do not import:\n{result.stdout}"


def test_predict_archive_answers_health_and_a_prediction(gcs, pubsub, bigquery, project, trained, tmp_path):
    from pharmaseg.model.registry import ModelRegistry

    table, artifact = trained
    client = gcs.client()
    bucket = client.create_bucket(cloud_resources.bucket_name("models", project)).name
    registry = ModelRegistry(bucket, client=client)
    version = registry.register(copy.deepcopy(artifact))
    registry.promote(version, reason="archive test")
    venv = function_venv("predict")
    served = Served(
        "predict", venv, unpacked("predict", tmp_path), function_env("predict", venv, project, gcs, pubsub, bigquery)
    )
    try:
        health = requests.get(f"{served.url}/health", timeout=30)
        assert health.status_code == 200, f"{health.status_code} {health.text}\n{served.output()[-3000:]}"
        features = dict(zip(FEATURE_NAMES, table.values[table.countries.index("DEU")].tolist()))
        answer = requests.post(served.url, json={"country": "DEU", **features}, timeout=30)
        assert answer.status_code == 200, f"{answer.status_code} {answer.text}\n{served.output()[-3000:]}"
        assert answer.json()["model_version"] == version, answer.json()
    finally:
        served.stop()


@pytest.mark.parametrize("name", EVENT_FUNCTIONS)
def test_event_archive_acknowledges_a_malformed_message(name, gcs, pubsub, bigquery, project, tmp_path):
    """A Pub/Sub message whose data is not JSON: the library refuses it in a log line, the function
    acknowledges it (2xx), which takes importing main.py and dispatching into the library."""
    venv = function_venv(name)
    served = Served(name, venv, unpacked(name, tmp_path), function_env(name, venv, project, gcs, pubsub, bigquery))
    try:
        response = requests.post(
            served.url,
            json={"message": {"data": base64.b64encode(b"not json").decode(), "messageId": "m-1"}, "subscription": "s"},
            headers={
                "ce-specversion": "1.0",
                "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/t",
                "ce-id": "m-1",
            },
            timeout=120,
        )
    finally:
        served.stop()
    output = served.output()
    assert 200 <= response.status_code < 300, f"{response.status_code} {response.text}\n{output[-3000:]}"
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("severity") == "ERROR" and line.get("event")]
    assert refused, f"no refusal logged by {name}:\n{output[-3000:]}"


def test_an_archive_missing_a_module_fails_naming_it(gcs, pubsub, bigquery, project, tmp_path):
    venv = function_venv("predict")
    folder = unpacked("predict", tmp_path)
    (folder / "pharmaseg" / "model/explain.py").unlink()  # imported by pharmaseg.predict.service
    with pytest.raises(pytest.fail.Exception, match="ModuleNotFoundError: No module named 'pharmaseg.model.explain'"):
        Served("predict", venv, folder, function_env("predict", venv, project, gcs, pubsub, bigquery))
