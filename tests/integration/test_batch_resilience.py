"""score_batch under crashes and outages, on a stack of its own: a killed function, BigQuery gone, 50 files at once.

This module kills and restarts processes, so it never touches the session's ``local_stack``. Its
stack runs only score_batch, keeps BigQuery's data on disk (so the emulator can be restarted
mid-run) and gives runs a 5 s lease: the local push subscription dead-letters an event after 5
deliveries 1-10 s apart, so with the production lease (900 s) a run whose process was killed could
not be taken over before its event was given up. Every test checks the exactly-once outcome in
BigQuery itself: one batch_runs row, rows_read = scored + rejected, no row number twice.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from google.cloud import bigquery as bq

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.clients import bigquery_client, storage_client
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.score_batch import BatchSink, ObjectRef, sink
from pharmaseg_dev.stack import emulators, lifecycle, processes
from tests.integration import own_stack
from tests.integration.notified import keyed, stack_subscription, take
from tests.models import trained
from tests.polling import wait_for

pytestmark = pytest.mark.integration
HEADER = "COUNTRY," + ",".join(FEATURE_NAMES)
REPO = Path(__file__).resolve().parents[2]
SETTINGS = {"PHARMASEG_BATCH_LEASE_SECONDS": "5", "PHARMASEG_ALIAS_TTL_SECONDS": "1"}


def features_file(table, rows: int, *, bad_every: int = 0, tag: str = "s") -> tuple[bytes, int]:
    """``rows`` feature rows derived from the OECD features (distinct scenario keys); every
    ``bad_every``-th row has a missing value. Returns the file and its number of bad rows."""
    rng = np.random.default_rng(rows)
    pick = rng.integers(0, len(table.countries), rows)
    values = table.values[pick] * rng.normal(1.0, 0.1, (rows, len(FEATURE_NAMES)))
    lines = [HEADER]
    bad = 0
    for i in range(rows):
        cells = [f"{v:.6g}" for v in values[i]]
        if bad_every and i % bad_every == bad_every - 1:
            cells[3] = ""
            bad += 1
        lines.append(f"{table.countries[pick[i]]}:{tag}{i}," + ",".join(cells))
    return ("\n".join(lines) + "\n").encode(), bad


class Stack:
    def __init__(self, layout, status, conftest, table):
        self.layout, self.status, self.conftest, self.table = layout, status, conftest, table
        self.storage = storage_client(status["project"], endpoint=layout.url("storage"))
        self.inbox = self.storage.bucket(status["buckets"]["inbox"])
        self.bq = bigquery_client(status["project"], endpoint=layout.url("bigquery"))
        self.tables = status["tables"]

    def upload(self, name: str, data: bytes) -> str:
        blob = self.inbox.blob(name)
        blob.upload_from_string(data)
        blob.reload()
        return ObjectRef(self.inbox.name, name, blob.generation).run_id

    def query(self, sql: str) -> list[dict]:
        return [dict(r.items()) for r in self.bq.query(sql).result()]

    def runs(self, run_ids: list[str]) -> list[dict]:
        ids = ", ".join(f"'{r}'" for r in run_ids)
        return self.query(f"SELECT * FROM `{self.tables['batch_runs']}` WHERE run_id IN ({ids})")

    def wait_finished(self, run_ids: list[str], timeout: float) -> dict[str, dict]:
        def finished():
            rows = [r for r in self.runs(run_ids) if r["status"] in ("succeeded", "rejected")]
            return {r["run_id"]: r for r in rows} if len(rows) == len(run_ids) else None

        return wait_for(finished, timeout=timeout, interval=1.0)

    def row_numbers(self, role: str, run_ids: list[str]) -> dict[str, tuple[int, int, int, int]]:
        """run_id -> (rows, distinct row numbers, min, max) in batch_predictions or batch_rejects."""
        ids = ", ".join(f"'{r}'" for r in run_ids)
        found = self.query(
            f"SELECT run_id, COUNT(*) AS n, COUNT(DISTINCT row_number) AS d, MIN(row_number) AS lo, "
            f"MAX(row_number) AS hi FROM `{self.tables[role]}` WHERE run_id IN ({ids}) GROUP BY run_id"
        )
        return {r["run_id"]: (r["n"], r["d"], r["lo"], r["hi"]) for r in found}

    # the score_batch process
    def log_events(self, run_id: str) -> list[dict]:
        path = self.layout.log_path("score_batch")
        lines = path.read_text().splitlines() if path.exists() else []
        events = []
        for line in lines:
            if line.startswith("{") and run_id in line:
                events.append(json.loads(line))
        return events

    def finished_events(self, run_id: str) -> list[dict]:
        """The run's ``batch_finished`` lines, once there is one (it follows the commit by the publish step)."""
        return wait_for(lambda: [e for e in self.log_events(run_id) if e.get("event") == "batch_finished"], timeout=30)

    def kill_function(self) -> None:
        own_stack.kill_function(self.layout, "score_batch")

    def restart_missing(self) -> float:
        return own_stack.restart_missing(self.conftest, self.layout, SETTINGS)

    # the BigQuery emulator
    def stop_bigquery(self) -> None:
        record = lifecycle.read_state(self.layout)["processes"]["bigquery"]
        assert processes.stop(record["pid"], record.get("start_time"))

    def start_bigquery(self) -> None:
        started = emulators.start(self.layout, ("bigquery",), events=False)
        state = lifecycle.read_state(self.layout)
        state["processes"]["bigquery"] = started["bigquery"]
        lifecycle.write_state(self.layout, state)
        self._track()

    def _track(self) -> None:
        own_stack.track(self.conftest, self.layout)


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory, stack_layout_factory):
    # The conftest is not importable by name (several conftest.py share it); pytest holds it.
    conftest = request.config.pluginmanager.get_plugin(str(Path(__file__).with_name("conftest.py")))
    root = tmp_path_factory.mktemp("resilience")
    (root / "functions").mkdir()
    (root / "functions" / "score_batch").symlink_to(REPO / "functions" / "score_batch")
    table, artifact = trained(n_bootstrap=2)
    layout, status = own_stack.start_own_stack(
        conftest,
        stack_layout_factory,
        root,
        SETTINGS,
        project="pharmaseg-resilience",
        bigquery_data_dir=lambda attempt: root / f"bigquery-{attempt}",
    )
    try:
        assert "--persistent" in emulators.bigquery_command(layout)
        assert list(status["functions"]) == ["score_batch"], status["function_errors"]
        stack = Stack(layout, status, conftest, table)
        registry = ModelRegistry(status["buckets"]["models"], stack.storage)
        registry.promote(registry.register(copy.deepcopy(artifact)), reason="resilience tests")
        yield stack
    finally:
        conftest.stop_stack(layout, lifecycle.status(layout))  # what runs now, restarted processes included
        conftest.stop_stack(layout, status)  # forgets the pids of the processes replaced during the tests


def test_fifty_files_at_once_each_get_one_run_and_the_counts_add_up(stack):
    # First in the module: on the emulator a commit slows down as batch_predictions grows (its
    # guarded DELETE scans the table: 0.1 s empty, 0.7 s after the 250k rows of the other tests).
    table = stack.table
    files = {}
    for i in range(50):
        data, bad = features_file(table, 20 + i, bad_every=7 if i % 2 else 0, tag=f"f{i}-")
        files[f"incoming/many-{uuid.uuid4().hex[:6]}-{i}.csv"] = (data, 20 + i, bad)
    with ThreadPoolExecutor(max_workers=10) as pool:
        run_ids = dict(zip(pool.map(lambda name: stack.upload(name, files[name][0]), files), files))
    finished = stack.wait_finished(list(run_ids), timeout=120)
    predictions = stack.row_numbers("batch_predictions", list(run_ids))
    rejects = stack.row_numbers("batch_rejects", list(run_ids))
    for run_id, name in run_ids.items():
        _, rows, bad = files[name]
        run = finished[run_id]
        assert run["source_uri"].endswith(name) and run["status"] == "succeeded", run
        assert (run["rows_read"], run["rows_scored"], run["rows_rejected"]) == (rows, rows - bad, bad), name
        assert predictions[run_id][:2] == (rows - bad, rows - bad), name
        assert rejects.get(run_id, (0, 0))[:2] == (bad, bad), name
    assert len(stack.runs(list(run_ids))) == 50
    total = sum(rows for _, rows, _ in files.values())
    assert sum(r["rows_read"] for r in finished.values()) == total
    assert sum(n for n, *_ in predictions.values()) + sum(n for n, *_ in rejects.values()) == total
    failed = sum(e.get("event") == "batch_failed" for r in run_ids for e in stack.log_events(r))
    print(f"\n50 files: {total} rows, {failed} attempts failed and were redelivered")


def test_function_killed_mid_file_is_redelivered_and_commits_exactly_once(stack):
    rows = 200_000
    data, bad = features_file(stack.table, rows, bad_every=1000, tag="kill")
    run_id = stack.upload(f"incoming/kill-{uuid.uuid4().hex[:6]}.csv", data)
    # "Mid" = the function has logged that it read its first 100,000 rows of this file.
    wait_for(
        lambda: [e for e in stack.log_events(run_id) if e.get("event") == "batch_progress"], timeout=60, interval=0.02
    )
    stack.kill_function()
    killed_log = stack.log_events(run_id)
    read = [e["rows_read"] for e in killed_log if e.get("event") == "batch_progress"]
    assert read and max(read) < rows, f"killed after reading {read} rows of {rows}: not in the middle"
    assert not [e for e in killed_log if e.get("event") == "batch_finished"]
    (run,) = stack.runs([run_id])
    assert run["status"] == "running"  # the kill came before the commit
    assert stack.row_numbers("batch_predictions", [run_id]) == {}
    restart_s = stack.restart_missing()

    final = stack.wait_finished([run_id], timeout=90)[run_id]
    assert final["status"] == "succeeded"
    assert (final["rows_read"], final["rows_scored"], final["rows_rejected"]) == (rows, rows - bad, bad)
    assert len(stack.runs([run_id])) == 1
    predictions = stack.row_numbers("batch_predictions", [run_id])[run_id]
    rejects = stack.row_numbers("batch_rejects", [run_id])[run_id]
    assert predictions[:2] == (rows - bad, rows - bad)  # no row twice
    assert rejects[:2] == (bad, bad)
    union = stack.query(
        f"SELECT COUNT(DISTINCT row_number) AS d, MIN(row_number) AS lo, MAX(row_number) AS hi FROM ("
        f"SELECT row_number FROM `{stack.tables['batch_predictions']}` WHERE run_id = '{run_id}' UNION ALL "
        f"SELECT row_number FROM `{stack.tables['batch_rejects']}` WHERE run_id = '{run_id}')"
    )[0]
    assert (union["d"], union["lo"], union["hi"]) == (rows, 2, rows + 1)  # every row once, scored or rejected
    assert [e["status"] for e in stack.finished_events(run_id)] == ["succeeded"]  # one attempt committed
    busy = stack.layout.log_path("score_batch", "stderr").read_text().count(f"RunBusy: run {run_id}")
    print(
        f"\nkill test: killed after {max(read)} rows, function restarted in {restart_s:.1f}s; {busy} redeliveries "
        "found the run busy (lease not yet expired), then one took it over and committed"
    )


def test_bigquery_outage_mid_run_completes_without_duplicates(stack):
    rows = 50_000
    data, bad = features_file(stack.table, rows, bad_every=500, tag="outage")
    run_id = stack.upload(f"incoming/outage-{uuid.uuid4().hex[:6]}.csv", data)
    wait_for(
        lambda: [e for e in stack.log_events(run_id) if e.get("event") == "batch_started"], timeout=60, interval=0.02
    )
    stack.stop_bigquery()
    stopped = time.monotonic()
    assert not [e for e in stack.log_events(run_id) if e.get("event") == "batch_finished"], (
        "run ended before the outage"
    )
    assert not processes.http_ok(stack.layout.url("bigquery"))
    time.sleep(max(0.0, stopped + 10 - time.monotonic()))
    stack.start_bigquery()
    back = datetime.now(UTC)

    final = stack.wait_finished([run_id], timeout=90)[run_id]
    assert final["status"] == "succeeded"
    assert (final["rows_read"], final["rows_scored"], final["rows_rejected"]) == (rows, rows - bad, bad)
    assert len(stack.runs([run_id])) == 1
    assert stack.row_numbers("batch_predictions", [run_id])[run_id][:2] == (rows - bad, rows - bad)
    assert stack.row_numbers("batch_rejects", [run_id])[run_id][:2] == (bad, bad)
    (done,) = stack.finished_events(run_id)
    events = [e.get("event") for e in stack.log_events(run_id)]
    assert datetime.fromisoformat(done["time"]) > back  # the outage held the run up: it ended after it
    how = "recorded failed, then redelivered" if "batch_failed" in events else "retried in place"
    after = (datetime.fromisoformat(done["time"]) - back).total_seconds()
    print(
        f"\noutage test: {how}; attempts: {events.count('batch_started')}; ended {after:.1f}s after BigQuery was back"
    )


def test_a_failed_attempt_is_told_on_the_notifications_topic_and_a_later_one_scores_the_file(stack):
    """Production names a version whose artifact is gone: each attempt fails, marks the run failed,
    and the function publishes a notification of the file (one key for all its attempts), which the
    local subscription reads.
    Once production is readable again, the next delivery scores the file, once."""
    registry = ModelRegistry(stack.status["buckets"]["models"], stack.storage)
    good = registry.alias("production").version
    broken = registry.register(copy.deepcopy(registry.load(good)))
    registry.promote(broken, reason="resilience tests: an unreadable production")
    stack.storage.bucket(stack.status["buckets"]["models"]).blob(f"models/{broken}/model.json").delete()
    time.sleep(1.5)  # the function re-reads the alias after PHARMASEG_ALIAS_TTL_SECONDS
    try:
        data, _ = features_file(stack.table, 20, tag="told")
        run_id = stack.upload(f"incoming/told-{uuid.uuid4().hex[:6]}.csv", data)
        told = take(*stack_subscription(stack.status), keyed(f"batch_failed:{run_id}"))
    finally:
        registry.promote(good, reason="resilience tests: production readable again")
    # each failed attempt published, each with its own start: one event a consumer keeps once
    assert told and len({n.details.attempt_started_at for n in told}) == len(told)
    first = told[0]
    assert first.details.run_id == run_id and first.details.object.endswith(".csv")
    assert first.details.reason.startswith("VersionNotFoundError") and broken in first.details.reason
    failed_lines = [e for e in stack.log_events(run_id) if e.get("event") == "notification_batch_failed"]
    assert {e["key"] for e in failed_lines} >= {n.key for n in told}
    final = stack.wait_finished([run_id], timeout=90)[run_id]
    assert final["status"] == "succeeded" and final["model_version"] == good


def test_a_claim_replayed_after_it_succeeded_still_owns_the_run(bigquery, monkeypatch):
    """BatchSink.query retries a statement whose answer was lost (a 503, a dropped connection) by
    running it again: a replayed claim MERGE changes nothing and must still see the run as its own."""
    client = bigquery.client()
    dataset = f"claims_{uuid.uuid4().hex[:8]}"
    client.create_dataset(f"{bigquery.project}.{dataset}")
    schema = [bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema("batch_runs")]
    client.create_table(
        bq.Table(f"{bigquery.project}.{dataset}.{cloud_resources.table_name('batch_runs')}", schema=schema)
    )
    runs = BatchSink(client, bigquery.project, dataset)
    ref = ObjectRef("b", "incoming/x.csv", 1)
    instant = sink.now()
    monkeypatch.setattr(sink, "now", lambda: instant)  # the replay sends the very same statement
    first = runs.claim(ref)
    replay = runs.claim(ref)
    assert first.owned and first.started_at == instant
    assert replay.owned and replay.started_at == instant
    monkeypatch.setattr(sink, "now", lambda: instant + timedelta(seconds=1))  # another attempt
    other = runs.claim(ref)
    assert not other.owned and other.status == "running" and other.started_at == instant
