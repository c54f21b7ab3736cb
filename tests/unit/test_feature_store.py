"""The feature store's rows and the ingestion's decisions, on in-memory tables.

What BigQuery does with the rows (append once, read as of a time, give a model's training rows
back exactly) is tested on the emulator in tests/integration/test_feature_store.py.
"""

from __future__ import annotations

import json

import pytest

from pharmaseg.errors import DataValidationError
from pharmaseg.feature_store import country_histories, feature_rows, history_rows, ingest
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.model import snapshot
from pharmaseg.model.features import FEATURE_NAMES, Window
from pharmaseg.model.panel import read_panel
from pharmaseg.model.sources import sha256_of
from pharmaseg.model.windows import FEATURE_CODE_VERSION, all_windows, feature_set_id
from tests.unit.memory_tables import MemoryHistory, targets

SOURCE = snapshot.Source(uri="gs://src/oecd.csv#7", sha256="ab" * 32, ingested_at="2024-05-01T12:00:00Z", generation=7)


def columns(role):
    return [f["name"] for f in cloud_resources.table_schema(role)]


@pytest.fixture(scope="module")
def table(oecd_path):
    return all_windows(read_panel(oecd_path).rows, 10)


def test_a_row_per_country_and_window_with_at_least_one_year(table):
    rows = feature_rows(table, SOURCE)
    assert len(rows) == int((table.present > 0).sum()) == 1350
    assert all(list(row) == columns("country_features") for row in rows)
    json.dumps(rows, allow_nan=False)  # what the load job sends: no NaN anywhere
    by_key = {(r["country"], r["window"]): r for r in rows}
    assert len(by_key) == len(rows)
    deu = by_key[("DEU", "2011-2020")]
    c, w = table.countries.index("DEU"), table.window_index(Window(2011, 2020))
    assert [deu[n] for n in FEATURE_NAMES] == table.features[c, w].tolist()
    assert (deu["window_start"], deu["window_end"], deu["years_present"], deu["complete"]) == (2011, 2020, 10, True)
    assert deu["feature_timestamp"] == "2020-12-31T00:00:00Z"
    assert deu["feature_set_id"] == feature_set_id(SOURCE.sha256, "2011-2020")
    assert deu["feature_code_version"] == FEATURE_CODE_VERSION
    assert (deu["source_uri"], deu["source_generation"], deu["ingested_at"]) == (
        SOURCE.uri,
        7,
        "2024-05-01T12:00:00Z",
    )


def test_incomplete_windows_have_their_years_counted_and_no_features(table):
    rows = [r for r in feature_rows(table, SOURCE) if not r["complete"]]
    assert len(rows) == int(((table.present > 0) & ~table.complete).sum())
    assert all(0 < r["years_present"] < 10 and all(r[n] is None for n in FEATURE_NAMES) for r in rows)
    newest = {r["country"]: r["years_present"] for r in rows if r["window"] == "2013-2022"}
    assert (newest["DEU"], newest["CHL"]) == (9, 3) and "NZL" not in newest  # New Zealand: nothing after 2007


def test_a_history_row_per_country_and_complete_window_watch_on_each_and_one_latest(table, original_model):
    _, model = original_model
    model.version = "1.0.0"
    histories = country_histories(model, table, borderline_below=0.2)
    assert len(histories) == int(table.complete.any(axis=1).sum())
    rows = history_rows("1.0.0", histories, SOURCE.sha256, "2024-05-01T12:00:00Z")
    assert len(rows) == int(table.complete.sum())
    assert all(list(row) == columns("segment_history") for row in rows)
    json.dumps(rows, allow_nan=False)
    for history in histories:
        mine = [r for r in rows if r["country"] == history.country]
        assert [r["window"] for r in mine] == [w.window for w in history.windows]
        assert [r["window"] for r in mine if r["latest_window"]] == [history.windows[-1].window]
        assert {(r["watch"], r["watch_reason"]) for r in mine} == {(history.watch, history.watch_reason)}
    deu = next(r for r in rows if (r["country"], r["window"]) == ("DEU", "2011-2020"))
    assert deu["segment"] == model.segment(model.assignments["DEU"]).name  # its training row, scored again


def test_a_history_is_written_under_the_model_that_scored_it(table, original_model, oecd_path):
    _, model = original_model
    model.version = "1.0.0"
    histories = country_histories(model, table, borderline_below=0.2)
    with pytest.raises(ValueError, match=r"history of \w{3} was scored by model 1.0.0, not 2.0.0"):
        history_rows("2.0.0", histories, SOURCE.sha256, "2024-05-01T12:00:00Z")
    with pytest.raises(ValueError, match="scores 10-year windows, not 5-year ones"):
        country_histories(model, all_windows(read_panel(oecd_path).rows, 5), borderline_below=0.2)


# -- ingest, on in-memory tables -------------------------------------------------------------------


def test_ingest_stores_the_features_the_snapshot_and_productions_history_once(oecd_path, original_model, capsys):
    _, production = original_model
    production.version = "1.0.0"
    data, where = oecd_path.read_bytes(), targets()
    result = ingest(data, "gs://src/oecd.csv#7", where, generation=7, production=production)
    assert (result.rows_written, result.snapshot_written, result.skipped) == (1350, True, None)
    assert result.history_rows == len(where.history.table.rows) > 0 and result.production_version == "1.0.0"
    assert result.source.sha256 == sha256_of(data) and result.years == 10
    assert {r["ingested_at"] for r in where.store.rows} == {result.source.ingested_at}
    body, content_type = where.storage_client.objects[("models", snapshot.OBJECT)]
    served = snapshot.decode(body)
    assert content_type == "application/json" and served.source == result.source
    window, features = served.row("DEU", "2011-2020")
    assert features == production.training_features["DEU"]
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (line["severity"], line["event"], line["rows"]) == ("NOTICE", "features_stored", 1350)

    again = ingest(data, "gs://src/copy.csv#9", where, generation=9, production=production)
    assert (again.rows_written, again.snapshot_written, again.history_rows) == (0, False, 0)
    assert again.skipped == f"already stored (10-year windows, {FEATURE_CODE_VERSION})"
    assert len(where.store.rows) == 1350
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (line["severity"], line["event"]) == ("INFO", "features_already_stored")


def test_without_production_the_windows_are_ten_years_and_no_history_is_written(oecd_path):
    where = targets()
    result = ingest(oecd_path.read_bytes(), str(oecd_path), where)
    assert result.years == 10 and result.rows_written == 1350 and result.history_rows == 0
    assert result.production_version is None and where.history.table.rows == []


def test_windows_follow_productions_length(oecd_path):
    from tests.models import trained

    _, production = trained("2016-2020")
    production.version = "1.0.0"
    where = targets()
    result = ingest(oecd_path.read_bytes(), str(oecd_path), where, production=production)
    assert result.years == 5 and {r["window_end"] - r["window_start"] for r in where.store.rows} == {4}
    assert {r["window"] for r in where.history.table.rows} >= {"2016-2020", "2018-2022"}


def test_a_failure_before_the_rows_leaves_the_file_unstored_so_the_redelivery_redoes_it(oecd_path, original_model):
    _, production = original_model
    production.version = "1.0.0"
    where = targets(MemoryHistory(fail=True))
    with pytest.raises(ConnectionError):
        ingest(oecd_path.read_bytes(), "gs://src/oecd.csv#7", where, production=production)
    assert where.store.rows == []
    where.history.table.fail = False
    assert ingest(oecd_path.read_bytes(), "gs://src/oecd.csv#7", where, production=production).rows_written == 1350


def test_an_invalid_file_is_refused_whole_naming_its_first_bad_row(oecd_path):
    lines = oecd_path.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[3], "n/a", 1)
    where = targets()
    with pytest.raises(DataValidationError, match="line 6, column PC_GDP: 'n/a' is not a number"):
        ingest("\n".join(lines).encode(), "bad.csv", where)
    assert where.store.rows == [] and where.storage_client.objects == {}


def test_a_file_shorter_than_the_windows_stores_nothing_and_says_why(oecd_path):
    lines = oecd_path.read_text().splitlines()
    recent = "\n".join([lines[0], *[line for line in lines[1:] if int(line.split(",")[1]) >= 2018]])
    result = ingest(recent.encode(), "recent.csv", targets())
    assert result.rows_written == 0 and result.skipped == "the file has no 10-year window"
