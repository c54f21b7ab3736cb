"""The drift check's shadow record: disagreement per request and weighted by market, and the flips."""

from __future__ import annotations

import copy

import pytest

from pharmaseg.check_drift.shadow import newest_version, summarise
from pharmaseg.model.segments import HIGH_VALUE, STABLE
from pharmaseg.reports.shadow import shadow_section
from tests.models import trained

H, S = HIGH_VALUE, STABLE


@pytest.fixture(scope="module")
def models(original_model):
    production = copy.deepcopy(original_model[1])
    production.version = "1.0.0"
    held = trained("2012-2021")[1]
    held.version = "1.1.0"
    return production, held


def row(country, production, shadow, requests, version="1.1.0"):
    return {"version": version, "country": country, "production": production, "shadow": shadow, "requests": requests}


def test_disagreement_counts_requests_and_weighs_countries_by_market(models):
    production, held = models
    rows = [row("USA", H, S, 3), row("DEU", H, S, 1), row("DEU", H, H, 1), row("FRA", S, S, 5)]
    record = summarise(rows, production, held)
    assert record["version"] == "1.1.0" and record["requests"] == 10 and record["countries"] == 3
    assert record["disagreement"] == pytest.approx(4 / 10)
    sizes = {c: held.markets.sizes[c] for c in ("USA", "DEU", "FRA")}
    total = sum(sizes.values())
    expected = sizes["USA"] / total * 1.0 + sizes["DEU"] / total * 0.5
    assert record["market_weighted_disagreement"] == pytest.approx(expected)
    assert [f["country"] for f in record["flips"]] == ["USA"]  # DEU: disagreed on half its requests, not most
    assert record["flips"][0] == {
        "country": "USA",
        "from": H,
        "to": S,
        "market_share": pytest.approx(sizes["USA"] / total),
    }


def test_only_the_summarised_version_counts_and_the_newest_is_chosen(models):
    production, held = models
    rows = [row("USA", H, S, 2), row("USA", H, H, 7, version="1.0.5")]
    assert newest_version(rows) == "1.1.0"
    assert summarise(rows, production, held)["requests"] == 2
    assert summarise([], production, held) is None and newest_version([]) is None


def test_the_report_section_escapes_and_names_the_flips(models):
    production, held = models
    record = summarise([row("<b>X", H, S, 1)], production, held)
    html = "".join(shadow_section(record))
    assert "&lt;b&gt;X" in html and "<b>X" not in html and "1.1.0" in html
