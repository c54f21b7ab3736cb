"""The model report as a person sees it: rendered in headless Chromium from the real candidates."""

from __future__ import annotations

import copy
import json

import pytest

from pharmaseg.reports import model_report
from pharmaseg.retrain.gate import evaluate
from pharmaseg.retrain.pipeline import decision_row

HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


@pytest.fixture(scope="module")
def candidate(oecd_path):
    """The 2012-2021 retrain the gate holds for review (the USA and Germany move)."""
    from tests.models import trained

    artifact = trained("2012-2021", n_bootstrap=10)[1]
    artifact.version = "1.1.0"
    return artifact


@pytest.fixture(scope="module")
def production(original_model):
    artifact = copy.deepcopy(original_model[1])
    artifact.version = "1.0.0"
    return artifact


def document(candidate, production, reason="2021 data published"):
    gate = evaluate(candidate, production)
    row = decision_row(
        version="1.1.0",
        decision="held",
        message_id="m-1",
        detail="held for review: gate failed: " + ", ".join(gate.failed),
        production_version="1.0.0",
        reason=reason,
        policy="auto",
        decided_by="gate",
        artifact=candidate,
        gate=gate,
    )
    return model_report.build_document(candidate, production, row, borderline_below=0.15)


def test_the_json_twin_holds_what_the_page_shows(candidate, production):
    doc = json.loads(model_report.to_json(document(candidate, production)))
    movers = {m["country"]: m for m in doc["comparison"]["movers"]}
    assert set(movers) == {"USA", "DEU"} and movers["USA"]["market_share"] > movers["DEU"]["market_share"]
    assert sum(s["size"] for s in doc["segments"]) == len(doc["countries"]) == 34
    assert sum(s["market_share"] for s in doc["segments"]) == pytest.approx(1.0)
    assert sum(c["market_share"] for c in doc["countries"]) == pytest.approx(1.0)
    first, second = doc["map"]["variance_ratio"]
    assert 0 < second <= first < 1
    borderline = {c["country"] for c in doc["countries"] if c["borderline"]}
    assert borderline == {c["country"] for c in doc["countries"] if c["confidence"] < 0.15}
    assert not doc["decision"]["gate"]["checks"]["key_market_moves"]["passed"]


def test_the_report_renders_in_chromium_with_every_section(candidate, production, page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(model_report.to_html(document(candidate, production)))
    page.goto(path.as_uri())
    assert page.title() == "pharmaseg model 1.1.0 report"
    text = page.inner_text("body")
    for heading in ("Gate", "Changes against production", "Segments", "Segment profiles", "Segment map"):
        assert page.get_by_role("heading", name=heading, exact=True).count() == 1, heading
    assert "held for review" in text and "key_market_moves" in text
    movers = page.locator("table", has_text="production segment").locator("tr")
    assert movers.count() == 3  # header + USA + DEU
    assert movers.nth(1).inner_text().startswith("USA")
    images = page.locator("img")
    assert images.count() == 3
    assert all(images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0") for i in range(3))
    failed = page.locator("tr.fail").all_inner_texts()
    assert {row.split()[0] for row in failed} == {"market_agreement", "key_market_moves"}
    assert page.errors == []


def test_strings_from_data_are_escaped(candidate, production, page, tmp_path):
    path = tmp_path / "hostile.html"
    path.write_text(model_report.to_html(document(candidate, production, reason=HOSTILE)))
    page.goto(path.as_uri())
    assert page.evaluate("window.pwned") is None  # neither the script nor the onerror ran
    assert HOSTILE in page.inner_text("body")  # shown as the text it is
    assert page.locator("img[src=x]").count() == 0


def test_each_country_shows_its_stability_beside_its_confidence(candidate, production, page, tmp_path):
    doc = json.loads(model_report.to_json(document(candidate, production)))
    assert {c["country"]: c["stability"] for c in doc["countries"]} == candidate.country_stability()
    usa = {m["country"]: m for m in doc["comparison"]["movers"]}["USA"]
    assert usa["stability_before"] == production.country_stability()["USA"]
    assert usa["stability_after"] == candidate.country_stability()["USA"]
    older = copy.deepcopy(candidate)
    del older.metrics["stability"]["per_country"]  # an artifact written before training measured it
    path = tmp_path / "report.html"
    path.write_text(model_report.to_html(document(older, production)))
    page.goto(path.as_uri())
    countries = page.locator("table", has=page.get_by_role("columnheader", name="stability", exact=True))
    rows = countries.locator("tr").all_inner_texts()
    assert rows[0].split("\t")[2:4] == ["confidence", "stability"]
    assert {row.split("\t")[3] for row in rows[1:]} == {"n/a"}
