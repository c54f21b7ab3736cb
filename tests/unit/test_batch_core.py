"""Batch scoring without emulators: event shapes, layouts, row-level validation, SQL generation."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pharmaseg.errors import DataValidationError
from pharmaseg.gcp.events import EventError, ObjectRef, parse_event, skip_reason
from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.explain import Explainer
from pharmaseg.model.features import FEATURE_NAMES
from pharmaseg.model.segments import Segment
from pharmaseg.score_batch.countries import ISO3166_ALPHA3, country_problem
from pharmaseg.score_batch.layouts import FEATURES, PANEL, detect_layout
from pharmaseg.score_batch.run import event_too_old
from pharmaseg.score_batch.scoring import score_features
from pharmaseg.score_batch.sql import explained_select, literal

HEADER = "COUNTRY," + ",".join(FEATURE_NAMES)


@pytest.fixture
def artifact():
    rng = np.random.default_rng(0)
    return ModelArtifact(
        feature_names=list(FEATURE_NAMES),
        window="2011-2020",
        scaler_mean=rng.normal(size=9),
        scaler_scale=rng.uniform(0.5, 2, 9),
        centroids=rng.normal(size=(3, 9)),
        segments=[Segment(i, f"S{i}", "", 1, 0.0, 0.0, True) for i in range(3)],
        reference={},
        metrics={},
        lineage={},
        assignments={},
        version="1.0.0",
    )


class Out:
    def __init__(self):
        self.s, self.r = [], []

    def scored(self, t):
        self.s += t.to_pylist()

    def rejected(self, t):
        self.r += t.to_pylist()


def test_a_storage_event_names_one_generation_of_one_object():
    resource = {"bucket": "b", "name": "incoming/x.csv", "generation": "17", "size": "5", "contentType": "text/csv"}
    ref = parse_event("google.cloud.storage.object.v1.finalized", resource)
    assert ref == ObjectRef("b", "incoming/x.csv", 17, 5, "text/csv")
    assert ref.run_id == parse_event("google.cloud.storage.object.v1.finalized", dict(resource)).run_id
    assert ref.run_id != ObjectRef("b", "incoming/x.csv", 18).run_id  # a new generation is a new run


def test_other_events_are_refused():
    """Eventarc's trigger delivers only finalizes: anything else is an error, never a silent skip."""
    with pytest.raises(EventError, match="unexpected event type"):
        parse_event("google.cloud.storage.object.v1.deleted", {})
    with pytest.raises(EventError, match="unexpected event type"):
        parse_event("google.cloud.pubsub.topic.v1.messagePublished", {"message": {}})
    with pytest.raises(EventError, match="generation"):
        parse_event("google.cloud.storage.object.v1.finalized", {"bucket": "b", "name": "x.csv"})


def test_skip_reasons():
    assert skip_reason(ObjectRef("b", "incoming/a.csv", 1), "incoming/") is None
    assert "outside the prefix" in skip_reason(ObjectRef("b", "results/a.csv", 1), "incoming/")
    assert "not a CSV" in skip_reason(ObjectRef("b", "incoming/a.xlsx", 1), "incoming/")


def test_layouts_from_headers_with_bom_quotes_and_case():
    assert detect_layout(b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n").kind == FEATURES
    assert detect_layout(b'"location",TIME,PC_HEALTHXP,PC_GDP,USD_CAP,TOTAL_SPEND\n').kind == PANEL
    with pytest.raises(DataValidationError, match="unknown layout"):
        detect_layout(b"COUNTRY,foo\n")
    with pytest.raises(DataValidationError, match="empty"):
        detect_layout(b"\xef\xbb\xbf\r\n")


def test_country_codes():
    assert len(ISO3166_ALPHA3) == 249
    assert country_problem("DEU") is None and country_problem("DEU:high growth") is None
    assert "not an ISO" in country_problem("XYZ") and "missing" in country_problem(" ")
    assert "not an ISO" in country_problem("Germany")


def test_stream_invariant_and_reasons_across_small_blocks(artifact):
    good = ",".join(["1.5"] * 9)
    lines = [f"{c}:{i}," + good for i, c in enumerate(["DEU", "FRA"] * 500)]
    lines[10] = "DEU:0," + good  # duplicate of row 2, in another block
    lines[20] = "FRA:x," + ",".join(["nan"] + ["1"] * 8)
    lines[30] = "ITA:y," + good + ",1"
    data = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    out = Out()
    counts = score_features(io.BytesIO(data), detect_layout(data), artifact, "r", out, block_size=4096)
    assert counts.rows_read == 1000 == counts.rows_scored + counts.rows_rejected
    reasons = {r["row_number"]: r["reason"] for r in out.r}
    assert reasons == {
        12: "COUNTRY: duplicate 'DEU:0' (row 2 has it)",
        22: "PC_HEALTHXP_growth: 'nan' is not a finite number",
        32: "columns: 11 fields where the header has 10 (too many columns)",
    }
    assert sorted(r["row_number"] for r in out.s) == sorted(set(range(2, 1002)) - set(reasons))
    expected = artifact.predict(np.full((1, 9), 1.5)).clusters[0]
    assert {r["cluster"] for r in out.s} == {int(expected)}


def test_scored_rows_carry_each_prediction_s_explanation(artifact):
    values = np.random.default_rng(4).normal(size=(200, 9))
    lines = [f"DEU:{i}," + ",".join(map(repr, v)) for i, v in enumerate(values.tolist())]
    data = (HEADER + "\n" + "\n".join(lines) + "\n").encode()
    out = Out()
    score_features(io.BytesIO(data), detect_layout(data), artifact, "r", out, borderline_confidence=0.3)
    explainer = Explainer(artifact, 0.3)
    rows = sorted(out.s, key=lambda r: r["row_number"])
    assert len(rows) == len(values)
    for row, v in zip(rows, values.tolist()):
        e = explainer.explain(v)
        assert (row["cluster"], row["runner_up_cluster"], row["runner_up"]) == (
            e.cluster,
            e.runner_up,
            f"S{e.runner_up}",
        )
        assert row["borderline"] == (e.confidence < 0.3)
        assert row["margin"] == pytest.approx(e.margin, rel=1e-12)
        assert row["what_if_distance"] == pytest.approx(e.what_if_distance, rel=1e-12)
        reasons = e.reasons()
        assert [row[f"reason_{r}"] for r in (1, 2, 3)] == [r.feature for r in reasons]
        assert [row[f"reason_{r}_share"] for r in (1, 2, 3)] == pytest.approx([r.share for r in reasons], rel=1e-12)
    assert 0 < sum(r["borderline"] for r in rows) < len(rows)  # the threshold splits this sample


def test_sql_literals_escape_quotes_and_backslashes():
    assert literal("it's \\ ok\n") == "'it\\'s \\\\ ok\\n'"
    assert literal(None) == "NULL" and literal(3) == "3" and literal(0.1) == "0.1"


def test_explained_sql_mentions_every_centroid_and_the_threshold(artifact):
    text = explained_select(artifact, "SELECT 1", 0.375)
    assert all(f"distance_{i}" in text for i in range(3)) and "confidence < 0.375 AS borderline" in text


def test_event_age():
    assert event_too_old("2000-01-01T00:00:00Z", 3600)
    assert not event_too_old(None, 3600)
