"""The monitoring page over 90 days of history, as a person sees it: headless Chromium.

The history is written into a BigQuery emulator dataset by the project's own table writers: drift
checks as ``check_drift.rows.drift_row`` makes them from real verdicts (``verdict.evaluate`` and
``joint.compare`` on the simulated rows of each day) and ``gcp.bigquery.load_ndjson`` loads them;
the prediction log and batch predictions as ``pharmaseg_dev.simulate`` shapes them; batch runs and
rejects in their tables' schemas; every promotion decision through ``ModelVersionsTable.record``
(``decision_row``, the movers from ``model.changes.compare``); shadow records by
``check_drift.shadow.summarise``. The page is then built by the drift check's own code
(``history.fetch``, ``history.document``, ``monitoring_page.to_html``) and opened from a file.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pharmaseg.check_drift import history, joint, methods, rows, shadow, verdict
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg.gcp.bigquery import load_ndjson
from pharmaseg.model.changes import compare
from pharmaseg.reports import monitoring_page
from pharmaseg.retrain.pipeline import ModelVersionsTable, decision_row
from pharmaseg_dev import simulate
from tests.models import trained

NOW = datetime(2031, 4, 1, 6, 0, tzinfo=UTC)
DAYS = 90
SINCE = NOW - timedelta(days=DAYS)
DRIFT_DAYS = range(60, 67)  # USD_CAP_avg and PC_GDP_avg shifted by 1.5 standard deviations
SHIFT = {"USD_CAP_avg": 1.5, "PC_GDP_avg": 1.5}
REJECT_REASONS = (
    "USD_CAP_avg: 'n/a' is not a number",
    "COUNTRY: 'XX' is not an ISO 3166-1 alpha-3 code (optionally CODE:scenario)",
    "columns: 8 fields where the header has 10",
)
SHADOW_COUNTRIES = ("USA", "DEU", "FRA", "KOR", "ITA")
ROLLBACK_REASON = 'launch plans use the 2020 segments <b>until</b> Q3 & "the board" agrees'


def _at(day: float) -> datetime:
    return SINCE + timedelta(days=day)


def _decisions(v100, v110, v120) -> list[tuple[float, dict]]:
    """(day, model_versions row) of each decision: one before the window, then one of each kind."""
    forward, back = compare(v100, v110), compare(v110, v100)
    common = dict(message_id="", detail="", reason=None, policy="auto", decided_by="gate")
    made = [
        (-10.0, dict(version="1.0.0", decision="promoted", production_version=None, artifact=v100)),
        (20.3, dict(version="1.1.0", decision="held", production_version="1.0.0", artifact=v110, changes=forward)),
        (
            40.5,
            dict(
                version="1.1.0",
                decision="manual_promotion",
                production_version="1.0.0",
                artifact=v110,
                changes=forward,
                policy="manual",
                decided_by="alice",
                reason="reviewed with the market team: the USA and Germany move as the 2021 data says",
            ),
        ),
        (
            55.2,
            dict(
                version="1.0.0",
                decision="rollback",
                production_version="1.1.0",
                artifact=v100,
                changes=back,
                policy="manual",
                decided_by="bob",
                reason=ROLLBACK_REASON,
            ),
        ),
        (70.1, dict(version="1.2.0", decision="forced", production_version="1.0.0", artifact=v120, policy="force")),
        (80.4, dict(version="1.2.0", decision="skipped", production_version="1.2.0", artifact=v120)),
    ]
    out = []
    for day, fields in made:
        row = decision_row(**{**common, "message_id": f"m-{day}", "detail": f"{fields['decision']} (test)", **fields})
        row["evaluated_at"] = _at(day).isoformat()
        out.append((day, row))
    return out


def _serving(decisions, when: datetime, models) -> object:
    changes = [(_at(d), r["version"]) for d, r in decisions if r["decision"] in history.PRODUCTION_CHANGES]
    return models[[v for t, v in changes if t <= when][-1]]


def _shadow_rows(production, held, requests: int) -> list[dict]:
    """The shadow query's rows for code-alone requests: each model answers from its own training row."""
    out = []
    for i, country in enumerate(SHADOW_COUNTRIES):
        before = production.segment(
            int(production.predict(np.array([production.training_features[country]])).clusters[0])
        )
        after = held.segment(int(held.predict(np.array([held.training_features[country]])).clusters[0]))
        out.append(
            {
                "version": held.version,
                "country": country,
                "production": before.name,
                "shadow": after.name,
                "requests": requests + i,
            }
        )
    return out


def write_history(bq, project: str, dataset: str) -> dict:
    """90 days of history in ``dataset``: a check a day, a batch file a week, six decisions, shadow records."""
    from google.cloud import bigquery

    bq.create_dataset(bigquery.Dataset(f"{project}.{dataset}"), exists_ok=True)
    tables = {}
    for role in (
        "predictions_log",
        "batch_predictions",
        "batch_runs",
        "batch_rejects",
        "drift_reports",
        "model_versions",
    ):
        tables[role] = f"{project}.{dataset}.{cloud_resources.table_name(role)}"
        schema = [bigquery.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
        bq.create_table(bigquery.Table(tables[role], schema=schema))
    v100 = trained(n_bootstrap=0)[1]
    v100.version = "1.0.0"
    v110 = trained("2012-2021")[1]
    v110.version = "1.1.0"
    v120 = copy.deepcopy(v100)
    v120.version = "1.2.0"
    models = {m.version: m for m in (v100, v110, v120)}
    decisions = _decisions(v100, v110, v120)
    store = ModelVersionsTable(bq, tables["model_versions"])
    for _, row in decisions:
        store.record(row)
    held_from, reviewed_at = _at(20.3), _at(40.5)

    rng = np.random.default_rng(22)
    online, batch, runs, rejects, checks = [], [], [], [], []
    for day in range(DAYS):
        start, end = _at(day), _at(day + 1)
        production = _serving(decisions, end, models)
        refs = methods.references(production.reference, production.feature_names)
        n = 8 if day % 17 == 5 else int(rng.integers(35, 70))
        shift = SHIFT if day in DRIFT_DAYS else None
        values = simulate.sample_features(refs, n, rng, jitter=0.2, shift=shift)
        times = simulate.timestamps(n, start, end, rng)
        took = []  # what the drift check takes: the rows production (at the check) answered
        for i, when in enumerate(times):
            answered_by = _serving(decisions, when, models)
            online.extend(simulate.online_rows(values[i : i + 1], answered_by, [when]))
            if answered_by is production:
                took.append(values[i])
        n_batch = 0
        if day % 7 == 3:
            run_id = f"run-{day}"
            scored = simulate.sample_features(refs, 40, rng, jitter=0.2, shift=shift)
            started = start + timedelta(hours=12)
            batch.extend(
                simulate.batch_rows(scored, production, [started + timedelta(seconds=s) for s in range(40)], run_id)
            )
            bad = [REJECT_REASONS[(day + k) % 3] for k in range(day % 5 + 1)]
            for k, reason in enumerate(bad):
                rejects.append(
                    {
                        "run_id": run_id,
                        "source_uri": f"gs://inbox/incoming/{run_id}.csv",
                        "source_generation": 1,
                        "row_number": 41 + k,
                        "raw_record": "x",
                        "reason": reason,
                        "rejected_at": (started + timedelta(seconds=50)).isoformat(),
                    }
                )
            runs.append(
                {
                    "run_id": run_id,
                    "source_uri": f"gs://inbox/incoming/{run_id}.csv",
                    "source_generation": 1,
                    "layout": "features",
                    "scoring_path": "function",
                    "status": "succeeded",
                    "rows_read": 40 + len(bad),
                    "rows_scored": 40,
                    "rows_rejected": len(bad),
                    "model_version": production.version,
                    "started_at": started.isoformat(),
                    "finished_at": (started + timedelta(minutes=1)).isoformat(),
                }
            )
            took.extend(scored)
            n_batch = 40
        if day == 50:
            runs.append(
                {
                    "run_id": "run-failed",
                    "source_uri": "gs://inbox/incoming/broken.csv",
                    "source_generation": 1,
                    "status": "failed",
                    "started_at": (start + timedelta(hours=3)).isoformat(),
                    "error": "test",
                }
            )
        sample = np.array(took).reshape(-1, len(refs))
        raw = {r.name: sample[:, j] for j, r in enumerate(refs)}
        counts = np.bincount(production.predict(sample).clusters, minlength=production.k) if len(sample) else []
        joint_result = (
            joint.compare(joint.JointReference.from_artifact(production), sample, min_rows=30)
            if len(sample) >= 30
            else None
        )
        result = verdict.evaluate(
            refs,
            n=len(sample),
            raw=raw,
            segment_shares=production.reference["segment_shares"],
            n_ref=int(production.reference["n"]),
            cluster_counts=counts,
            joint=joint_result,
        )
        report_id = f"msg-{day:03d}"
        record = None
        if held_from < end < reviewed_at:
            record = shadow.summarise(_shadow_rows(production, v110, 3 + day % 4), production, v110)
            record.update(period_start=start.isoformat(), period_end=end.isoformat(), report_id=report_id)
        checks.append(
            rows.drift_row(
                {
                    "report_id": report_id,
                    "run_at": end.isoformat(),
                    "model_version": production.version,
                    "period": {"start": start.isoformat(), "end": end.isoformat()},
                    "rows": {"online": len(sample) - n_batch, "batch": n_batch, "total": len(sample)},
                    "result": result.to_dict(),
                    "retrain": {"requested": result.verdict == "drift"},
                    "report_uri": f"gs://reports/drift/{end:%Y/%m/%d}/{report_id}.html",
                    "shadow": record,
                }
            )
        )
    load_ndjson(bq, tables["predictions_log"], simulate.ndjson(online), "predictions_log")
    load_ndjson(bq, tables["batch_predictions"], simulate.ndjson(batch), "batch_predictions")
    load_ndjson(bq, tables["batch_runs"], runs, "batch_runs")
    load_ndjson(bq, tables["batch_rejects"], rejects, "batch_rejects")
    load_ndjson(bq, tables["drift_reports"], checks, "drift_reports")
    return {"tables": tables, "production": v120, "decisions": decisions, "rejects": rejects}


def build(bq, project: str, dataset: str, production) -> dict:
    """What the drift check does at NOW: the history document and its page."""
    found = history.fetch(bq, project, dataset, SINCE, NOW)
    return history.document(
        found, since=SINCE, until=NOW, production=production, alpha=0.05, correction="holm", built_by="msg-089"
    )


@pytest.fixture(scope="module")
def monitored(bigquery_server, tmp_path_factory):
    bq = bigquery_server.client()
    dataset = f"monitoring_{uuid.uuid4().hex[:8]}"
    written = write_history(bq, bigquery_server.project, dataset)
    doc = build(bq, bigquery_server.project, dataset, written["production"])
    path = tmp_path_factory.mktemp("monitoring") / "index.html"
    path.write_text(monitoring_page.to_html(doc))
    return {**written, "bq": bq, "doc": doc, "path": path}


def _query(monitored, sql: str) -> list[dict]:
    for role, table in monitored["tables"].items():
        sql = sql.replace(f"{{{role}}}", f"`{table}`")
    return [dict(r.items()) for r in monitored["bq"].query(sql).result()]


def test_the_page_renders_without_console_errors_and_every_point_is_a_link(monitored, page):
    page.goto(monitored["path"].as_uri())
    assert page.title() == "pharmaseg monitoring"
    assert page.errors == []
    points = page.locator("svg .pt")
    assert points.count() > 1000  # 90 checks in every chart, 9 feature charts, versions, decisions
    assert page.locator("svg g.pt").count() == 0  # a point without a link would be a <g>
    hrefs = points.evaluate_all("nodes => nodes.map(n => n.getAttribute('href'))")
    assert all(
        re.fullmatch(r"reports/(drift/2031/\d\d/\d\d/msg-\d{3}|models/1\.[012]\.0/report)\.html", h) for h in hrefs
    )
    titles = points.evaluate_all("nodes => nodes.map(n => n.querySelector('title').textContent)")
    assert all(titles)
    assert page.locator("#verdicts a.pt").count() == DAYS


def test_the_figures_in_the_text_are_the_rows(monitored, page):
    page.goto(monitored["path"].as_uri())
    verdicts = Counter(r["verdict"] for r in _query(monitored, "SELECT verdict FROM {drift_reports}"))
    assert verdicts["drift"] >= 5 and verdicts["insufficient_data"] >= 5 and verdicts["no_drift"] >= 50
    summary = page.locator("#summary-checks").inner_text()
    expected = f"{DAYS} drift checks: {verdicts['drift']} drift, {verdicts['no_drift']} no_drift, "
    assert summary.startswith(expected + f"{verdicts['insufficient_data']} insufficient_data.")
    decided = _query(
        monitored, f"SELECT decision FROM {{model_versions}} WHERE evaluated_at >= TIMESTAMP '{SINCE.isoformat()}'"
    )
    assert page.locator("#summary-decisions").inner_text().startswith(f"{len(decided)} decisions: ")
    assert page.locator("#decisions tr").count() == len(decided) + 1 == 6  # and the header
    last = _query(
        monitored, "SELECT shadow FROM {drift_reports} WHERE shadow IS NOT NULL ORDER BY run_at DESC LIMIT 1"
    )[0]
    record = json.loads(last["shadow"])
    said = f"disagreed with production 1.0.0 on {record['disagreement']:.1%} of {record['requests']} requests"
    assert said in page.locator("#summary-shadow").inner_text()
    assert f"market-weighted {record['market_weighted_disagreement']:.1%}" in page.locator("#shadow-last").inner_text()
    flips = page.locator("#shadow table tr")
    assert flips.count() == len(record["flips"]) + 1 and {f["country"] for f in record["flips"]} >= {"USA", "DEU"}


def test_each_check_counts_the_rows_it_took_and_the_rejects_of_its_period(monitored):
    doc = monitored["doc"]
    assert len(doc["checks"]) == DAYS
    for check in doc["checks"]:  # online and batch segment counts add up to the rows the check tested
        assert sum(check["segments"]["online"].values()) == check["rows"]["online"], check["report_id"]
        assert sum(check["segments"]["batch"].values()) == check["rows"]["batch"], check["report_id"]
    kinds = Counter(r["reason"].split(":")[0] for r in monitored["rejects"])
    assert kinds == sum((Counter(c["batch"]["rejects"]) for c in doc["checks"]), Counter())
    assert sum(c["batch"]["unscored_files"] for c in doc["checks"]) == 1  # the failed run of day 50


def test_production_over_time_with_every_decision_who_why_and_what_moved(monitored, page):
    doc = monitored["doc"]
    assert [s["version"] for s in doc["serving"]] == ["1.0.0", "1.1.0", "1.0.0", "1.2.0"]
    held = next(d for d in doc["decisions"] if d["decision"] == "held")
    assert {m["country"] for m in held["movers"]} >= {"USA", "DEU"} and held["moved_share"] > 0.5
    page.goto(monitored["path"].as_uri())
    rows = page.locator("#decisions tr")
    manual = rows.filter(has_text="manual_promotion").inner_text()
    assert "alice" in manual and "reviewed with the market team" in manual and f"{held['moved_share']:.1%}" in manual
    assert ROLLBACK_REASON in rows.filter(has_text="rollback").inner_text()  # shown as text, never as markup
    assert page.locator("#decisions b").count() == 0
    link = rows.filter(has_text="manual_promotion").locator("a")
    assert link.get_attribute("href") == "reports/models/1.1.0/report.html"
    labels = page.locator("#production svg text").all_text_contents()
    assert {"held 1.1.0", "manual_promotion 1.1.0", "rollback 1.0.0", "forced 1.2.0", "skipped 1.2.0"} <= set(labels)


def test_a_drift_check_through_the_stack_rebuilds_the_page_predict_serves_and_the_strategy_page_links(
    local_stack_env, page
):
    """drift topic -> check_drift (push) -> monitoring/index.html -> GET /monitoring on predict -> its links."""
    import requests

    from pharmaseg.gcp import clients as gcp
    from pharmaseg.model.registry import ModelRegistry
    from tests.polling import wait_for

    status = local_stack_env
    for name in ("predict", "check_drift"):
        if name not in status["functions"] or status["function_errors"].get(name):
            pytest.fail(f"{name} is not running: {status['function_errors']}")
    storage = gcp.storage_client(status["project"])
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    version = registry.register(trained()[1])
    registry.promote(version, reason="monitoring page test")
    url = status["functions"]["predict"]
    wait_for(lambda: requests.get(f"{url}/health", timeout=5).json().get("model_version") == version, timeout=60)

    publisher = gcp.publisher_client()
    topic = publisher.topic_path(status["project"], status["topics"]["drift"])
    body = json.dumps({"reason": "monitoring page test", "period_days": 1, "retrain": "never"}).encode()
    report_id = f"msg-{publisher.publish(topic, body).result(30)}"
    reports = storage.bucket(status["buckets"]["reports"])

    def built_by_this_check():
        figures = reports.get_blob("monitoring/index.json")  # read afresh each time: the object is replaced
        return figures is not None and json.loads(figures.download_as_bytes())["built_by"] == report_id

    wait_for(built_by_this_check, timeout=120)
    served = requests.get(f"{url}/monitoring", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("text/html")
    assert report_id in served.text and "pharmaseg monitoring" in served.text
    assert requests.get(f"{url}/reports/monitoring/index.json", timeout=10).json()["built_by"] == report_id

    page.goto(f"{url}/app")
    with page.expect_navigation():
        page.locator("#monitoring-page").click()
    assert page.url == f"{url}/monitoring" and page.title() == "pharmaseg monitoring"
    assert version in page.locator("#summary-production").inner_text()
    with page.expect_navigation():
        page.locator(f'#verdicts a.pt[href$="/{report_id}.html"]').click()
    assert "/reports/drift/" in page.url and report_id in page.url and "drift report" in page.title()
    assert page.errors == []
