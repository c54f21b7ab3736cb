"""A hostile CSV through score_batch: no cell of results/<name> or <name>.rejects.csv can run as a formula.

Checked the way a spreadsheet sees the files: parsed with the csv module, every cell's first
character. BigQuery must still hold the raw records as they came (the audit record).
"""

from __future__ import annotations

import copy
import csv
import io
import re
import uuid

import pytest
from google.cloud import bigquery as bq

from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.clients import bigquery_client, storage_client
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.registry import ModelRegistry
from pharmaseg.score_batch import BatchSettings, BatchSink, ObjectRef, process_object
from tests.models import trained
from tests.polling import wait_for

pytestmark = pytest.mark.integration
HEADER = "COUNTRY," + ",".join(FEATURE_NAMES)
FORMULA_START = "=+-@\t\r\n"
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")  # what a spreadsheet reads as a number


@pytest.fixture(scope="module")
def model():
    table, artifact = trained(n_bootstrap=2)
    artifact.version = "9.1.0"
    return artifact, table


def hostile_file(table, *, odd_widths: bool) -> tuple[bytes, dict[int, str]]:
    """A features file with formula-looking cells; returns it and {row: what the raw record starts with}."""

    def nums(country: str, first: str | None = None) -> str:
        values = [repr(v) for v in table.values[table.countries.index(country)].tolist()]
        return ",".join([first or values[0], *values[1:]])

    rows = [
        f"DEU,{nums('DEU')}",  # 2: scored
        f"FRA:=1+1,{nums('FRA')}",  # 3: scored, a scenario key: the formula is not at the start
        f"ITA,{nums('ITA', '-0.5')}",  # 4: scored, a negative number must stay a number
        f"USA,{nums('USA', chr(34) + '-3' + chr(34))}",  # 5: scored, a quoted negative number
        f"@SUM(1+1),{nums('DEU')}",  # 6: the example
        f'"=HYPERLINK(""http://evil.example"",""x"")",{nums("DEU")}',  # 7: quoted, with quotes inside
        f"+1+1,{nums('DEU')}",  # 8
        f"-1+1,{nums('DEU')}",  # 9
        f'"\t=1+1",{nums("DEU")}',  # 10: a tab
        f'"\r=1+1",{nums("DEU")}',  # 11: a carriage return inside quotes
        f'"\n@SUM(A1)",{nums("DEU")}',  # 12: a line break inside quotes
        f" =1+1,{nums('DEU')}",  # 13: a leading space
        f"-12.5,{nums('DEU')}",  # 14: a number where the country belongs
        f"ESP,=1+1,{nums('ESP').split(',', 1)[1]}",  # 15: a formula in a number column (raw starts with E)
    ]
    starts = {6: "@", 7: '"=', 8: "+", 9: "-", 10: "\t", 11: '"\r', 12: '"\n', 13: " =", 14: "-", 15: "ESP"}
    if odd_widths:  # the BigQuery path rejects a whole file for these
        rows += ["=1+1,1,2,3,4,5,6,7,8,9,10", "-2,3"]  # 16: too many columns, 17: too few
        starts.update({16: "=", 17: "-"})
    return (HEADER + "\n" + "\n".join(rows) + "\n").encode(), starts


def assert_no_formula_cell(text: str) -> list[list[str]]:
    """Parse a published CSV as a spreadsheet would and check every cell's first character."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows, "empty CSV"
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            assert not cell or cell[0] not in FORMULA_START or NUMBER.fullmatch(cell), (r, c, cell)
    return rows


def check_published(bucket, name: str, bq_rejects: list[dict], starts: dict[int, str], scored: int) -> None:
    stem = name[len("incoming/") : -len(".csv")]
    results = assert_no_formula_cell(bucket.blob(f"results/{stem}.csv").download_as_text())
    header, body = results[0], [dict(zip(results[0], row)) for row in results[1:]]
    assert len(body) == scored
    by_country = {row["country"]: row for row in body}
    assert "FRA:=1+1" in by_country  # left alone: its first character is F
    assert float(by_country["ITA"][FEATURE_NAMES[0]]) == -0.5 and by_country["ITA"][FEATURE_NAMES[0]] == "-0.5"
    assert float(by_country["USA"][FEATURE_NAMES[0]]) == -3.0
    assert header[:3] == ["run_id", "row_number", "country"]

    rejects = assert_no_formula_cell(bucket.blob(f"results/{stem}.rejects.csv").download_as_text())
    published = {int(row[1]): row for row in rejects[1:]}
    raw = {r["row_number"]: r["raw_record"] for r in bq_rejects}
    assert sorted(published) == sorted(raw) == sorted(starts)
    for row, start in starts.items():
        assert raw[row].startswith(start), (row, raw[row])  # BigQuery keeps the record as it came
        expected = raw[row] if start == "ESP" else "'" + raw[row]  # the published copy: one ' in front
        assert published[row][2] == expected, (row, published[row][2])
        assert published[row][3] == next(r["reason"] for r in bq_rejects if r["row_number"] == row)


def query(client, sql: str) -> list[dict]:
    return [dict(r.items()) for r in client.query(sql).result()]


def test_hostile_file_dropped_in_the_inbox_publishes_no_formula_cell(local_stack_env, model):
    status = local_stack_env
    if "score_batch" not in status["functions"]:
        pytest.fail(f"score_batch is not running: {status.get('function_errors')}")
    artifact, table = model
    registry = ModelRegistry(status["buckets"]["models"])
    registry.promote(registry.register(copy.deepcopy(artifact)), reason="csv injection test")
    data, starts = hostile_file(table, odd_widths=True)
    name = f"incoming/hostile-{uuid.uuid4().hex[:6]}.csv"
    inbox = storage_client(status["project"]).bucket(status["buckets"]["inbox"])
    blob = inbox.blob(name)
    blob.upload_from_string(data)
    blob.reload()
    run_id = ObjectRef(inbox.name, name, blob.generation).run_id
    client = bigquery_client(status["project"])
    tables = status["tables"]
    run = wait_for(
        lambda: query(
            client,
            f"SELECT * FROM `{tables['batch_runs']}` WHERE run_id = '{run_id}' AND status IN ('succeeded', 'rejected')",
        ),
        timeout=60,
    )[0]
    assert (run["status"], run["rows_read"], run["rows_scored"], run["rows_rejected"]) == ("succeeded", 16, 4, 12)
    bq_rejects = query(client, f"SELECT * FROM `{tables['batch_rejects']}` WHERE run_id = '{run_id}'")
    assert len(bq_rejects) == 12
    wait_for(lambda: inbox.get_blob(f"results/{name[len('incoming/') : -4]}.rejects.csv"), timeout=10)
    check_published(inbox, name, bq_rejects, starts, scored=4)


def test_hostile_file_on_the_bigquery_path_publishes_no_formula_cell(local_stack_env, model):
    """The large-file path writes its CSVs by paging query rows: the same rule applies there."""
    status = local_stack_env
    project = status["project"]
    storage = storage_client(project)
    client = bigquery_client(project)
    bucket = storage.create_bucket(f"hostile-{uuid.uuid4().hex[:8]}")  # no notifications: only this test runs it
    dataset = f"hostile_{uuid.uuid4().hex[:8]}"
    client.create_dataset(f"{project}.{dataset}")
    for role in ("batch_predictions", "batch_rejects", "batch_runs"):
        schema = [bq.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
        client.create_table(bq.Table(f"{project}.{dataset}.{cloud_resources.table_name(role)}", schema=schema))
    data, starts = hostile_file(model[1], odd_widths=False)
    name = "incoming/hostile-large.csv"
    blob = bucket.blob(name)
    blob.upload_from_string(data)
    blob.reload()
    result = process_object(
        ObjectRef(bucket.name, name, blob.generation, blob.size),
        storage=storage,
        sink=BatchSink(client, project, dataset),
        load_model=lambda: model[0],
        settings=BatchSettings(sql_threshold_bytes=1),
    )
    assert (result.status, result.scoring_path, result.rows_scored, result.rows_rejected) == (
        "succeeded",
        "bigquery",
        4,
        10,
    )
    rejects_table = f"{project}.{dataset}.{cloud_resources.table_name('batch_rejects')}"
    bq_rejects = query(client, f"SELECT * FROM `{rejects_table}` WHERE run_id = '{result.run_id}'")
    # The SQL path rebuilds the raw record by joining the fields (no CSV quoting).
    sql_starts = {**starts, 7: "=", 11: "\r", 12: "\n"}
    check_published(bucket, name, bq_rejects, sql_starts, scored=4)
