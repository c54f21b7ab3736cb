"""Batch scoring on the emulators: both layouts, bad rows, bad files, duplicates, failures, SQL path, e2e."""

from __future__ import annotations

import copy
import csv
import io
import time
import uuid

import numpy as np
import pytest
from google.api_core.exceptions import NotFound
from google.cloud import bigquery as bq

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.clients import bigquery_client, storage_client
from pharmaseg.model.explain import TOP_REASONS, Explainer
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.notifications import Notifier
from pharmaseg.score_batch import BatchSettings, BatchSink, ObjectRef, process_object
from pharmaseg.score_batch.scoring import DEFAULT_BORDERLINE_CONFIDENCE
from pharmaseg.score_batch.tables import EXPLANATION_COLUMNS
from tests.integration.notified import keyed, stack_subscription, take
from tests.models import trained
from tests.unit.conftest import DATA

pytestmark = pytest.mark.integration
HEADER = "COUNTRY," + ",".join(FEATURE_NAMES)


@pytest.fixture(scope="module")
def model():
    table, artifact = trained(n_bootstrap=2)
    artifact.version = "9.0.0"
    return artifact, table


@pytest.fixture
def env(local_stack_env, model):
    """A private bucket (no notifications, so the running function stays out) and a private dataset."""
    status = local_stack_env
    project = status["project"]
    storage = storage_client(project)
    client = bigquery_client(project)
    bucket = storage.create_bucket(f"batch-test-{uuid.uuid4().hex[:8]}")
    dataset = f"batch_test_{uuid.uuid4().hex[:8]}"
    client.create_dataset(f"{project}.{dataset}")
    for role in ("batch_predictions", "batch_rejects", "batch_runs"):
        schema = [bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
        client.create_table(bq.Table(f"{project}.{dataset}.{cloud_resources.table_name(role)}", schema=schema))
    sink = BatchSink(client, project, dataset)

    class Env:
        pass

    e = Env()
    e.storage, e.bucket, e.sink, e.client, e.project, e.dataset = storage, bucket, sink, client, project, dataset
    e.status = status
    e.artifact = model[0]

    def upload(name, data):
        blob = bucket.blob(name)
        blob.upload_from_string(data)
        blob.reload()
        return ObjectRef(bucket.name, name, blob.generation, blob.size)

    def run(ref, settings=None, hook=None, notifier=None):
        return process_object(
            ref,
            storage=storage,
            sink=sink,
            load_model=lambda: e.artifact,
            settings=settings or BatchSettings(),
            hook=hook,
            notifier=notifier,
        )

    def rows(role, run_id):
        table = f"{project}.{dataset}.{cloud_resources.table_name(role)}"
        order = "" if role == "batch_runs" else " ORDER BY row_number"
        return [dict(r.items()) for r in client.query(f"SELECT * FROM `{table}` WHERE run_id = '{run_id}'{order}")]

    e.upload, e.run, e.rows = upload, run, rows
    return e


def features_csv(table, countries, *, bom=False, crlf=False, extra=""):
    sep = "\r\n" if crlf else "\n"
    lines = [HEADER] + [",".join([c, *map(repr, table.values[table.countries.index(c)].tolist())]) for c in countries]
    return (("\ufeff" if bom else "") + sep.join(lines) + sep + extra).encode()


def assert_explained(artifact, predictions, values, threshold=DEFAULT_BORDERLINE_CONFIDENCE):
    """batch_predictions rows carry the numpy path's explanation of each row, row by row."""
    expected = Explainer(artifact, threshold).explain_many(np.asarray(values), what_if=False)
    names = [s.name for s in artifact.segments]
    n = len(values)
    assert [p["runner_up_cluster"] for p in predictions] == expected.runner_up.tolist()
    assert [p["runner_up"] for p in predictions] == [names[c] for c in expected.runner_up]
    assert [p["borderline"] for p in predictions] == expected.borderline.tolist()
    np.testing.assert_allclose([p["margin"] for p in predictions], expected.margin, rtol=1e-12)
    np.testing.assert_allclose([p["what_if_distance"] for p in predictions], expected.what_if_distance, rtol=1e-12)
    for r in range(TOP_REASONS):
        top = expected.order[:, r]
        assert [p[f"reason_{r + 1}"] for p in predictions] == [expected.features[j] for j in top]
        shares = [np.nan if p[f"reason_{r + 1}_share"] is None else p[f"reason_{r + 1}_share"] for p in predictions]
        np.testing.assert_allclose(shares, expected.shares[np.arange(n), top], rtol=1e-12)


def assert_invariant(e, result):
    run = e.rows("batch_runs", result.run_id)
    assert len(run) == 1
    run = run[0]
    assert run["rows_read"] == run["rows_scored"] + run["rows_rejected"]
    assert len(e.rows("batch_predictions", result.run_id)) == (
        run["rows_scored"] if run["layout"] == "features" else len(e.rows("batch_predictions", result.run_id))
    )
    assert len(e.rows("batch_rejects", result.run_id)) == run["rows_rejected"]
    return run


def test_features_layout_bom_crlf_quoted(env, model):
    artifact, table = model
    data = features_csv(table, ["DEU", "FRA", "USA"], bom=True, crlf=True).replace(b"FRA,", b'"FRA",', 1)
    result = env.run(env.upload("incoming/features.csv", data))
    assert result.status == "succeeded" and result.rows_scored == 3 and result.rows_rejected == 0
    run = assert_invariant(env, result)
    assert run["layout"] == "features" and run["scoring_path"] == "function" and run["model_version"] == "9.0.0"
    predictions = env.rows("batch_predictions", result.run_id)
    expected = artifact.predict(table.values[[table.countries.index(c) for c in ["DEU", "FRA", "USA"]]])
    assert [p["cluster"] for p in predictions] == expected.clusters.tolist()
    assert [p["row_number"] for p in predictions] == [2, 3, 4]
    assert np.allclose([p["distances"] for p in predictions], expected.distances)
    assert_explained(artifact, predictions, table.values[[table.countries.index(c) for c in ["DEU", "FRA", "USA"]]])
    results = env.bucket.blob("results/features.csv").download_as_bytes().decode()
    assert results.splitlines()[0].startswith('"run_id","row_number","country"') and len(results.splitlines()) == 4
    header = next(csv.reader(io.StringIO(results)))
    assert header[-len(EXPLANATION_COLUMNS) :] == list(EXPLANATION_COLUMNS)


def test_panel_layout_scores_one_row_per_country(env, model):
    artifact, table = model
    raw = DATA.read_text()
    lines = raw.splitlines()
    window = [lines[0]] + [ln for ln in lines[1:] if 2011 <= int(ln.split(",")[1]) <= 2020]
    result = env.run(env.upload("incoming/panel.csv", ("\n".join(window) + "\n").encode()))
    assert result.status == "succeeded"
    run = assert_invariant(env, result)
    assert run["layout"] == "panel"
    predictions = env.rows("batch_predictions", result.run_id)
    assert sorted(p["country"] for p in predictions) == sorted(table.countries)
    by_country = {p["country"]: p["cluster"] for p in predictions}
    assert by_country == {c: int(k) for c, k in zip(table.countries, artifact.predict(table.values).clusters)}


def test_mixed_good_and_bad_rows_each_rejected_with_the_field(env, model):
    _, table = model
    good = ",".join(map(repr, table.values[0].tolist()))
    nine = good.split(",")
    bad = [
        "FRA," + ",".join(["", *nine[1:]]),  # missing value
        "ITA," + ",".join([nine[0], "abc", *nine[2:]]),  # text in a number
        "ESP," + ",".join(["inf", *nine[1:]]),  # inf
        "DEU," + good,  # duplicate country
        "XYZ," + good,  # unknown country code
        "GBR," + good + ",42",  # too many columns
    ]
    data = features_csv(table, ["DEU", "USA"], extra="\n".join(bad) + "\n")
    result = env.run(env.upload("incoming/mixed.csv", data))
    run = assert_invariant(env, result)
    assert (run["rows_read"], run["rows_scored"], run["rows_rejected"]) == (8, 2, 6)
    reasons = {r["row_number"]: r["reason"] for r in env.rows("batch_rejects", result.run_id)}
    assert reasons[4].startswith("PC_HEALTHXP_growth: missing value")
    assert reasons[5].startswith("PC_HEALTHXP_avg: 'abc' is not a number")
    assert reasons[6].startswith("PC_HEALTHXP_growth: 'inf' is not a finite number")
    assert reasons[7].startswith("COUNTRY: duplicate 'DEU'")
    assert reasons[8].startswith("COUNTRY: 'XYZ' is not an ISO 3166-1 alpha-3")
    assert "too many columns" in reasons[9]
    assert all(r["raw_record"] for r in env.rows("batch_rejects", result.run_id))


@pytest.mark.parametrize(
    "name,data,reason",
    [
        ("incoming/empty.csv", b"", "empty"),
        ("incoming/unknown.csv", b"a,b,c\n1,2,3\n", "unknown layout"),
        ("incoming/binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not"),
    ],
)
def test_bad_files_are_rejected_once_and_acknowledged(env, name, data, reason):
    ref = env.upload(name, data)
    result = env.run(ref)
    assert result.status == "rejected" and reason in result.error
    run = assert_invariant(env, result)
    assert run["status"] == "rejected" and reason in run["error"]
    assert env.run(ref).status == "duplicate"  # a redelivery does not retry a permanently bad file


def test_header_only_file_succeeds_with_zero_rows(env):
    result = env.run(env.upload("incoming/header.csv", (HEADER + "\n").encode()))
    assert result.status == "succeeded"
    run = assert_invariant(env, result)
    assert (run["rows_read"], run["rows_scored"], run["rows_rejected"]) == (0, 0, 0)


def test_non_csv_object_and_objects_outside_the_prefix_are_ignored(env, capsys):
    assert env.run(env.upload("incoming/notes.txt", b"hello")).status == "ignored"
    assert env.run(env.upload("results/x.csv", HEADER.encode())).status == "ignored"
    out = capsys.readouterr().out
    assert "not a CSV file" in out and "outside the prefix" in out


def test_same_event_twice_adds_nothing(env, model):
    ref = env.upload("incoming/twice.csv", features_csv(model[1], ["DEU", "FRA"]))
    first = env.run(ref)
    second = env.run(ref)
    assert (first.status, second.status) == ("succeeded", "duplicate")
    assert len(env.rows("batch_predictions", first.run_id)) == 2
    assert len(env.rows("batch_runs", first.run_id)) == 1


def test_overwrite_is_a_new_run(env, model):
    first = env.run(env.upload("incoming/over.csv", features_csv(model[1], ["DEU"])))
    second = env.run(env.upload("incoming/over.csv", features_csv(model[1], ["DEU", "FRA", "ITA"])))
    assert first.run_id != second.run_id and second.status == "succeeded"
    assert len(env.rows("batch_predictions", first.run_id)) == 1
    assert len(env.rows("batch_predictions", second.run_id)) == 3


def test_stale_generation_is_rejected_not_retried(env, model):
    old = env.upload("incoming/stale.csv", features_csv(model[1], ["DEU"]))
    env.upload("incoming/stale.csv", features_csv(model[1], ["FRA"]))
    result = env.run(old)
    assert result.status == "rejected" and "no longer exists" in result.error


def test_failure_between_load_and_commit_leaves_nothing_and_retries_cleanly(env, model):
    ref = env.upload("incoming/crash.csv", features_csv(model[1], ["DEU", "FRA"], extra="XYZ,1,2,3,4,5,6,7,8,9\n"))

    def crash(stage):
        raise RuntimeError(f"injected failure after {stage}")

    # told on the stack's notifications topic, as the deployed function tells it
    notifier = Notifier(env.project, env.status["topics"]["notifications"])
    with pytest.raises(RuntimeError, match="injected"):
        env.run(ref, hook=crash, notifier=notifier)
    run = env.rows("batch_runs", ref.run_id)[0]
    assert run["status"] == "failed" and "injected" in run["error"]
    (failed,) = take(*stack_subscription(env.status), keyed(f"batch_failed:{ref.run_id}"))
    assert failed.details.object == ref.uri and failed.details.generation == ref.generation
    assert (
        failed.details.run_id == ref.run_id and failed.details.reason == "RuntimeError: injected failure after loaded"
    )
    assert failed.title == f"Batch file {ref.uri} failed; it will be delivered again"
    assert env.rows("batch_predictions", ref.run_id) == [] and env.rows("batch_rejects", ref.run_id) == []
    retried = env.run(ref)  # the platform redelivers the event
    assert retried.status == "succeeded"
    run = assert_invariant(env, retried)
    assert (run["rows_scored"], run["rows_rejected"]) == (2, 1)
    assert env.run(ref).status == "duplicate"


def test_an_attempt_whose_lease_was_taken_over_commits_nothing(env, model):
    """The fencing token: once another attempt has taken the run over, the first can change nothing."""
    ref = env.upload("incoming/lease.csv", features_csv(model[1], ["DEU", "FRA"], extra="XYZ,1,2,3,4,5,6,7,8,9\n"))
    expired = BatchSink(env.client, env.project, env.dataset, lease_seconds=0)  # every lease has run out
    second = []

    def take_over(stage):  # between the first attempt's staging and its commit
        second.append(process_object(ref, storage=env.storage, sink=expired, load_model=lambda: env.artifact))

    with pytest.raises(NotFound, match="_batch_stage_"):
        process_object(ref, storage=env.storage, sink=expired, load_model=lambda: env.artifact, hook=take_over)
    # The second attempt committed and dropped the run's staging tables: the first one's commit
    # found them gone and raised (a redelivery then finds the run done), and its "failed" mark,
    # guarded by its own token, did not touch the run.
    assert second[0].status == "succeeded"
    (run,) = env.rows("batch_runs", ref.run_id)
    assert (run["status"], run["rows_scored"], run["rows_rejected"], run["error"]) == ("succeeded", 2, 1, None)
    assert [p["row_number"] for p in env.rows("batch_predictions", ref.run_id)] == [2, 3]
    assert [r["row_number"] for r in env.rows("batch_rejects", ref.run_id)] == [4]
    assert env.run(ref).status == "duplicate"


def test_large_file_sql_path_matches_numpy(env, model):
    artifact, table = model
    rng = np.random.default_rng(7)
    n = 3000
    values = table.values[rng.integers(0, len(table.countries), n)] * rng.normal(1.0, 0.15, (n, len(FEATURE_NAMES)))
    keys = [f"{table.countries[i % len(table.countries)]}:s{i}" for i in range(n)]
    body = "\n".join(",".join([k, *map(repr, v.tolist())]) for k, v in zip(keys, values))
    bad = f"\n{keys[0]}," + ",".join(map(repr, values[0].tolist())) + "\nQQQ,1,2,3,4,5,6,7,8,9\nFRA,,1,2,3,4,5,6,7,8\n"
    data = (HEADER + "\n" + body + bad).encode()
    settings = BatchSettings(sql_threshold_bytes=1000, borderline_confidence=0.3)
    result = env.run(env.upload("incoming/large.csv", data), settings)
    assert result.status == "succeeded" and result.scoring_path == "bigquery"
    run = assert_invariant(env, result)
    assert (run["rows_read"], run["rows_scored"], run["rows_rejected"]) == (n + 3, n, 3)
    predictions = env.rows("batch_predictions", result.run_id)
    expected = artifact.predict(values)
    assert [p["country"] for p in predictions] == keys
    assert [p["cluster"] for p in predictions] == expected.clusters.tolist()  # SQL == numpy, row for row
    assert np.allclose([p["confidence"] for p in predictions], expected.confidence)
    assert np.allclose([p["distances"] for p in predictions], expected.distances)
    assert_explained(artifact, predictions, values, threshold=0.3)  # SQL == numpy, row for row
    reasons = sorted(r["reason"] for r in env.rows("batch_rejects", result.run_id))
    assert reasons[0].startswith("COUNTRY: QQQ") and f"duplicate {keys[0]}" in reasons[1]
    assert reasons[2].startswith("PC_HEALTHXP_growth: missing value")
    # and the in-function path agrees on the same file
    numpy_run = env.run(env.upload("incoming/large-numpy.csv", data), BatchSettings(borderline_confidence=0.3))
    numpy_predictions = env.rows("batch_predictions", numpy_run.run_id)
    assert [p["cluster"] for p in numpy_predictions] == expected.clusters.tolist()
    assert_explained(artifact, numpy_predictions, values, threshold=0.3)
    assert 0 < sum(p["borderline"] for p in predictions) < n  # the threshold is applied, not constant
    # both paths leave a results CSV for people who do not use BigQuery, with the same columns and clusters
    assert result.results_uri == f"gs://{env.bucket.name}/results/large.csv"
    sql_csv = list(csv.DictReader(io.StringIO(env.bucket.blob("results/large.csv").download_as_text())))
    numpy_csv = list(csv.DictReader(io.StringIO(env.bucket.blob("results/large-numpy.csv").download_as_text())))
    assert list(sql_csv[0]) == list(numpy_csv[0])
    assert [int(r["cluster"]) for r in sql_csv] == [int(r["cluster"]) for r in numpy_csv] == expected.clusters.tolist()
    for column in ("runner_up", "borderline", "reason_1", "reason_2", "reason_3"):
        assert [r[column] for r in sql_csv] == [r[column] for r in numpy_csv], column
    for column in ("margin", "what_if_distance", "reason_1_share"):
        np.testing.assert_allclose([float(r[column]) for r in sql_csv], [float(r[column]) for r in numpy_csv])
    rejects = env.bucket.blob("results/large.rejects.csv").download_as_text().splitlines()
    assert len(rejects) == 1 + 3


def test_end_to_end_through_the_running_stack(local_stack_env, model):
    status = local_stack_env
    if "score_batch" not in status["functions"]:
        pytest.fail(f"score_batch is not running: {status.get('function_errors')}")
    artifact, table = model
    registry = ModelRegistry(status["buckets"]["models"])
    version = registry.register(copy.deepcopy(artifact))
    registry.promote(version, reason="batch e2e")
    name = f"incoming/e2e-{uuid.uuid4().hex[:6]}.csv"
    blob = storage_client(status["project"]).bucket(status["buckets"]["inbox"]).blob(name)
    blob.upload_from_string(features_csv(table, ["DEU", "FRA"], extra="XYZ,1,2,3,4,5,6,7,8,9\n"))
    blob.reload()
    run_id = ObjectRef(blob.bucket.name, name, blob.generation).run_id
    client = bigquery_client(status["project"])
    runs = f"{status['project']}.{status['dataset']}.batch_runs"
    deadline = time.monotonic() + 30
    found = []
    while time.monotonic() < deadline:
        found = [
            dict(r.items())
            for r in client.query(
                f"SELECT * FROM `{runs}` WHERE run_id = '{run_id}' AND status IN ('succeeded', 'rejected')"
            )
        ]
        if found:
            break
        time.sleep(0.5)
    assert found, "the run did not appear in BigQuery within 30 s"
    run = found[0]
    assert (run["status"], run["rows_read"], run["rows_scored"], run["rows_rejected"]) == ("succeeded", 3, 2, 1)
    assert run["model_version"] == version
    predictions = list(
        client.query(
            f"SELECT country FROM `{status['project']}.{status['dataset']}.batch_predictions` WHERE run_id = '{run_id}'"
        )
    )
    assert sorted(r["country"] for r in predictions) == ["DEU", "FRA"]


def test_demo_batch_runs_on_the_stack(local_stack_env, model, capsys):
    status = local_stack_env
    if "score_batch" not in status["functions"]:
        pytest.fail(f"score_batch is not running: {status.get('function_errors')}")
    import importlib.util
    from pathlib import Path

    registry = ModelRegistry(status["buckets"]["models"])
    registry.promote(registry.register(copy.deepcopy(model[0])), reason="batch demo test")
    spec = importlib.util.spec_from_file_location("demo_batch", Path(__file__).parents[2] / "scripts/demo_batch.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.run(status)
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\n".join(line for line in out.splitlines() if not line.startswith("{")))
    assert out.count("(holds)") == 2 and "layout panel" in out and "COUNTRY: 'XYZ'" in out
