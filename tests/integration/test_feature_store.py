"""The feature store on the emulators: written once, read as of any time, a model's training rows exactly.

Most tests call ``feature_store.ingest`` in-process against fake-gcs-server and bqemulator, each
with a dataset and models bucket of its own; the CLI test runs ``pharmaseg features``; the last
test drops a file in the running stack's sources bucket, as a person publishing new data does.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from pharmaseg.feature_store import Targets, ingest
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model import snapshot
from pharmaseg.model.features import FEATURE_NAMES, Window
from pharmaseg.model.panel import read_panel
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.model.sources import sha256_of
from pharmaseg.model.windows import all_windows
from tests.polling import wait_for
from tests.unit.conftest import DATA

PHARMASEG = str(Path(sys.executable).parent / "pharmaseg")
ROLES = ("country_features", "segment_history")


@pytest.fixture
def env(gcs, bigquery):
    """A dataset with the two tables (as the stack creates them), a models bucket, and the Targets on them."""
    from google.cloud import bigquery as bq

    suffix = uuid.uuid4().hex[:8]
    storage, client = gcs.client(), bigquery.client()
    models = f"models-{suffix}"
    storage.create_bucket(models)
    dataset = f"features_{suffix}"
    client.create_dataset(dataset)
    for role in ROLES:
        spec = cloud_resources.table_spec(role)
        table = bq.Table(
            cloud_resources.table_id(bigquery.project, dataset, role),
            schema=[bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)],
        )
        table.time_partitioning = bq.TimePartitioning(field=spec["partition_field"])
        table.clustering_fields = spec["clustering"]
        client.create_table(table)
    targets = Targets.connect(
        bigquery_client=client,
        storage_client=storage,
        project=bigquery.project,
        dataset=dataset,
        models_bucket=models,
        borderline_below=0.2,
    )
    return SimpleNamespace(
        targets=targets,
        store=targets.store,
        history=targets.history,
        storage_client=storage,
        models_bucket=models,
        client=client,
        project=bigquery.project,
        dataset=dataset,
    )


def count(env, role, where="TRUE"):
    table = cloud_resources.table_id(env.project, env.dataset, role)
    return list(env.client.query(f"SELECT COUNT(*) AS n FROM `{table}` WHERE {where}").result())[0]["n"]


def features_of(row):
    return [row[name] for name in FEATURE_NAMES]


def test_the_oecd_file_written_twice_is_stored_once_and_read_back_as_of_any_time(env):
    data = DATA.read_bytes()
    table = all_windows(read_panel(DATA).rows, 10)
    before = datetime.now(UTC)
    time.sleep(0.01)
    first = ingest(data, "gs://sources/oecd.csv#1", env.targets, generation=1)
    again = ingest(data, "gs://sources/copy.csv#2", env.targets, generation=2)
    assert (first.rows_written, first.snapshot_written) == (1350, True)
    assert again.rows_written == 0 and again.skipped.startswith("already stored")
    assert env.store.write(table, first.source) == 0  # the store itself refuses a stored file
    assert count(env, "country_features") == 1350
    assert count(env, "country_features", "complete") == int(table.complete.sum())

    latest = env.store.latest()
    assert [r["country"] for r in latest] == [c for c, k in zip(table.countries, table.complete.any(axis=1)) if k]
    for row in latest:
        c = table.countries.index(row["country"])
        w = max(i for i in range(len(table.ends)) if table.complete[c, i])
        assert row["window"] == str(table.window(w)) and features_of(row) == table.features[c, w].tolist()
        assert row["source_uri"] == "gs://sources/oecd.csv#1" and row["source_generation"] == 1
    deu = next(r for r in latest if r["country"] == "DEU")
    assert deu["window"] == "2012-2021" and deu["feature_timestamp"] == datetime(2021, 12, 31, tzinfo=UTC)
    assert env.store.as_of(before) == []
    assert env.store.as_of(datetime.now(UTC)) == latest
    assert env.store.latest(years=10) == latest and env.store.latest(years=5) == []

    stored = snapshot.decode(env.storage_client.bucket(env.models_bucket).blob(snapshot.OBJECT).download_as_bytes())
    assert stored.source == first.source and stored.row("DEU", "latest") == (Window(2012, 2021), features_of(deu))


def test_a_model_trained_on_the_same_file_reads_its_training_rows_back_exactly(env):
    from tests.models import trained

    _, artifact = trained()
    ingest(DATA.read_bytes(), "gs://sources/oecd.csv#1", env.targets, generation=1)
    assert artifact.lineage["feature_code_version"] == "pharmaseg.features/1"
    assert env.store.training_set(artifact.lineage["feature_set_id"]) == artifact.training_features
    assert env.store.training_set("0" * 32) == {}


def test_the_newest_ingestion_that_has_a_window_is_the_latest(env):
    """A later file without 2021-2022 and without France: the countries with a complete window in it get
    their latest from it, the others from the first file; as of before it, the first file's windows."""
    lines = DATA.read_text().splitlines()
    kept = [line for line in lines[1:] if int(line.split(",")[1]) <= 2020 and not line.startswith("FRA,")]
    older = "\n".join([lines[0], *kept]).encode()
    ingest(DATA.read_bytes(), "gs://sources/oecd.csv#1", env.targets, generation=1)
    between = datetime.now(UTC)
    time.sleep(0.01)
    second = ingest(older, "gs://sources/revised.csv#2", env.targets, generation=2)
    assert second.rows_written > 0
    latest = {r["country"]: r for r in env.store.latest()}
    assert latest["DEU"]["window"] == "2011-2020" and latest["DEU"]["source_sha256"] == sha256_of(older)
    from_first = {c for c, r in latest.items() if r["source_sha256"] == sha256_of(DATA.read_bytes())}
    assert from_first == {"FRA", "BGR"}  # Bulgaria's one complete window is 2012-2021, not in the later file
    assert latest["FRA"]["window"] == latest["BGR"]["window"] == "2012-2021"
    assert {r["source_sha256"] for c, r in latest.items() if c not in from_first} == {sha256_of(older)}
    assert {r["source_sha256"] for r in env.store.as_of(between)} == {sha256_of(DATA.read_bytes())}
    assert {r["country"]: r["window"] for r in env.store.as_of(between)}["DEU"] == "2012-2021"
    assert env.store.as_of(between - timedelta(days=1)) == []


def test_productions_segment_history_is_written_once_per_file(env):
    from tests.models import trained

    _, production = trained()
    production.version = "1.0.0"
    data = DATA.read_bytes()
    first = ingest(data, "gs://sources/oecd.csv#1", env.targets, generation=1, production=production)
    table = all_windows(read_panel(DATA).rows, 10)
    assert first.history_rows == int(table.complete.sum()) == count(env, "segment_history")
    assert ingest(data, "gs://sources/copy.csv#2", env.targets, generation=2, production=production).history_rows == 0
    assert env.history.record(production, table, first.source.sha256) == 0
    assert count(env, "segment_history") == first.history_rows
    history = cloud_resources.table_id(env.project, env.dataset, "segment_history")
    sql = f"SELECT * FROM `{history}` WHERE country = 'DEU' AND latest_window"
    (deu,) = [dict(r.items()) for r in env.client.query(sql).result()]
    assert (deu["model_version"], deu["window"], deu["source_sha256"]) == ("1.0.0", "2012-2021", sha256_of(data))
    assert deu["segment"] == "High-Value Pharma Markets" and 0 < deu["confidence"] <= 1


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_ingests_and_prints_latest_as_of_and_a_versions_training_set(env, gcs, bigquery, tmp_path):
    from tests.models import trained

    registry = ModelRegistry(env.models_bucket, client=env.storage_client)
    _, model = trained()
    registry.promote(registry.register(model), reason="feature store CLI test")
    environ = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": gcs.url,
        "BIGQUERY_EMULATOR_HOST": bigquery.url,
        "GOOGLE_CLOUD_PROJECT": env.project,
        "PHARMASEG_DATASET": env.dataset,
        "PHARMASEG_MODELS_BUCKET": env.models_bucket,
    }

    def run(*args):
        result = subprocess.run(
            [PHARMASEG, "features", *args], env=environ, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    env.storage_client.bucket(env.models_bucket).blob("data/oecd.csv").upload_from_filename(str(DATA))
    stored = json.loads(run("ingest", "--data", f"gs://{env.models_bucket}/data/oecd.csv", "--json"))
    assert stored["rows_written"] == 1350 and stored["production_version"] == "1.0.0"
    assert stored["source"]["uri"].startswith(f"gs://{env.models_bucket}/data/oecd.csv#")
    assert stored["history_rows"] > 0 and stored["source"]["generation"] > 0
    assert "nothing stored" in run("ingest", "--data", str(DATA))  # the same bytes from a local path

    latest = json.loads(run("latest", "--json"))
    assert {r["country"]: r["window"] for r in latest}["DEU"] == "2012-2021"
    assert json.loads(run("as-of", "2000-01-01T00:00:00Z", "--json")) == []
    assert len(json.loads(run("as-of", datetime.now(UTC).isoformat(), "--json"))) == len(latest)
    assert "DEU     2012-2021" in run("latest")
    training = json.loads(run("training-set", "production", "--json"))
    assert training["version"] == "1.0.0" and training["rows"] == model.training_features


# -- through the running stack ---------------------------------------------------------------------


def test_stack_a_new_source_file_is_stored_and_its_candidate_scored_before_the_retrain_decides(local_stack_env):
    """The retrain function stores the file (rows, snapshot, production's history), then trains on it; the
    candidate it registers writes its own segment history."""
    from pharmaseg.gcp.clients import bigquery_client, storage_client
    from tests.models import trained

    status = local_stack_env
    if "retrain" not in status["functions"] or status["function_errors"].get("retrain"):
        pytest.fail(f"retrain function not running: {status['function_errors']}")
    registry = ModelRegistry(status["buckets"]["models"])
    if registry.alias("production") is None:
        registry.promote(registry.register(trained()[1]), reason="feature store tests: a production model")
    production = registry.alias("production").version
    lines = DATA.read_bytes().splitlines(keepends=True)
    body = lines[1:]
    random.Random(uuid.uuid4().hex).shuffle(body)  # the same panel, bytes of its own: a new sha256
    data = b"".join([lines[0], *body])
    sha = sha256_of(data)
    name = f"feature-store-{uuid.uuid4().hex[:8]}.csv"
    blob = storage_client(status["project"]).bucket(status["buckets"]["sources"]).blob(name)
    blob.upload_from_string(data, content_type="text/csv")
    client = bigquery_client(status["project"])

    def rows(role, where=""):
        sql = f"SELECT * FROM `{status['tables'][role]}` WHERE source_sha256 = '{sha}' {where}"
        return [dict(r.items()) for r in client.query(sql).result()]

    stored = wait_for(lambda: rows("country_features"), timeout=120)
    assert len(stored) == 1350 and {r["source_uri"] for r in stored} == {
        f"gs://{blob.bucket.name}/{name}#{blob.generation}"
    }
    models = storage_client(status["project"]).bucket(status["buckets"]["models"])
    served = snapshot.decode(models.blob(snapshot.OBJECT).download_as_bytes())
    assert served.source.sha256 == sha and served.source.generation == blob.generation
    assert rows("segment_history", f"AND model_version = '{production}'")

    decision = wait_for(
        lambda: [
            dict(r.items())
            for r in client.query(
                f"SELECT * FROM `{status['tables']['model_versions']}` "
                f"WHERE message_id = 'source:{blob.bucket.name}/{name}#{blob.generation}'"
            ).result()
        ],
        timeout=240,
    )[0]
    assert decision["data_sha256"] == sha and decision["decision"] in ("held", "promoted")
    candidate = rows("segment_history", f"AND model_version = '{decision['version']}'")
    assert candidate and {r["window_end"] - r["window_start"] for r in candidate} == {9}
