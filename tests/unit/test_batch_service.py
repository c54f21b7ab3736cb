"""BatchService refuses what it must not score before it touches a client (none is given here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pharmaseg.config import BatchSettings, SettingsError
from pharmaseg.gcp.events import STORAGE_FINALIZED
from pharmaseg.runtime import Event, accept
from pharmaseg.score_batch.service import BatchService


@pytest.fixture
def service():
    return BatchService(BatchSettings(max_event_age_seconds=3600))


def finalized(bucket="inbox", name="incoming/a.csv"):
    return {"bucket": bucket, "name": name, "generation": "5", "size": "10"}


def last_log(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_malformed_event_is_logged_and_acknowledged(service, capsys):
    assert accept(service, Event(STORAGE_FINALIZED, {"bucket": "inbox"})) is None
    line = last_log(capsys)
    assert line["severity"] == "ERROR" and line["event"] == "batch_bad_event"


def test_a_stale_event_is_dropped_instead_of_retried_forever(service, capsys):
    stale = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    assert accept(service, Event(STORAGE_FINALIZED, finalized(), time=stale)) is None
    line = last_log(capsys)
    assert line["event"] == "batch_dropped" and line["source_uri"] == "gs://inbox/incoming/a.csv"


def test_an_event_of_another_type_scores_nothing(service, capsys):
    assert accept(service, Event("google.cloud.storage.object.v1.deleted", finalized())) is None
    line = last_log(capsys)
    assert line["event"] == "batch_bad_event" and "unexpected event type" in line["message"]


def test_settings_come_from_the_environment_once(monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("PHARMASEG_MODELS_BUCKET", "m")
    monkeypatch.setenv("PHARMASEG_BATCH_BLOCK_BYTES", "65536")
    from pharmaseg import config

    settings = BatchService.deployed(config.load("score_batch")).settings
    assert settings.block_size == 65536 and settings.prefix == "incoming/" and settings.window == ""


@pytest.mark.parametrize("field", ["results_prefix", "staging_prefix"])
def test_outputs_inside_the_inbox_prefix_stop_the_function(field):
    """Results or staging objects under the scored prefix would be announced and scored again."""
    with pytest.raises(SettingsError, match="must lie outside PHARMASEG_BATCH_PREFIX 'incoming/'"):
        BatchService(BatchSettings(**{field: "incoming/out/"}))
