"""The monitoring page without BigQuery: the history document from query rows, the charts, the page.

The page over 90 days of real table rows, in Chromium, is tests/integration/test_monitoring_page.py.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from pharmaseg.check_drift import history
from pharmaseg.reports import monitoring_page, svg_charts
from pharmaseg.reports.svg_charts import Cell, Point, Scale, Series, TimeAxis

NOW = datetime(2030, 4, 1, tzinfo=UTC)
SINCE = NOW - timedelta(days=90)


@pytest.fixture(scope="module")
def production(original_model):
    model = copy.deepcopy(original_model[1])
    model.version = "1.1.0"
    return model


def _check(day: float, verdict="no_drift", **extra) -> dict:
    run_at = SINCE + timedelta(days=day)
    return {
        "report_id": f"msg-{day}",
        "run_at": run_at,
        "model_version": "1.0.0",
        "period_start": run_at - timedelta(days=7),
        "period_end": run_at,
        "rows_online": 40,
        "rows_batch": 0,
        "verdict": verdict,
        "features": [{"feature": "USD_CAP_avg", "p_adjusted": 0.01 if verdict == "drift" else 0.8}],
        "joint": {"p_adjusted": 0.5, "statistic": 0.1, "drift": False},
        "retrain_requested": verdict == "drift",
        "report_uri": f"gs://reports/drift/{run_at:%Y/%m/%d}/msg-{day}.html",
        "shadow": None,
        **extra,
    }


def _decision(day: float, version: str, decision: str, production_version: str | None, **extra) -> dict:
    return {
        "version": version,
        "evaluated_at": SINCE + timedelta(days=day),
        "decision": decision,
        "reason": None,
        "policy": "auto",
        "production_version": production_version,
        "decision_detail": decision,
        "decided_by": "gate",
        "movers": [],
        **extra,
    }


def _document(production, checks=(), decisions=(), **rows) -> dict:
    found = {"checks": list(checks), "decisions": list(decisions), **rows}
    return history.document(
        found, since=SINCE, until=NOW, production=production, alpha=0.05, correction="holm", built_by="msg-x"
    )


# -- the history document --------------------------------------------------------------------------


def test_production_over_the_window_starts_with_the_last_change_before_it(production):
    decisions = [
        _decision(-30, "1.0.0", "promoted", None),
        _decision(10, "1.1.0", "held", "1.0.0"),
        _decision(20, "1.1.0", "manual_promotion", "1.0.0", decided_by="alice", reason="reviewed"),
        _decision(30, "1.0.0", "rollback", "1.1.0", decided_by="bob"),
        _decision(40, "1.1.0", "promoted", "1.0.0"),
    ]
    doc = _document(production, decisions=decisions)
    assert [(s["version"], s["decision"]) for s in doc["serving"]] == [
        ("1.0.0", None),
        ("1.1.0", "manual_promotion"),
        ("1.0.0", "rollback"),
        ("1.1.0", "promoted"),
    ]
    assert doc["serving"][0]["from"] == SINCE.isoformat() and doc["serving"][-1]["to"] == NOW.isoformat()
    assert [d["decision"] for d in doc["decisions"]] == ["held", "manual_promotion", "rollback", "promoted"]
    json.dumps(doc)  # the JSON twin: nothing but JSON types


def test_without_an_earlier_change_the_window_opens_with_what_the_first_change_replaced(production):
    doc = _document(production, decisions=[_decision(5, "1.1.0", "forced", "0.9.0")])
    assert [s["version"] for s in doc["serving"]] == ["0.9.0", "1.1.0"]
    assert [s["version"] for s in _document(production)["serving"]] == ["1.1.0"]  # no decision: production now


def test_a_check_gets_its_segment_counts_rejects_and_shadow_record(production):
    shadow = {"version": "1.1.0", "disagreement": 0.25, "flips": []}
    checks = [_check(1), _check(2, "drift", shadow=json.dumps(shadow))]
    segments = [
        {"report_id": "msg-2", "source": "online", "segment": "Declining Markets", "n": 30},
        {"report_id": "msg-2", "source": "batch", "segment": "Declining Markets", "n": 5},
    ]
    batch = [{"report_id": "msg-2", "files": 2, "rows_read": 50, "unscored_files": 1}]
    rejects = [{"report_id": "msg-2", "kind": "COUNTRY", "n": 3}]
    doc = _document(production, checks, segments=segments, batch=batch, rejects=rejects)
    first, second = doc["checks"]
    assert first["segments"] == {"online": {}, "batch": {}} and first["batch"]["files"] == 0
    assert second["segments"]["online"] == {"Declining Markets": 30} and second["batch"]["rejects"] == {"COUNTRY": 3}
    assert second["shadow"] == shadow and second["p_adjusted"] == {"USD_CAP_avg": 0.01}
    assert doc["production"]["training_shares"].keys() == {s.name for s in production.segments}


def test_the_queries_bound_every_table_by_the_window_or_the_checks_periods():
    """Every table is partitioned on its time column: each query names it, so BigQuery prunes."""
    for sql, columns in (
        (history.checks_sql("p", "d"), ["run_at"]),
        (history.segments_sql("p", "d"), ["p.timestamp >= @first", "b.scored_at >= @first"]),
        (history.batch_runs_sql("p", "d"), ["u.started_at >= @first"]),
        (history.rejects_sql("p", "d"), ["u.started_at >= @first", "r.rejected_at >= @first"]),
        (history.decisions_sql("p", "d"), ["evaluated_at < @since", "evaluated_at >= @since"]),
    ):
        assert all(c in sql for c in columns), sql


# -- the charts -------------------------------------------------------------------------------------


def test_ticks_are_round_times_for_a_quarter_and_for_a_few_minutes():
    quarter = TimeAxis(SINCE, NOW).ticks()
    assert 2 <= len(quarter) <= 10
    assert all(t.hour == 0 and t.minute == 0 for t, _ in quarter) and quarter[0][1] == f"{quarter[0][0]:%d %b}"
    minutes = TimeAxis(NOW, NOW + timedelta(minutes=20, seconds=7)).ticks()
    assert all(t.second == 0 and t.minute % 5 == 0 for t, _ in minutes) and minutes[0][1] == "00:00"


def test_a_log_scale_keeps_to_six_ticks_and_puts_what_is_off_it_on_its_edge():
    scale = Scale(1e-12, 1.0, "p", log=True)
    assert len(scale.ticks()) <= 6 and scale.ticks()[0] == 1.0
    assert scale.fraction(0.0) == 0.0 and scale.fraction(1e-20) == 0.0 and scale.fraction(5.0) == 1.0
    assert [svg_charts.nice_top(v) for v in (69, 0.046, 3, 101)] == [80, 0.05, 4, 200]


def test_every_point_is_a_link_with_its_title_and_strings_are_escaped():
    axis = TimeAxis(SINCE, NOW)
    hostile = '<script>alert(1)</script> "x" & y'
    points = [Point(SINCE + timedelta(days=d), 0.5, hostile, f"reports/x{d}.html?a=1&b=2") for d in (1, 2)]
    svg = svg_charts.line_chart(axis, [Series(hostile, "#000", "s", points)], Scale(0, 1, hostile), label=hostile)
    svg += svg_charts.legend([Series(hostile, "#000", "s", points)])
    assert "<script>" not in svg and svg.count("&lt;script&gt;") >= 4
    assert svg.count('<a class="pt" href="reports/x1.html?a=1&amp;b=2"') == 1
    unlinked = svg_charts.line_chart(
        axis, [Series("s", "#000", "o", [Point(NOW, 1.0, "t")])], Scale(0, 1, "y"), label="l"
    )
    assert '<g class="pt"' in unlinked and "<a " not in unlinked


def test_band_cells_narrow_to_their_neighbours_and_drop_the_symbol_when_too_narrow():
    axis = TimeAxis(SINCE, NOW)
    sparse = svg_charts.band(
        axis, [Cell(SINCE + timedelta(days=d), "#0f0", "!", "t", "h") for d in (10, 50)], label="b"
    )
    assert 'width="21.0"' in sparse and sparse.count(">!</text>") == 2
    hours = [Cell(SINCE + timedelta(hours=h), "#0f0", "!", "t", "h") for h in range(0, 48, 4)]
    dense = svg_charts.band(axis, hours, label="b")
    assert ">!</text>" not in dense and dense.count('<a class="pt"') == len(hours)


# -- the page ---------------------------------------------------------------------------------------


def test_an_empty_window_says_so_in_every_panel(production):
    page = monitoring_page.to_html(_document(production))
    assert "0 drift checks in this window" in page and "0 decisions" in page
    assert "No version was under review" in page and "No decision in this window" in page
    assert 'Production now: <a href="reports/models/1.1.0/report.html">1.1.0</a>' in page


def test_points_link_to_the_reports_they_came_from(production):
    shadow = {
        "version": "1.2.0",
        "production_version": "1.0.0",
        "requests": 9,
        "countries": 2,
        "disagreement": 0.5,
        "market_weighted_disagreement": 0.7,
        "weights": "1.0.0",
        "flips": [
            {"country": "USA", "from": "H", "to": "S", "market_share": 0.6},
            {"country": "SCENARIO-1", "from": "H", "to": "S", "market_share": 0.0},
        ],
    }
    checks = [_check(1), _check(2, "drift"), _check(3, "insufficient_data", shadow=json.dumps(shadow))]
    checks[2].update(features=[], joint=None)
    segments = [
        {"report_id": c["report_id"], "source": "online", "segment": "Declining Markets", "n": 40} for c in checks
    ]
    doc = _document(production, checks, [_decision(2.5, "1.2.0", "held", "1.0.0")], segments=segments)
    page = monitoring_page.to_html(doc)
    hrefs = re.findall(r'<a class="pt" href="([^"]+)"', page)
    assert set(hrefs) == {c["report_uri"].replace("gs://reports/", "reports/") for c in checks} | {
        "reports/models/1.0.0/report.html",
        "reports/models/1.2.0/report.html",
    }
    assert '<g class="pt"' not in page
    assert "3 drift checks: 1 drift, 1 no_drift, 1 insufficient_data" in page
    assert "disagreed with production 1.0.0 on 50.0% of 9 requests, 70.0% of the market" in page
    assert "<td>USA</td>" in page and "SCENARIO-1" not in page  # a flip without a size is counted, not named
    assert "without a size (not among the model's TOTAL_SPEND countries): 1, listed in the drift report" in page
    # the rejected test in words, as its tooltip and as its name for a screen reader
    assert page.count("USD_CAP_avg adjusted p = 0.01 &lt; alpha 0.05: drift") == 2


def test_a_report_outside_the_served_kinds_is_not_linked(production):
    check = _check(1, report_uri="gs://elsewhere/../aliases/production.json")
    page = monitoring_page.to_html(_document(production, [check]))
    assert "aliases" not in re.sub(r"<title>.*?</title>", "", page) and '<g class="pt"' in page
