"""``pharmaseg notifications`` and the demo's notifications step, on the local stack's subscription.

The notifications are published with the functions' own publisher (``Notifier``) to the stack's
notifications topic; the events that cause them for real are tested where they happen
(test_retrain, test_check_drift, test_score_batch, test_registry_cli).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pharmaseg.notifications import Notifier, events
from tests.unit.test_notifications import decision_row

REPO = Path(__file__).resolve().parents[2]
PHARMASEG = str(Path(sys.executable).parent / "pharmaseg")


def demo_step():
    spec = importlib.util.spec_from_file_location("demo_notifications", REPO / "scripts" / "demo_notifications.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def told(local_stack_env):
    """Publish a held version (twice: a redelivery) and a failed batch file of this test's own."""
    status = local_stack_env
    tag = uuid.uuid4().hex[:8]
    held = events.version_held(
        decision_row(version="7.1.0", message_id=f"held-{tag}", report_uri="gs://reports/models/7.1.0/report.html"),
        failed_checks=["market_agreement"],
    )
    now = datetime.now(UTC)
    failed = events.batch_failed(
        uri=f"gs://inbox/incoming/{tag}.csv",
        generation=1,
        run_id=f"r{tag}",
        reason="ServiceUnavailable: 503",
        attempt_started_at=now,
        failed_at=now,
    )
    notifier = Notifier(status["project"], status["topics"]["notifications"])
    for notification in (held, held, failed):
        notifier.send(notification, on_failure="raise")
    return status, held, failed


def cli(status, *args):
    env = demo_step().stack_env(status)
    result = subprocess.run([PHARMASEG, "notifications", *args], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_notifications_are_printed_once_each_then_acknowledged(told):
    status, held, failed = told
    kept = [n for n in json.loads(cli(status, "--json", "--keep")) if n["key"] in (held.key, failed.key)]
    assert sorted(n["key"] for n in kept) == sorted([held.key, failed.key])  # the redelivered copy dropped
    assert next(n for n in kept if n["kind"] == "version_held")["details"]["movers"][0]["country"] == "USA"

    text = cli(status)  # --keep handed them back: they are all still there
    block = next(b for b in text.split("\n\n") if held.key in b).splitlines()
    assert block[0].endswith(f"version_held: {held.title}") and block[1].startswith("  Retraining (2021 data")
    predict = status["functions"]["predict"]
    assert "  model report: gs://reports/models/7.1.0/report.html" in block
    assert f"                {predict}/reports/models/7.1.0/report.html" in block
    assert "  next: pharmaseg registry promote 7.1.0 --reason '...' --by <you>" in block
    assert f"batch_failed: Batch file {failed.details.object} failed" in text
    assert "acknowledged; " in text.splitlines()[-1] and "duplicate(s) dropped" in text.splitlines()[-1]

    again = [n["key"] for n in json.loads(cli(status, "--json"))]
    assert held.key not in again and failed.key not in again


def test_the_demo_step_shows_the_waiting_notifications_and_what_they_tell(told, capfd):
    status, held, _ = told
    demo_step().run(status)
    out = capfd.readouterr().out  # the step's own lines and those of the command it runs
    assert "$ pharmaseg notifications" in out and f"version_held: {held.title}" in out
    (said,) = [line for line in out.splitlines() if line.startswith("the demo's events, as told:")]
    assert "held for review: " in said and "7.1.0" in said.split("held for review: ")[1].split(";")[0]
    assert "docs/monitoring.md" in out.splitlines()[-1]
