"""The model report as a person sees it: rendered in headless Chromium from the real candidates."""

from __future__ import annotations

import copy
import json

import pytest

from pharmaseg.model.history import CountryHistory, ScoredWindow, country_history
from pharmaseg.model.panel import read_panel
from pharmaseg.model.snapshot import FeatureSnapshot, Source
from pharmaseg.model.windows import all_windows
from pharmaseg.reports import model_report
from pharmaseg.reports.history_grid import segment_letter
from pharmaseg.reports.segment_history import HistoryInput
from pharmaseg.retrain.gate import evaluate
from pharmaseg.retrain.pipeline import decision_row

HOSTILE = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
CELLS = "[...document.querySelectorAll('table.sg-grid td.sg-cell')].map(td => [td.title, td.textContent])"


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


@pytest.fixture(scope="module")
def panel_rows(oecd_path):
    return read_panel(oecd_path).rows


def document(candidate, production, reason="2021 data published", history=None):
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
    return model_report.build_document(candidate, production, row, borderline_below=0.15, history=history)


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


def test_the_segment_history_renders_in_chromium(candidate, production, panel_rows, page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(model_report.to_html(document(candidate, production, history=HistoryInput(panel_rows))))
    page.goto(path.as_uri())
    assert page.get_by_role("heading", name="Segment history", exact=True).count() == 1
    grid = page.locator("table.sg-grid")
    assert grid.locator("tr").count() == 1 + 39  # the window ends, then each country with a complete window
    assert (
        grid.locator("th.sg-year").first.inner_text() == "1979"
        and grid.locator("th.sg-year").last.inner_text() == "2022"
    )
    irl = grid.locator("tr", has=page.locator("th", has_text="IRL")).locator("td.sg-downgrade")
    assert irl.count() == 2
    assert irl.last.get_attribute("title").startswith("IRL 2006-2015: Declining Markets, confidence ")
    assert irl.last.inner_text() == "\u25bcD"  # the letter and the arrow: never the colour alone
    watched = page.locator("table", has_text="why").locator("tr").all_inner_texts()[1:]
    assert [row.split()[0] for row in watched] == ["CYP", "DEU", "ITA", "JPN", "USA"]
    assert "shrank" in watched[-1]
    text = page.inner_text("body")
    assert "Production 1.0.0 scores the same 880 country-windows; this version puts 119 of them (13.5%)" in text
    changes = page.locator("table", has_text="this version").filter(has_text="windows").locator("tr")
    assert changes.nth(1).inner_text().startswith("USA\t52.4%\t1991-2000 .. 1993-2002 (3 windows)")
    assert page.errors == []


def test_json_and_html_give_the_segments_country_history_gives(candidate, production, panel_rows, page, tmp_path):
    doc = document(candidate, production, history=HistoryInput(panel_rows))
    snapshot = FeatureSnapshot.from_table(all_windows(panel_rows, 10), Source("file", "sha", "now"))
    expected = {
        country: country_history(candidate, country, snapshot.windows(country), borderline_below=0.15)
        for country in snapshot.countries
    }
    history = json.loads(model_report.to_json(doc))["history"]
    assert set(history["countries"]) == set(expected)
    for country, h in expected.items():
        shown = history["countries"][country]
        assert shown["segments"] == {w.window: w.segment for w in h.windows}, country
        assert [(c["window"], c["change"]) for c in shown["changes"]] == [(w.window, w.change) for w in h.changes]
        assert (shown["watch"], shown["watch_reason"]) == (h.watch, h.watch_reason)
    path = tmp_path / "report.html"
    path.write_text(model_report.to_html(doc))
    page.goto(path.as_uri())
    cells = page.evaluate(CELLS)
    assert len(cells) == sum(len(h.windows) for h in expected.values()) == 880
    for title, letter in cells:
        country, window = title.split(":")[0].split()
        scored = next(w for w in expected[country].windows if w.window == window)
        assert title.split(": ")[1].startswith(scored.segment + ",")
        assert letter.lstrip("\u25b2\u25bc") == segment_letter(scored.segment)


def test_history_strings_from_data_are_escaped(candidate, production, page, tmp_path):
    def hostile(model_version):
        windows = [
            ScoredWindow(
                f"{year}-{year + 9}", HOSTILE, 0, 0.5, False, HOSTILE, 0.2, "downgrade" if year > 2010 else None
            )
            for year in (2010, 2011, 2012)
        ]
        return [CountryHistory(HOSTILE, model_version, windows, True, HOSTILE)]

    history = HistoryInput(candidate=hostile("1.1.0"), production=[])
    path = tmp_path / "hostile.html"
    path.write_text(model_report.to_html(document(candidate, production, history=history)))
    page.goto(path.as_uri())
    assert page.evaluate("window.pwned") is None
    assert page.locator("img[src=x]").count() == 0
    assert HOSTILE in page.locator("table", has_text="why").inner_text()
    assert all(HOSTILE in title for title, _ in page.evaluate(CELLS))
    assert page.errors == []


def test_without_the_source_data_the_section_says_so(candidate, production):
    doc = document(candidate, production)
    assert doc["history"] is None
    assert "Not drawn: this report was written without the source data." in model_report.to_html(doc)
