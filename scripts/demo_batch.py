"""Batch scoring demo: drop a raw panel and a features file with broken rows into the inbox bucket.

``run(status)`` needs the running stack's status dict and a production model already promoted.
It derives the 2012-2021 window of the OECD data at run time (nothing is committed), uploads it
and a features file with a few broken rows to ``incoming/``, waits for both runs in BigQuery and
prints the segments per country and the run summaries.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PHARMASEG_DATA", ROOT.parent / "shared/data/oecd_pharma_spending.csv"))


def _panel_window(start: int, end: int) -> bytes:
    lines = DATA.read_text().splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln and start <= int(ln.split(",")[1]) <= end]
    return ("\n".join(keep) + "\n").encode()


def _features_with_broken_rows() -> bytes:
    import io

    from pharmaseg.model.features import FEATURE_NAMES, Window
    from pharmaseg.model.panel import panel_features, read_panel

    table = panel_features(read_panel(io.BytesIO(DATA.read_bytes())), Window(2012, 2021))
    rows = [",".join([c, *(f"{v:.6f}" for v in table.values[i])]) for i, c in enumerate(table.countries[:8])]
    nine = rows[0].split(",")[1:]
    rows += [
        "FRA," + ",".join(["", *nine[1:]]),  # a missing value
        "ITA," + ",".join([nine[0], "n/a", *nine[2:]]),  # text in a number
        f"{table.countries[0]}," + ",".join(nine),  # a duplicate country
        "XYZ," + ",".join(nine),  # an unknown country code
        "DEU," + ",".join(nine) + ",99",  # too many columns
    ]
    return ("\ufeffCOUNTRY," + ",".join(FEATURE_NAMES) + "\r\n" + "\r\n".join(rows) + "\r\n").encode()


def _wait(client, runs_table: str, run_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(
            client.query(
                f"SELECT * FROM `{runs_table}` WHERE run_id = '{run_id}' AND status IN ('succeeded', 'rejected')"
            )
        )
        if found:
            return dict(found[0].items())
        time.sleep(0.5)
    raise TimeoutError(f"run {run_id} did not finish within {timeout:.0f}s")


SHOWN_REJECTS = 8  # a full-history panel rejects hundreds of out-of-window rows; show a few


def run(status: dict) -> None:
    """Upload the two files, wait for their runs and print results and summaries."""
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.score_batch import ObjectRef

    os.environ.update(status["env"])
    project, dataset = status["project"], status["dataset"]
    storage = gcp.storage_client(project)
    client = gcp.bigquery_client(project)
    inbox = storage.bucket(status["buckets"]["inbox"])
    tag = uuid.uuid4().hex[:6]
    files = {
        f"incoming/oecd-panel-2012-2021-{tag}.csv": _panel_window(2012, 2021),
        f"incoming/features-with-broken-rows-{tag}.csv": _features_with_broken_rows(),
    }
    runs = {}
    for name, data in files.items():
        blob = inbox.blob(name)
        blob.upload_from_string(data, content_type="text/csv")
        blob.reload()
        runs[name] = ObjectRef(inbox.name, name, blob.generation).run_id
        print(f"uploaded gs://{inbox.name}/{name} ({len(data):,} bytes), run {runs[name]}")
    table = f"{project}.{dataset}"
    for name, run_id in runs.items():
        run_row = _wait(client, f"{table}.batch_runs", run_id)
        print(f"\n== {name}")
        invariant = run_row["rows_read"] == run_row["rows_scored"] + run_row["rows_rejected"]
        print(
            f"status {run_row['status']}, layout {run_row['layout']}, path {run_row['scoring_path']}, "
            f"model {run_row['model_version']}: read {run_row['rows_read']} = scored {run_row['rows_scored']} "
            f"+ rejected {run_row['rows_rejected']} ({'holds' if invariant else 'BROKEN'}), "
            f"{run_row['duration_ms']:.0f} ms, results {run_row['results_uri']}"
        )
        predictions = client.query(
            f"SELECT country, segment_name, ROUND(confidence, 2) AS confidence FROM `{table}.batch_predictions` "
            f"WHERE run_id = '{run_id}' ORDER BY segment_name, country"
        )
        for row in predictions:
            print(f"  {row['country']:<6} -> {row['segment_name']} (confidence {row['confidence']})")
        rejects = client.query(
            f"SELECT row_number, reason FROM `{table}.batch_rejects` WHERE run_id = '{run_id}' ORDER BY row_number"
        )
        rejects = list(rejects)
        for row in rejects[:SHOWN_REJECTS]:
            print(f"  rejected row {row['row_number']}: {row['reason']}")
        if len(rejects) > SHOWN_REJECTS:
            print(f"  ... and {len(rejects) - SHOWN_REJECTS} more rejected rows, each with its reason in batch_rejects")
        if not invariant:
            raise SystemExit("the invariant rows read = scored + rejected does not hold")


if __name__ == "__main__":
    import json
    import subprocess

    stack = json.loads(
        subprocess.run(["pharmaseg", "stack", "status", "--json"], capture_output=True, text=True, check=True).stdout
    )
    run(stack)
    sys.exit(0)
