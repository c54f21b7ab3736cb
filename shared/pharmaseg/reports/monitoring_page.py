"""The monitoring page: the model's recent weeks on one page, every point a link to its report.

Each drift check, batch run and promotion decision has its own report or row; nobody could see
them over time. The page draws the document ``check_drift.history`` gathers from BigQuery (and
writes beside it as the JSON twin), so page and twin cannot disagree and this module needs neither
BigQuery nor the drift check. The drift check builds it; the prediction function streams it at
``/monitoring``. Links are relative (``reports/...``), as the strategy page's are, so they work
wherever the function's URL puts the page.

Meaning never rests on colour alone: a verdict is a symbol on its colour, a test that rejected is a
triangle where the others are circles, series differ in marker shape and are named in a legend,
and every point's title says in words what it is. Every string goes through ``html.text``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pharmaseg.model.features import FEATURE_LABELS
from pharmaseg.model.segments import segment_style
from pharmaseg.reports.html import table, text
from pharmaseg.reports.objects import REPORT_PATTERN, SEMVER_PATTERN, model_report
from pharmaseg.reports.pictures import NO_ICON
from pharmaseg.reports.svg_charts import (
    CHART_CSS,
    MARKERS,
    Cell,
    Event,
    Point,
    Rule,
    Scale,
    Series,
    Span,
    TimeAxis,
    band,
    legend,
    line_chart,
    nice_top,
    timeline,
)

TITLE = "pharmaseg monitoring"
# (colour, symbol on the band, what it means)
VERDICTS = {
    "drift": ("#c0392b", "!", "drift: a test rejected at the family-wise alpha"),
    "no_drift": ("#1e8449", "\u2713", "no drift: no test rejected"),
    "insufficient_data": ("#7f7f7f", "?", "insufficient data: too few rows for a verdict"),
}
# (colour, marker) of each decision on the production timeline
DECISIONS = {
    "promoted": ("#1e8449", "^"),
    "forced": ("#b9770e", "d"),
    "held": ("#c0392b", "s"),
    "manual_promotion": ("#1f5fa8", "o"),
    "rollback": ("#7d3c98", "v"),
    "skipped": ("#7f7f7f", "x"),
}
# Colour-blind-safe colours (Okabe-Ito) for series without colours of their own (reject kinds, versions).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
_REPORT = re.compile(REPORT_PATTERN)
_VERSION = re.compile(SEMVER_PATTERN)

STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;color:#222;max-width:1000px;
padding:0 1em}h1{margin-bottom:.2em}h2{margin:1.6em 0 .3em}h3{margin:.8em 0 .2em;font-size:14px}
.note{color:#555;font-size:13px;margin:.2em 0 .5em}table{border-collapse:collapse;margin:.6em 0;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.grid3{display:grid;grid-template-columns:repeat(auto-fill,minmax(310px,1fr));gap:0 12px}
.grid3 .note{min-height:2.6em}#decisions table{width:100%}#decisions td:nth-child(-n+5){white-space:nowrap}
#decisions td:nth-child(6){overflow-wrap:anywhere;min-width:14em}
#decisions td:nth-child(7){min-width:14em}
#summary li{margin:.2em 0}.key{display:inline-block;min-width:1.3em;text-align:center;color:#fff;font-weight:bold;
border-radius:3px;margin:0 .3em 0 .8em}a:focus{outline:3px solid #f0a500}
"""


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _day(value: str) -> str:
    return f"{_when(value):%Y-%m-%d %H:%M} UTC"


def _short(value: str) -> str:
    return f"{_when(value):%Y-%m-%d %H:%M}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _drift_href(uri: str | None) -> str | None:
    """The relative link of a drift report's gs:// URI, when it names a report the function serves."""
    name = (uri or "").removeprefix("gs://").partition("/")[2]
    return f"reports/{name}" if _REPORT.fullmatch(name) else None


def _model_href(version: str | None) -> str | None:
    return f"reports/{model_report(version)[0]}" if version and _VERSION.fullmatch(version) else None


def _link(href: str | None, label: str) -> str:
    return f'<a href="{text(href, digits=None)}">{text(label, digits=None)}</a>' if href else text(label)


def _check_title(check: Mapping[str, Any]) -> str:
    return f"check {check['report_id']} at {_day(check['run_at'])} ({check['verdict']})"


# -- panels ---------------------------------------------------------------------------------------


def _summary(doc: Mapping[str, Any]) -> str:
    checks, decisions = doc["checks"], doc["decisions"]
    verdicts = Counter(c["verdict"] for c in checks)
    items = []
    if checks:
        last = checks[-1]
        counted = ", ".join(f"{verdicts.get(v, 0)} {v}" for v in VERDICTS)
        items.append(
            f"<li id='summary-checks'>{len(checks)} drift checks: {text(counted)}. The latest, on "
            f"{text(_day(last['run_at']))}, said <b>{text(last['verdict'])}</b> "
            f"({_link(_drift_href(last['report_uri']), 'its report')}).</li>"
        )
    else:
        items.append("<li id='summary-checks'>0 drift checks in this window.</li>")
    kinds = Counter(d["decision"] for d in decisions)
    counted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    items.append(f"<li id='summary-decisions'>{len(decisions)} decisions{': ' + text(counted) if kinds else ''}.</li>")
    version, window = doc["production"]["version"], doc["production"]["window"]
    items.append(
        f"<li id='summary-production'>Production now: {_link(_model_href(version), version)}"
        f" (trained on {text(window)}).</li>"
    )
    shadowed = [c for c in checks if c["shadow"]]
    if shadowed:
        check = shadowed[-1]
        shadow = check["shadow"]
        items.append(
            f"<li id='summary-shadow'>Last shadow record ({text(_day(check['run_at']))}): version "
            f"{text(shadow['version'])} disagreed with production {text(shadow['production_version'])} on "
            f"{_pct(shadow['disagreement'])} of {text(shadow['requests'])} requests, "
            f"{_pct(shadow['market_weighted_disagreement'])} of the market.</li>"
        )
    else:
        items.append("<li id='summary-shadow'>No version was under review in this window.</li>")
    return f"<ul id='summary'>{''.join(items)}</ul>"


def _verdict_panel(doc, axis: TimeAxis) -> str:
    cells = []
    for check in doc["checks"]:
        colour, symbol, meaning = VERDICTS.get(check["verdict"], ("#333", "-", check["verdict"]))
        drifted = [f for f, p in check["p_adjusted"].items() if p is not None and p < doc["policy"]["alpha"]]
        title = f"{_check_title(check)}: {meaning}" + (f"; drifted: {', '.join(drifted)}" if drifted else "")
        cells.append(Cell(_when(check["run_at"]), colour, symbol, title, _drift_href(check["report_uri"])))
    keys = "".join(
        f"<span class='key' style='background:{colour}'>{text(symbol)}</span>{text(meaning)}"
        for colour, symbol, meaning in VERDICTS.values()
    )
    return band(axis, cells, label="drift verdict of each check over time") + f"<p class='note'>{keys}</p>"


def _p_scale(values: Sequence[float | None], alpha: float) -> Scale:
    """log10 from a power of ten below the smallest p-value (and alpha / 10) up to 1."""
    smallest = min([alpha / 10, *(v for v in values if v)])
    low = 10.0 ** max(math.floor(math.log10(smallest)), -12)
    return Scale(low, 1.0, "adjusted p-value", lambda v: "1" if v == 1 else f"1e{round(math.log10(v))}", log=True)


def _p_points(checks, values: Sequence[float | None], alpha: float, what: str) -> list[Point]:
    """A point per check that tested ``what`` (an untested check has no p-value): a triangle where it rejected."""
    return [_p_point(c, v, alpha, what) for c, v in zip(checks, values) if v is not None]


def _p_point(check, value: float, alpha: float, what: str) -> Point:
    rejected = value < alpha
    title = f"{_check_title(check)}: {what} adjusted p = {text(value, tiny=1e-3)}" + (
        f" < alpha {alpha:g}: drift" if rejected else ""
    )
    return Point(
        _when(check["run_at"]), value, title, _drift_href(check["report_uri"]), shape="^" if rejected else None
    )


def _features_panel(doc, axis: TimeAxis) -> str:
    alpha = doc["policy"]["alpha"]
    checks = doc["checks"]
    scale = _p_scale([p for c in checks for p in c["p_adjusted"].values()], alpha)
    rule = Rule(alpha, f"alpha {alpha:g}", "#c0392b")
    small = TimeAxis(axis.start, axis.end, width=320, left=44, right=72)
    charts = []
    for feature in doc["features"]:
        points = _p_points(checks, [c["p_adjusted"].get(feature) for c in checks], alpha, feature)
        series = Series(feature, "#0072b2", "o", points)
        label = f"{feature}: adjusted p-value of each check"
        chart = line_chart(small, [series], scale, label=label, rules=[rule], height=150)
        charts.append(
            f"<div><h3>{text(feature)}</h3><p class='note'>{text(FEATURE_LABELS.get(feature, ''))}</p>{chart}</div>"
        )
    family = (
        f"<p class='note'>alpha {alpha:g} is the family-wise false-alarm rate of one check, with the "
        f"{text(doc['policy']['correction'])} correction across the {len(doc['features'])} features, the segment "
        "shares and the joint test: a p-value is drawn as the check corrected it.</p>"
    )
    return (
        family
        + f"<div class='grid3'>{''.join(charts)}</div>"
        + legend([Series("adjusted p-value", "#0072b2", "o", ()), Series("below alpha: drift", "#0072b2", "^", ())])
    )


def _joint_panel(doc, axis: TimeAxis) -> str:
    alpha = doc["policy"]["alpha"]
    checks = [c for c in doc["checks"] if c["joint"]]
    if not checks:
        return "<p class='note'>No check in this window tested the joint structure (too few rows).</p>"
    points = _p_points(checks, [c["joint"]["p_adjusted"] for c in checks], alpha, "joint structure")
    scale = _p_scale([p.value for p in points], alpha)
    series = [
        Series("joint structure (PCA reconstruction error), adjusted p-value", "#7d3c98", "o", points),
        Series("below alpha: drift", "#7d3c98", "^", ()),
    ]
    rules = [Rule(alpha, f"alpha {alpha:g}", "#c0392b")]
    return line_chart(axis, series, scale, label="joint test's adjusted p-value", rules=rules) + legend(series)


def _share_chart(doc, axis: TimeAxis, source: str) -> str:
    training = doc["production"]["training_shares"]
    names = list(training) + sorted({s for c in doc["checks"] for s in c["segments"][source]} - set(training), key=str)
    series, totals = [], {c["report_id"]: sum(c["segments"][source].values()) for c in doc["checks"]}
    for name in names:
        colour, shape = segment_style(name)
        points = []
        for c in doc["checks"]:
            total = totals[c["report_id"]]
            if not total:  # no row of this source in the period: no share
                continue
            count = c["segments"][source].get(name, 0)
            share = count / total
            title = (
                f"{_check_title(c)}: {source} {name} {_pct(share)} ({count} of {total} rows); "
                f"training {_pct(training.get(name))}"
            )
            points.append(Point(_when(c["run_at"]), share, title, _drift_href(c["report_uri"])))
        series.append(Series(f"{name} ({source})", colour, shape if shape in MARKERS else "o", points))
    rules = [Rule(share, f"{name.split()[0]} {share:.0%}", segment_style(name)[0]) for name, share in training.items()]
    scale = Scale(0.0, 1.0, f"share of {source} rows", lambda v: f"{v:.0%}")
    chart = line_chart(axis, series, scale, label=f"segment shares, {source}, against training", rules=rules)
    return chart + legend(series)


def _segments_panel(doc, axis: TimeAxis) -> str:
    return "".join(
        f"<h3>{title}</h3>{_share_chart(doc, axis, source)}"
        for source, title in (("online", "Online predictions"), ("batch", "Batch files"))
    )


def _rows_panel(doc, axis: TimeAxis) -> str:
    checks = doc["checks"]
    series = []
    for source, shape, colour in (("online", "o", "#0072b2"), ("batch", "s", "#e69f00")):
        points = [
            Point(
                _when(c["run_at"]),
                c["rows"][source],
                f"{_check_title(c)}: {c['rows'][source]} {source} rows in its period",
                _drift_href(c["report_uri"]),
            )
            for c in checks
        ]
        series.append(Series(f"{source} rows", colour, shape, points))
    high = nice_top(max([4, *(c["rows"][s] for c in checks for s in ("online", "batch"))]))
    scale = Scale(0, high, "rows", lambda v: f"{v:,.0f}")
    rows = line_chart(axis, series, scale, label="rows per check period") + legend(series)
    kinds = sorted({k for c in checks for k in c["batch"]["rejects"]})
    read = [c for c in checks if c["batch"]["rows_read"]]
    if not kinds:
        files = sum(c["batch"]["files"] for c in checks)
        return rows + f"<p class='note' id='rejects-none'>No batch row was rejected ({files} files in the window).</p>"
    series = []
    for i, kind in enumerate(kinds):
        points = []
        for c in read:
            n, total = c["batch"]["rejects"].get(kind, 0), c["batch"]["rows_read"]
            title = f"{_check_title(c)}: {n} of {total} batch rows rejected for {kind} ({_pct(n / total)})"
            points.append(Point(_when(c["run_at"]), n / total, title, _drift_href(c["report_uri"])))
        series.append(Series(f"rejected: {kind}", PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], points))
    high = nice_top(max([0.04, *(p.value for s in series for p in s.points)]))
    scale = Scale(0.0, high, "share of batch rows", lambda v: f"{v:.1%}")
    unscored = sum(c["batch"]["unscored_files"] for c in checks)
    note = (
        f"<p class='note'>Batch files in the window: {sum(c['batch']['files'] for c in checks)}, of which "
        f"{unscored} not scored (rejected whole or failed; see batch_runs).</p>"
    )
    chart = line_chart(axis, series, scale, label="batch reject rate by reason")
    return f"{rows}<h3>Batch reject rate by reason</h3>{chart}{legend(series)}{note}"


def _version_colours(doc) -> dict[str, str]:
    versions = [s["version"] for s in doc["serving"]]
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(dict.fromkeys(versions))}


def _moved(decision) -> str:
    """How much of the market changed segment, then each mover with its share."""
    movers = "; ".join(
        f"{m['country']} ({_pct(m['market_share'])}): {m['from_segment']} \u2192 {m['to_segment']}"
        for m in decision["movers"]
    )
    return f"{_pct(decision['moved_share'])}" + (f": {movers}" if movers else "")


def _production_panel(doc, axis: TimeAxis) -> str:
    colours = _version_colours(doc)
    spans = [
        Span(
            max(_when(s["from"]), axis.start),
            _when(s["to"]),
            s["version"],
            colours[s["version"]],
            f"production {s['version']} from {_day(s['from'])} to {_day(s['to'])}"
            + (f" ({s['decision']})" if s["decision"] else ""),
            _model_href(s["version"]),
        )
        for s in doc["serving"]
    ]
    events, rows = [], []
    for d in doc["decisions"]:
        colour, shape = DECISIONS.get(d["decision"], ("#333", "o"))
        when = _when(d["evaluated_at"])
        who = f" by {d['decided_by']}" if d["decided_by"] else ""
        title = (
            f"{_day(d['evaluated_at'])}: {d['decision']} {d['version']}{who} (production was "
            f"{d['production_version'] or 'none'}); market share that moved {_pct(d['moved_share'])}"
            + (f"; reason: {d['reason']}" if d["reason"] else "")
        )
        events.append(Event(when, shape, colour, f"{d['decision']} {d['version']}", title, _model_href(d["version"])))
        rows.append(
            [
                text(_short(d["evaluated_at"])),
                text(d["decision"]),
                _link(_model_href(d["version"]), d["version"]),
                text(d["production_version"]),
                text(d["decided_by"]),
                text(d["reason"]),
                text(_moved(d)),
                text(d["detail"]),
            ]
        )
    chart = timeline(axis, spans, events, label="production version over time, and every decision")
    key = legend([Series(name, colour, shape, ()) for name, (colour, shape) in DECISIONS.items()])
    if not rows:
        return chart + key + "<p class='note' id='decisions-none'>No decision in this window.</p>"
    header = ["when (UTC)", "decision", "version", "production before", "by", "reason", "market that moved", "detail"]
    return chart + key + f"<div id='decisions'>{table(header, rows)}</div>"


def _shadow_panel(doc, axis: TimeAxis) -> str:
    checks = [c for c in doc["checks"] if c["shadow"]]
    if not checks:
        return "<p class='note'>No version was under review: nothing was scored in the shadow.</p>"
    series = []
    for key, name, shape, colour in (
        ("disagreement", "disagreement (share of requests)", "o", "#0072b2"),
        ("market_weighted_disagreement", "market-weighted disagreement", "s", "#d55e00"),
    ):
        points = []
        for c in checks:
            s = c["shadow"]
            sized = [f for f in s["flips"] if f["market_share"]]
            flips = ", ".join(f"{f['country']} {f['from']} \u2192 {f['to']}" for f in sized) or "none"
            if len(sized) < len(s["flips"]):
                flips += f" (and {len(s['flips']) - len(sized)} of markets without a size)"
            title = (
                f"{_check_title(c)}: {s['version']} vs production {s['production_version']}, {s['requests']} "
                f"requests, {s['countries']} countries; {name} {_pct(s[key])}; flips: {flips}"
            )
            points.append(Point(_when(c["run_at"]), s[key], title, _drift_href(c["report_uri"])))
        series.append(Series(name, colour, shape, points))
    scale = Scale(0.0, 1.0, "disagreement", lambda v: f"{v:.0%}")
    chart = line_chart(axis, series, scale, label="shadow disagreement over time") + legend(series)
    last = checks[-1]["shadow"]
    # markets with a size first: a flip of a name outside the model's TOTAL_SPEND weighs nothing, and
    # live traffic can bring hundreds of them (scenario names, markets outside the panel)
    sized = [f for f in last["flips"] if f["market_share"]]
    unsized = len(last["flips"]) - len(sized)
    detail = (
        f"<p id='shadow-last'>Last record: version {_link(_model_href(last['version']), last['version'])} against "
        f"production {text(last['production_version'])} on {text(last['requests'])} requests "
        f"({text(last['countries'])} countries): disagreement {_pct(last['disagreement'])}, market-weighted "
        f"{_pct(last['market_weighted_disagreement'])}; {len(last['flips'])} flips.</p>"
    )
    if sized:
        rows = [[text(f["country"]), text(f["from"]), text(f["to"]), text(_pct(f["market_share"]))] for f in sized]
        detail += table(["country", "production answers", "under review it would answer", "market share"], rows)
    if unsized:
        detail += (
            "<p class='note' id='shadow-unsized'>Flips of markets without a size (not among the model's "
            f"TOTAL_SPEND countries): {unsized}, listed in the drift report.</p>"
        )
    return chart + detail


PANELS = (
    (
        "verdicts",
        "Drift verdicts",
        "One cell per check. Red (!) means a test rejected: open the check's report.",
        _verdict_panel,
    ),
    (
        "features",
        "Each feature's adjusted p-value",
        "Below the dashed alpha line (a triangle), the feature's recent values differ from training's.",
        _features_panel,
    ),
    (
        "joint",
        "Joint structure",
        "Whole rows against training's correlations: below alpha, the features no longer move together as they did.",
        _joint_panel,
    ),
    (
        "segments",
        "Segment shares against training",
        "The share of each segment among the rows each check tested; the dashed lines are training's shares "
        "(the production model's), named on the right.",
        _segments_panel,
    ),
    (
        "rows",
        "Rows per period and batch rejects",
        "Rows each check tested (production's answers), and the share of batch rows rejected, by the field at fault.",
        _rows_panel,
    ),
    (
        "production",
        "Production version and decisions",
        "Which version served when; under it every decision, linked to the version's model report.",
        _production_panel,
    ),
    (
        "shadow",
        "Shadow disagreement",
        "How often the version under review answered otherwise than production on live requests.",
        _shadow_panel,
    ),
)


def _axis(doc: Mapping[str, Any]) -> TimeAxis:
    """The window's end and, at its start, a little before its first check or decision: a deployment
    younger than the window is drawn across the page, not squeezed against its right edge."""
    since, until = _when(doc["since"]), _when(doc["until"])
    times = [_when(c["run_at"]) for c in doc["checks"]] + [_when(d["evaluated_at"]) for d in doc["decisions"]]
    if not times:
        return TimeAxis(since, until)
    pad = (until - min(times)) * 0.03 or timedelta(minutes=1)
    return TimeAxis(max(since, min(times) - pad), until + pad)


def to_html(doc: Mapping[str, Any]) -> str:
    """The page of a ``check_drift.history`` document."""
    axis = _axis(doc)
    sections = "".join(
        f"<section id='{key}' aria-labelledby='h-{key}'><h2 id='h-{key}'>{text(title)}</h2>"
        f"<p class='note'>{text(note)}</p>{panel(doc, axis)}</section>"
        for key, title, note, panel in PANELS
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{text(TITLE)}</title>{NO_ICON}<style>{STYLE}{CHART_CSS}</style></head><body>"
        f"<h1>{text(TITLE)}</h1>"
        f"<p class='note'>The last {doc['days']:g} days, {text(_day(doc['since']))} to {text(_day(doc['until']))}; "
        f"built by drift check {text(doc['built_by'])}. Every point links to the report it came from. "
        "<a href='app'>Strategy page</a> \u00b7 <a href='reports/monitoring/index.json'>these figures as JSON</a></p>"
        f"{_summary(doc)}{sections}</body></html>"
    )
