"""The strategy page as a strategist uses it: headless Chromium against the running stack.

The predict function of the session's local stack serves the page; the test gives it a
production model with its model report and runs a drift check through the stack's check_drift
function, so every part of the page has real data behind it. The market-history tests store the
OECD panel in the feature store with the retrain function's own ``feature_store.ingest`` and check
that the history endpoint, the page's grid, the model report's section and BigQuery's
``segment_history`` give every country the same segment in every window.
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from pharmaseg.model.features import FEATURE_LABELS
from pharmaseg.model.registry import ModelRegistry
from tests.models import trained
from tests.polling import wait_for


@pytest.fixture(scope="module")
def page_stack(local_stack):
    """The stack with a production model, its report, and a drift report the page can link to."""
    from google.cloud import bigquery

    from pharmaseg.gcp import clients as gcp
    from pharmaseg.reports.model_report import ModelReportWriter

    status = local_stack
    for name in ("predict", "check_drift"):
        if name not in status["functions"] or status["function_errors"].get(name):
            pytest.fail(f"{name} is not running: {status['function_errors']}")
    storage = gcp.storage_client(status["project"], endpoint=status["emulators"]["storage"])
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    model = trained(n_bootstrap=10)[1]  # with refits: the card shows each country's stability
    version = registry.register(copy.deepcopy(model))
    registry.promote(version, reason="strategy page tests")
    ModelReportWriter(storage, status["buckets"]["reports"], borderline_below=0.2).publish(registry.load(version), None)
    publisher = gcp.publisher_client(endpoint=status["env"]["PUBSUB_EMULATOR_HOST"])
    topic = publisher.topic_path(status["project"], status["topics"]["drift"])
    message_id = publisher.publish(topic, json.dumps({"reason": "page test", "period_days": 1}).encode()).result(30)
    bq = gcp.bigquery_client(status["project"], endpoint=status["emulators"]["bigquery"])
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", f"msg-{message_id}")]
    )
    sql = f"SELECT report_uri FROM `{status['tables']['drift_reports']}` WHERE report_id = @id"
    wait_for(lambda: list(bq.query(sql, job_config=config).result()), timeout=120)
    url = status["functions"]["predict"]
    import requests

    wait_for(lambda: requests.get(f"{url}/health", timeout=5).json().get("model_version") == version, timeout=60)
    time.sleep(1.5)  # the page is kept for the alias TTL (1 s in the tests' stack): let it rebuild
    return {"url": url, "version": version}


def test_the_page_loads_with_the_model_the_map_and_no_console_errors(page_stack, page):
    page.goto(page_stack["url"] + "/")  # a browser asks for text/html: the page, not JSON
    assert "Pharmaceutical Market Segmentation" in page.title()
    facts = page.locator("table.facts").inner_text()
    assert page_stack["version"] in facts and "2011-2020" in facts and "silhouette" in facts
    assert page.locator("#map .pt").count() == 36
    legend = page.locator(".legend").inner_text()
    assert all(name in legend for name in ("Declining Markets", "Stable Moderate Markets", "High-Value Pharma Markets"))
    assert page.errors == []


def test_selecting_germany_shows_its_segment_and_reasons(page_stack, page):
    page.goto(page_stack["url"] + "/app")
    page.get_by_label("Country (the training countries").select_option("DEU")
    card = page.locator("#card")
    card.locator(".segment").wait_for()
    assert card.locator(".segment").inner_text() == "High-Value Pharma Markets"
    assert card.locator("#reasons tr").count() == 4  # header + the top 3
    text = card.inner_text()
    assert "runner-up" in text and "What would move it" in text
    assert "its own figures in the model's training data (2011-2020)" in text  # input_kind "stored", in words
    first = card.locator("#reasons tr").nth(1).locator("td").first.inner_text()
    feature = first.splitlines()[-1]
    assert first.splitlines()[0] == FEATURE_LABELS[feature]  # plain words above the column name
    assert "shares add up to 100%" in text
    moves = card.locator("#what-if li")
    assert moves.count() == 9  # every feature of the smallest move into the runner-up, largest first
    assert moves.first.inner_text().startswith("Share of health spending, year-to-year spread (%)")
    assert "below zero, which no market can have" in card.inner_text()  # that spread would end at -0.04
    assert page.locator('.pt[data-country="DEU"]').get_attribute("class") == "pt selected"
    assert page.errors == []


def test_a_map_point_is_reached_and_chosen_with_the_keyboard(page_stack, page):
    page.goto(page_stack["url"] + "/app")
    page.locator('.pt[data-country="FRA"]').focus()
    page.keyboard.press("Enter")
    page.locator("#card .segment").wait_for()
    assert page.locator("#card .country").inner_text() == "FRA"
    assert page.locator("#card .segment").inner_text() == "Stable Moderate Markets"


def test_the_market_form_with_three_headline_figures_shows_an_answer(page_stack, page):
    page.goto(page_stack["url"] + "/app")
    page.get_by_label("Market name").fill("BRA")
    page.get_by_label("Pharmaceutical spending per head (USD at PPP)").fill("240")
    page.get_by_label("Share of health spending (%)").fill("18")
    page.get_by_label("Share of GDP (%)").fill("1.6")
    page.get_by_role("button", name="Score this market").click()
    page.locator("#card .segment").wait_for()
    text = page.locator("#card").inner_text()
    assert "BRA" in text and "only 3 of 9 features" in text and "provisional" in text and "PC_GDP_avg" in text
    assert page.locator("#card .segment").inner_text() in {
        "Declining Markets",
        "Stable Moderate Markets",
        "High-Value Pharma Markets",
    }
    assert page.errors == []


def test_the_drift_and_model_report_links_open_the_reports(page_stack, page):
    page.goto(page_stack["url"] + "/app")
    assert "Latest drift check" in page.locator("#drift-verdict").inner_text()
    with page.expect_navigation():
        page.locator("#drift-report").click()
    assert "/reports/drift/" in page.url and "drift report" in page.title()
    page.goto(page_stack["url"] + "/app")
    with page.expect_navigation():
        page.locator("#model-report").click()
    assert page.title() == f"pharmaseg model {page_stack['version']} report"
    assert page.errors == []


def test_reports_outside_the_two_kinds_are_not_served(page_stack):
    import requests

    for path in ("/reports/../aliases/production.json", "/reports/keys/x.json", "/reports/models/1.0.0/model.json"):
        response = requests.get(page_stack["url"] + path, timeout=10)
        assert response.status_code == 404 and response.json()["error"] == "not found"


@pytest.fixture(scope="module")
def stored_history(page_stack, local_stack):
    """The OECD panel stored under a sha256 of its own (rows shuffled), with production's history."""
    import random
    import uuid

    from pharmaseg.feature_store import Targets, ingest
    from pharmaseg.gcp import clients as gcp
    from pharmaseg.model.panel import read_panel
    from pharmaseg.reports.model_report import ModelReportWriter
    from pharmaseg.reports.segment_history import HistoryInput
    from tests.unit.conftest import DATA

    status = local_stack
    storage = gcp.storage_client(status["project"], endpoint=status["emulators"]["storage"])
    bq = gcp.bigquery_client(status["project"], endpoint=status["emulators"]["bigquery"])
    registry = ModelRegistry(status["buckets"]["models"], client=storage)
    production = registry.load(page_stack["version"])
    lines = DATA.read_bytes().splitlines(keepends=True)
    body = lines[1:]
    random.Random(uuid.uuid4().hex).shuffle(body)
    data = b"".join([lines[0], *body])
    targets = Targets.connect(
        bigquery_client=bq,
        storage_client=storage,
        project=status["project"],
        dataset=status["dataset"],
        models_bucket=status["buckets"]["models"],
        borderline_below=0.2,
    )
    result = ingest(data, "gs://tests/oecd-shuffled.csv", targets, generation=1, production=production)
    assert result.rows_written == 1350 and result.snapshot_written and result.history_rows > 0
    writer = ModelReportWriter(storage, status["buckets"]["reports"], borderline_below=0.2)
    writer.publish(production, None, history=HistoryInput(read_panel(DATA).rows))
    report = json.loads(
        storage.bucket(status["buckets"]["reports"])
        .blob(f"models/{production.version}/report.json")
        .download_as_bytes()
    )
    sql = (
        f"SELECT country, `window`, segment FROM `{status['tables']['segment_history']}` "
        f"WHERE model_version = '{production.version}' AND source_sha256 = '{result.source.sha256}'"
    )
    table: dict[str, dict[str, str]] = {}
    for row in bq.query(sql).result():
        table.setdefault(row["country"], {})[row["window"]] = row["segment"]
    time.sleep(1.5)  # the snapshot and the page are re-read after the alias TTL (1 s in the tests' stack)
    return {"report": report, "table": table, "sha256": result.source.sha256, "version": production.version}


def test_history_endpoint_grid_report_and_bigquery_agree(page_stack, stored_history, page):
    import requests

    url = page_stack["url"]
    table = stored_history["table"]
    assert len(table) == 39 and sum(len(w) for w in table.values()) == 880  # every complete country-window
    report = {c: h["segments"] for c, h in stored_history["report"]["history"]["countries"].items()}
    assert report == table
    for country, windows in table.items():
        answer = requests.get(f"{url}/countries/{country}/history", timeout=10).json()
        assert answer["source_sha256"] == stored_history["sha256"] and answer["model_version"] == page_stack["version"]
        assert {w["window"]: w["segment"] for w in answer["windows"]} == windows, country
    page.goto(url + "/app")
    cells = page.locator("#h-history ~ * td.sg-cell, section:has(#h-history) td.sg-cell")
    shown: dict[str, dict[str, str]] = {}
    for title in cells.evaluate_all("cells => cells.map(c => c.title)"):
        country, window, rest = title.split(" ", 2)
        shown.setdefault(country, {})[window.rstrip(":")] = rest.split(",", 1)[0]
    assert shown == table
    assert page.errors == []


def test_irelands_downgrades_are_marked_in_the_grid_and_the_endpoint(page_stack, stored_history, page):
    import requests

    answer = requests.get(page_stack["url"] + "/countries/IRL/history", timeout=10).json()
    changes = [(w["window"], w["change"]) for w in answer["windows"] if w["change"]]
    assert ("2004-2013", "downgrade") in changes and ("2006-2015", "downgrade") in changes
    page.goto(page_stack["url"] + "/app")
    cell = page.locator('section:has(#h-history) td[title^="IRL 2006-2015"]')
    assert cell.inner_text() == "\u25bcD" and "downgrade" in cell.get_attribute("title")
    assert page.errors == []


def test_a_latest_window_answer_and_the_card_show_where_the_figures_came_from(page_stack, stored_history, page):
    import requests

    answer = requests.post(page_stack["url"] + "/predict", json={"country": "IRL", "window": "latest"}, timeout=10)
    origin = answer.json()["features_from"]
    assert answer.status_code == 200 and origin["kind"] == "feature store" and origin["window"] == "2012-2021"
    assert origin["source_sha256"] == stored_history["sha256"]
    page.goto(page_stack["url"] + "/app")
    page.get_by_label("Country (the training countries").select_option("USA")
    card = page.locator("#card")
    card.locator(".segment").wait_for()
    text = card.inner_text()
    assert "of training's resamples keep it in this segment" in text and "window 2011-2020 (training row" in text
    assert page.errors == []
