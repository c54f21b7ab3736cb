#!/usr/bin/env python3
"""Benchmark: a drift check over a million prediction rows on the local emulators.

Starts its own BigQuery and Storage emulators (fresh ports, temporary state), loads 100,000 then
1,000,000 batch-prediction rows with newline-delimited JSON load jobs (no streaming), and times
a full drift check (count, binning and sample queries, statistics, report, row) on each. The recent rows
have USD_CAP_avg shifted by 1 std, so the check should say drift.

``run() -> str`` returns a markdown section (scripts/bench.py collects it); run directly to print it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

SIZES = (100_000, 1_000_000)
EXAMPLE_REPORT = Path(__file__).resolve().parents[1] / "docs" / "drift-report-example.html"
CHUNK = 250_000


def _free_base(start: int = 24600) -> int:
    from pharmaseg_dev.stack import processes
    from pharmaseg_dev.stack.layout import PORT_BLOCK

    base = start
    while not all(processes.port_free(p) for p in range(base, base + PORT_BLOCK)):
        base += PORT_BLOCK
    return base


def _artifact():
    from pharmaseg.model.sources import default_data
    from pharmaseg.model.training import TrainingParams, train_file

    return train_file(default_data(), params=TrainingParams(n_bootstrap=5))[1]


def run(log=print) -> str:
    from google.cloud import bigquery

    from pharmaseg.check_drift import methods, service
    from pharmaseg.config import DriftSettings
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.gcp import resources as cloud_resources
    from pharmaseg.gcp.bigquery import load_ndjson
    from pharmaseg.model.registry import ModelRegistry
    from pharmaseg_dev import simulate
    from pharmaseg_dev.stack import emulators
    from pharmaseg_dev.stack.layout import StackLayout

    tmp = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    layout = StackLayout(project="bench-drift", port_base=_free_base(), state_dir=tmp)
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    records = emulators.start(layout, ("storage", "bigquery"), events=False)
    rows_md = []
    try:
        bq = gcp.bigquery_client(layout.project, endpoint=layout.url("bigquery"))
        storage = gcp.storage_client(layout.project, endpoint=layout.url("storage"))
        for name in ("models", "reports"):
            storage.create_bucket(f"bench-{name}")
        artifact = _artifact()
        registry = ModelRegistry("bench-models", client=storage)
        registry.promote(registry.register(artifact), reason="bench")
        artifact = registry.load(registry.resolve("production"))
        dataset = "bench"
        bq.create_dataset(bigquery.Dataset(f"{layout.project}.{dataset}"))
        for role in ("predictions_log", "batch_predictions", "drift_reports"):
            schema = [bigquery.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
            bq.create_table(bigquery.Table(cloud_resources.table_id(layout.project, dataset, role), schema=schema))
        table = cloud_resources.table_id(layout.project, dataset, "batch_predictions")
        refs = methods.references(artifact.reference, artifact.feature_names)
        settings = DriftSettings(
            project=layout.project,
            dataset=dataset,
            models_bucket="bench-models",
            reports_bucket="bench-reports",
            retrain_topic=None,
        )
        checker = service.DriftService(settings, bq=bq, gcs=storage)
        rng = np.random.default_rng(0)
        for i, n in enumerate(SIZES):
            start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=30 * i)
            end = start + timedelta(days=7)
            t0 = time.perf_counter()
            generated = 0.0
            for offset in range(0, n, CHUNK):
                g0 = time.perf_counter()
                m = min(CHUNK, n - offset)
                values = simulate.sample_features(refs, m, rng, jitter=0.2, shift={"USD_CAP_avg": 1.0})
                times = simulate.timestamps(m, start, end, rng)
                body = simulate.ndjson(simulate.batch_rows(values, artifact, times, run_id=f"bench{offset}"))
                generated += time.perf_counter() - g0
                load_ndjson(bq, table, body, "batch_predictions", timeout=600)
            load_s = time.perf_counter() - t0 - generated
            t1 = time.perf_counter()
            doc = checker.run({"period_start": start, "period_end": end}, now=end)
            check_s = time.perf_counter() - t1
            timings = doc["timings_s"]
            log(f"{n} rows: load {load_s:.1f}s, check {check_s:.2f}s, verdict {doc['result']['verdict']}, {timings}")
            joint = doc["result"]["joint"] or {}
            rows_md.append(
                f"| {n:,} | {load_s:.1f} | {timings.get('query_counts', 0):.2f} | {timings.get('query_binned', 0):.2f} "
                f"| {timings.get('query_sample', 0):.2f} ({joint.get('n', 0):,} rows) "
                f"| {timings['compute']:.2f} | {check_s:.2f} | {doc['path']} | {doc['result']['verdict']} "
                f"({doc['result']['reason'].removeprefix('drift in ')}) |"
            )
        # The largest run's HTML report is the example the docs show (docs/drift.md, Reports).
        bucket, name = doc["report_uri"].removeprefix("gs://").split("/", 1)
        shutil.copyfile(layout.gcs_root / bucket / name, EXAMPLE_REPORT)
    finally:
        emulators.stop(records)
    return "\n".join(
        [
            "## Drift check over a million predictions (local emulators)",
            "",
            "Batch-prediction rows loaded with NDJSON load jobs of 250,000 rows; USD_CAP_avg shifted by 1 std. "
            "Seconds on this machine (2 cores); `check` is the whole run: count query, binning query, the joint "
            "test's sample query (at most 5,000 rows), statistics (2,000 bootstrap resamples per feature, the "
            "joint test), HTML/JSON report to GCS, drift_reports row.",
            "",
            "| rows | load s | count query s | binning query s | sample query s | statistics s | check s | path "
            "| verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows_md,
        ]
    )


if __name__ == "__main__":
    print(run())
    sys.exit(0)
