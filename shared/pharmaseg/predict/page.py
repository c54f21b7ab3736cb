"""The strategy page: one self-contained HTML page served by the prediction function.

Strategists would rather look than read JSON. The page shows the production model (and a newer
version with its gate decision), the segment map of the training countries (the model report's
projection), a country card with the explanation of any country or of figures typed into a
form, and the latest drift verdict with links to the reports, which the function streams from
the private reports bucket (``/reports/...``), and to the monitoring page (``/monitoring``), and
the market history: every country of the feature store's newest source in every complete window,
as a grid (``reports.history_grid``). Links are relative, so the page also works where the function's URL has a path (``https://REGION-PROJECT.cloudfunctions.net/pharmaseg-predict/app``).

Nothing here is imported on the prediction path: the service imports this module the first
time the page is asked for. The page loads nothing from the network (CSS and script from
``page_assets/`` are inlined); its script asks this same function for predictions. Every string
from data is escaped: in the HTML with ``reports.html.text``, and the script writes what the API answers
into the page with ``textContent`` only.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pharmaseg.model.cache import SEMVER, parse_version
from pharmaseg.model.changes import training_confidence
from pharmaseg.model.features import FEATURE_LABELS, Window
from pharmaseg.model.history import country_history
from pharmaseg.model.segments import segment_style
from pharmaseg.reports.history_grid import GRID_CSS, history_grid
from pharmaseg.reports.html import text
from pharmaseg.reports.objects import LATEST_DRIFT, model_report
from pharmaseg.reports.segment_map import segment_map

ASSETS = Path(__file__).parent / "page_assets"
TITLE = "Pharmaceutical Market Segmentation"
WIDTH, HEIGHT, PAD = 640, 440, 36
_SHAPES = {"v": "M0,5 L-5,-4 L5,-4 Z", "^": "M0,-5 L-5,4 L5,4 Z", "o": None, "s": "M-4,-4 H4 V4 H-4 Z"}


def _text(value: Any) -> str:
    """The page formats its own numbers: each value goes in as it is, escaped."""
    return text(value, digits=None)


def _newer_version(service, production_version: str) -> str | None:
    """The newest registered version above production, if any (a candidate awaiting or past its gate)."""
    source = getattr(service.models, "source", None)
    if not hasattr(source, "names"):
        return None
    versions = [n.split("/")[1] for n in source.names("models/", delimiter="/")]
    versions = sorted((v for v in versions if SEMVER.fullmatch(v)), key=parse_version)
    if not versions or parse_version(versions[-1]) <= parse_version(production_version):
        return None
    return versions[-1]


def _read_json(reader, name: str) -> dict[str, Any] | None:
    if reader is None:
        return None
    found = reader.read(name)
    return json.loads(found[0]) if found else None


def _svg(model, projection, confidence: dict[str, float]) -> str:
    xs, ys = projection.x, projection.y
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def sx(v: float) -> float:
        return PAD + (v - x0) / ((x1 - x0) or 1) * (WIDTH - 2 * PAD)

    def sy(v: float) -> float:
        return HEIGHT - PAD - (v - y0) / ((y1 - y0) or 1) * (HEIGHT - 2 * PAD)

    first, second = projection.variance_ratio
    parts = [
        f'<svg id="map" viewBox="0 0 {WIDTH} {HEIGHT}" role="group" aria-label="segment map of the training '
        f'countries; each point is a country, its shape and colour its segment">',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" class="axis">'
        f"principal component 1 ({first:.0%} of the variance)</text>",
        f'<text x="12" y="{HEIGHT / 2}" class="axis" transform="rotate(-90 12 {HEIGHT / 2})">'
        f"principal component 2 ({second:.0%})</text>",
    ]
    for country, x, y, cluster in zip(projection.countries, xs, ys, projection.clusters):
        name = model.segments[cluster].name
        label = f"{country}: {name}, confidence {confidence.get(country, 0):.2f}"
        parts.append(
            f'<g class="pt" tabindex="0" role="button" data-country="{_text(country)}" aria-label="{_text(label)}" '
            f'transform="translate({sx(x):.1f},{sy(y):.1f})"><title>{_text(label)}</title>{_marker(name)}'
            f'<text x="7" y="4">{_text(country)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _marker(segment: str) -> str:
    """The segment's point in the map and the legend: its colour and shape (as in the model report)."""
    colour, marker = segment_style(segment)
    path = _SHAPES.get(marker)
    return f'<circle r="5" fill="{colour}"/>' if path is None else f'<path d="{path}" fill="{colour}"/>'


def _legend(model) -> str:
    items = []
    for s in model.segments:
        items.append(
            f'<li><svg width="14" height="14" viewBox="-7 -7 14 14" aria-hidden="true">{_marker(s.name)}</svg> '
            f"{_text(s.name)} ({s.size}): {_text(s.recommendation)}</li>"
        )
    return f'<ul class="legend" aria-label="segments">{"".join(items)}</ul>'


def _model_section(model, newer: str | None, decision: dict[str, Any] | None) -> str:
    metrics = model.metrics
    stability = (metrics.get("stability") or {}).get("mean_ari")
    rows = [
        ("production version", model.version),
        ("window", model.window),
        ("trained", model.lineage.get("created_at")),
        ("silhouette", f"{metrics.get('silhouette', 0):.3f}"),
        ("stability (bootstrap ARI)", "-" if stability is None else f"{stability:.2f}"),
    ]
    if newer:
        verdict = (decision or {}).get("decision")
        detail = (decision or {}).get("detail") or "no decision recorded yet"
        rows.append(("newer version", f"{newer}: {verdict or 'undecided'} — {detail}"))
    cells = "".join(f"<tr><th scope='row'>{_text(k)}</th><td>{_text(v)}</td></tr>" for k, v in rows)
    links = (
        f'<p><a id="model-report" href="reports/{_text(model_report(model.version)[0])}">production model report</a>'
    )
    if newer:
        links += (
            f' · <a id="candidate-report" href="reports/{_text(model_report(newer)[0])}">report of {_text(newer)}</a>'
        )
    return f'<table class="facts">{cells}</table>{links}</p>'


def _drift_section(latest: dict[str, Any] | None, configured: bool) -> str:
    if not configured:
        return "<p>No reports bucket is configured for this function (PHARMASEG_REPORTS_BUCKET).</p>"
    monitoring = (
        '<p><a id="monitoring-page" href="monitoring">Monitoring page</a>: the drift checks, segment shares, '
        "batch rejects, versions and decisions of the last weeks, over time.</p>"
    )
    if latest is None:
        return "<p id='drift-verdict'>No drift check has run yet.</p>" + monitoring
    drifted = ", ".join(latest.get("drifted_features") or []) or "none"
    return (
        f"<p id='drift-verdict'>Latest drift check: <b>{_text(latest.get('verdict'))}</b> "
        f"on {_text(latest.get('run_at'))} "
        f"(model {_text(latest.get('model_version'))}); drifted: {_text(drifted)}. {_text(latest.get('reason'))}</p>"
        f'<p><a id="drift-report" href="reports/{_text(latest.get("html_object"))}">latest drift report</a></p>'
        f"{monitoring}"
    )


def _history_section(service, model) -> str:
    """Every country of the feature store's newest source, in every complete window, by production."""
    try:
        snapshot = service.models.snapshot()
    except Exception as exc:  # the page still shows everything else
        return f"<p id='history-note'>The feature store cannot be read now: {_text(str(exc)[:200])}</p>"
    if snapshot is None:
        return "<p id='history-note'>No source file has been stored in the feature store yet.</p>"
    years = len(Window.parse(model.window).years)
    if snapshot.window_years != years:
        return (
            f"<p id='history-note'>The feature store holds {snapshot.window_years}-year windows; "
            f"model {_text(model.version)} uses {years}.</p>"
        )
    borderline = service.settings.borderline_confidence
    histories = [
        country_history(model, c, snapshot.windows(c), borderline_below=borderline) for c in sorted(snapshot.countries)
    ]
    watched = [h for h in histories if h.watch]
    watch = "".join(f"<li><b>{_text(h.country)}</b>: {_text(h.watch_reason)}</li>" for h in watched)
    return (
        f"<p id='history-note'>Each {years}-year window of {_text(snapshot.source.uri)} (stored "
        f"{_text(snapshot.source.ingested_at[:10])}), scored by production {_text(model.version)}: where each market "
        "was, and where it is heading. The same history is in BigQuery (segment_history) and at "
        "<code>/countries/CODE/history</code>.</p>"
        f"{history_grid(histories)}"
        + (f"<h3>On watch: closing in on a lower segment</h3><ul id='watch'>{watch}</ul>" if watched else "")
    )


def build(service) -> bytes:
    """The page for the model the function serves now."""
    model = service._load()
    projection = segment_map(model)
    confidence = training_confidence(model)
    newer = _newer_version(service, model.version)
    reports = service.reports
    decision = (_read_json(reports, model_report(newer)[1]) or {}).get("decision") if newer else None
    latest = _read_json(reports, LATEST_DRIFT)
    options = "".join(
        f'<option value="{_text(c)}">{_text(c)} — {_text(model.segments[k].name)}</option>'
        for c, k in zip(projection.countries, projection.clusters)
    )
    page = _asset("strategy.html").format(
        title=_text(TITLE),
        model=_model_section(model, newer, decision),
        svg=_svg(model, projection, confidence),
        legend=_legend(model),
        options=options,
        drift=_drift_section(latest, reports is not None),
        history=_history_section(service, model),
        labels=json.dumps(FEATURE_LABELS).replace("<", "\\u003c"),  # inside <script>: no "</script>"
        script=_asset("strategy.js"),
        style=_asset("strategy.css") + GRID_CSS,
    )
    return page.encode()


@functools.cache
def _asset(name: str) -> str:
    """The page's template, script and style: plain files beside this module, inlined into the page."""
    return (ASSETS / name).read_text()
