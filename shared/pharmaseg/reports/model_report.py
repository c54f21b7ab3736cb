"""A model version's report: one self-contained HTML page for people, and its JSON twin.

Nobody should have to read an artifact to learn what a candidate would change. Every registered
version gets a page in the reports bucket (``models/<version>/report.html`` and ``.json``) with
what a strategy team asks before a segmentation reaches production: which countries move and
how much of the market they hold, how each segment looks in the units they know, where each
country sits, how sure the model is about it (confidence) and how sure the data is (stability
over bootstrap refits), how the version reads every window of the source data and how it would
redraw production's history (``segment_history``), and why the gate decided what it decided.

The HTML is rendered from the JSON document alone, so the two cannot disagree. It loads nothing
from the network (inline CSS, base64 PNGs from matplotlib), and every string that comes from
data is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pharmaseg.model.artifact import ModelArtifact
from pharmaseg.model.changes import compare, training_confidence
from pharmaseg.model.segments import segment_style
from pharmaseg.reports import pictures
from pharmaseg.reports.history_grid import GRID_CSS
from pharmaseg.reports.html import img, table, text
from pharmaseg.reports.objects import model_report, model_report_uri
from pharmaseg.reports.segment_history import HistoryInput, history_document, history_section
from pharmaseg.reports.segment_map import segment_map
from pharmaseg.reports.shadow import shadow_section

FORMAT = "pharmaseg.reports.model_report/v1"
DPI = 90


# -- the document ------------------------------------------------------------------------------


def _decision(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The parts of a model_versions row the report shows (its gate is stored as JSON text)."""
    if not row:
        return None
    gate = row.get("gate")
    return {
        "decision": row.get("decision"),
        "detail": row.get("decision_detail"),
        "production_version": row.get("production_version"),
        "decided_by": row.get("decided_by"),
        "evaluated_at": row.get("evaluated_at"),
        "policy": row.get("policy"),
        "reason": row.get("reason"),
        "gate": json.loads(gate) if isinstance(gate, str) else gate,
    }


def build_document(
    candidate: ModelArtifact,
    production: ModelArtifact | None,
    decision: Mapping[str, Any] | None,
    *,
    borderline_below: float,
    history: HistoryInput | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data; the segment history only when ``history`` says where from."""
    confidence_of = training_confidence(candidate)
    stability = candidate.country_stability() or {}
    countries, confidence = list(confidence_of), list(confidence_of.values())
    sizes = candidate.markets.sizes if candidate.markets is not None else {}
    total = sum(sizes.get(c, 0.0) for c in countries)
    projection = segment_map(candidate)
    position = {c: (x, y) for c, x, y in zip(projection.countries, projection.x, projection.y)}
    names = [s.name for s in candidate.segments]
    centroids = candidate.centroids_original_units()
    segments = []
    for s in candidate.segments:
        members = [c for c in countries if candidate.assignments[c] == s.cluster]
        share = sum(sizes.get(c, 0.0) for c in members) / total if total else None
        segments.append(
            {
                "cluster": s.cluster,
                "name": s.name,
                "recommendation": s.recommendation,
                "size": s.size,
                "countries": members,
                "market_share": share,
                "fits_profile": s.fits_profile,
                "centroid": dict(zip(candidate.feature_names, centroids[s.cluster].tolist())),
            }
        )
    table = [
        {
            "country": c,
            "segment": names[candidate.assignments[c]],
            "confidence": conf,
            "stability": stability.get(c),
            "borderline": conf < borderline_below,
            "market_size": sizes.get(c),
            "market_share": sizes[c] / total if total and c in sizes else None,
            "x": position[c][0],
            "y": position[c][1],
        }
        for c, conf in zip(countries, confidence)
    ]
    return {
        "format": FORMAT,
        "version": candidate.version,
        "window": candidate.window,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "feature_names": list(candidate.feature_names),
        "feature_means": dict(zip(candidate.feature_names, candidate.scaler_mean.tolist())),
        "metrics": candidate.metrics,
        "lineage": candidate.lineage,
        "markets": candidate.markets.to_dict() if candidate.markets is not None else None,
        "borderline_below": borderline_below,
        "segments": segments,
        "countries": table,
        "map": {
            "variance_ratio": list(projection.variance_ratio),
            "centroids": {names[i]: list(p) for i, p in enumerate(projection.centroids)},
        },
        "comparison": _comparison(production, candidate),
        "decision": _decision(decision),
        "history": history_document(history, candidate, production, borderline_below=borderline_below)
        if history is not None
        else None,
    }


def _comparison(production: ModelArtifact | None, candidate: ModelArtifact) -> dict[str, Any] | None:
    """The comparison with production, each mover with its stability under both models beside its confidence."""
    if production is None:
        return None
    comparison = compare(production, candidate).to_dict()
    before, after = production.country_stability() or {}, candidate.country_stability() or {}
    for mover in comparison["movers"]:
        mover["stability_before"] = before.get(mover["country"])
        mover["stability_after"] = after.get(mover["country"])
    return comparison


# -- pictures ----------------------------------------------------------------------------------


def profile_chart(doc: Mapping[str, Any]) -> str:
    """Each segment's centroid, feature by feature in original units, against the training mean."""
    plt = pictures.pyplot()
    features = doc["feature_names"]
    fig, axes = plt.subplots(3, 3, figsize=(10, 7.5), layout="constrained")
    segments = doc["segments"]
    for ax, feature in zip(axes.flat, features):
        values = [s["centroid"][feature] for s in segments]
        colours = [segment_style(s["name"])[0] for s in segments]
        ax.bar(range(len(segments)), values, color=colours)
        ax.axhline(doc["feature_means"][feature], color="#333", linestyle="--", linewidth=1)
        ax.set_title(feature, fontsize=9)
        ax.set_xticks(range(len(segments)), [s["name"].split()[0] for s in segments], fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle("Segment centroids in original units (dashed: training average)", fontsize=10)
    return pictures.png(fig, dpi=DPI)


def map_chart(doc: Mapping[str, Any]) -> str:
    """The countries on the first two principal components, coloured and shaped by segment."""
    plt = pictures.pyplot()
    fig, ax = plt.subplots(figsize=(9, 6.5), layout="constrained")
    for s in doc["segments"]:
        colour, marker = segment_style(s["name"])
        rows = [c for c in doc["countries"] if c["segment"] == s["name"]]
        ax.scatter([r["x"] for r in rows], [r["y"] for r in rows], c=colour, marker=marker, s=60, label=s["name"])
        cx, cy = doc["map"]["centroids"][s["name"]]
        ax.scatter([cx], [cy], c=colour, marker="X", s=160, edgecolors="black", linewidths=0.8)
    for r in doc["countries"]:
        ax.annotate(r["country"], (r["x"], r["y"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    first, second = doc["map"]["variance_ratio"]
    ax.set_xlabel(f"principal component 1 ({first:.0%} of the variance)")
    ax.set_ylabel(f"principal component 2 ({second:.0%} of the variance)")
    ax.axhline(0, color="#ddd", linewidth=0.8, zorder=0)
    ax.axvline(0, color="#ddd", linewidth=0.8, zorder=0)
    ax.legend(fontsize=8, title="segment (X: centroid)", title_fontsize=8)
    ax.set_title("Training countries on the standardized features' two main directions", fontsize=10)
    return pictures.png(fig, dpi=DPI)


def confidence_chart(doc: Mapping[str, Any]) -> str:
    """Each country's confidence, lowest first, with the borderline threshold."""
    plt = pictures.pyplot()
    rows = sorted(doc["countries"], key=lambda r: r["confidence"])
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.18 * len(rows))), layout="constrained")
    colours = [segment_style(r["segment"])[0] for r in rows]
    ax.barh(range(len(rows)), [r["confidence"] for r in rows], color=colours)
    ax.set_yticks(range(len(rows)), [f"{r['country']}{' *' if r['borderline'] else ''}" for r in rows], fontsize=7)
    ax.axvline(doc["borderline_below"], color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence = 1 - d(nearest) / d(second nearest); * borderline (below the dashed line)")
    return pictures.png(fig, dpi=DPI)


# -- the page ----------------------------------------------------------------------------------

# No favicon request: the page is self-contained (and a browser would log the 404).
STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;color:#222;max-width:1050px;
padding:0 1em}table{border-collapse:collapse;margin:.8em 0;font-size:13px}th,td{border:1px solid #ccc;
padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}td.n{text-align:right}
.badge{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
.fail{background:#fbe3e0}.note{color:#555;font-size:13px}img{max-width:100%}h2{margin-top:1.6em}
.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;vertical-align:middle}
"""
DECISION_COLOURS = {"promoted": "#1e8449", "forced": "#b9770e", "held": "#c0392b", "manual_promotion": "#1e8449"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _stability(value: float | None) -> str:
    """A country's share of refits in its segment; "n/a" where the model has none (no refits, or an older artifact)."""
    return "n/a" if value is None else text(value)


def _swatch(name: str) -> str:
    return f"<span class='swatch' style='background:{segment_style(name)[0]}'></span>{text(name)}"


def _decision_section(doc: Mapping[str, Any]) -> list[str]:
    decision = doc.get("decision")
    if not decision:
        return ["<p class='note'>Registered without a promotion decision (e.g. by the CLI).</p>"]
    colour = DECISION_COLOURS.get(decision.get("decision") or "", "#555")
    parts = [
        f"<p><span class='badge' style='background:{colour}'>{text(decision.get('decision'))}</span> "
        f"{text(decision.get('detail'))}</p>",
        f"<p class='note'>compared with production {text(decision.get('production_version'))}; decided by "
        f"{text(decision.get('decided_by'))} at {text(decision.get('evaluated_at'))}; "
        f"reason: {text(decision.get('reason'))}</p>",
    ]
    checks = ((decision.get("gate") or {}).get("checks")) or {}
    checks = dict(sorted(checks.items(), key=lambda item: item[1].get("passed", True)))  # failed first
    if checks:
        rows = [
            [text(n), text(c.get("value")), text(c.get("threshold")), text(c.get("passed")), text(c.get("detail"))]
            for n, c in checks.items()
        ]
        parts.append("<h2>Gate</h2>")
        parts.append(
            table(
                ["check", "value", "threshold", "passed", "reason"],
                rows,
                ["" if c.get("passed") else "fail" for c in checks.values()],
            )
        )
    return parts


def _movers_section(doc: Mapping[str, Any]) -> list[str]:
    comparison = doc.get("comparison")
    if comparison is None:
        return ["<h2>Changes against production</h2><p class='note'>No production model to compare with.</p>"]
    movers = comparison["movers"]
    weights = {"after": "this version's TOTAL_SPEND", "before": "production's TOTAL_SPEND"}.get(
        comparison["weights"], "unweighted (no market sizes)"
    )
    parts = [
        "<h2>Changes against production</h2>",
        f"<p>Against production {text(comparison['before_version'])}, "
        f"on the {comparison['common_countries']} countries both know: <b>{len(movers)}</b> change segment, "
        f"holding <b>{_pct(1 - comparison['market_agreement'])}</b> of their market value "
        f"(market agreement {_pct(comparison['market_agreement'])}; weights: {text(weights)}).</p>",
    ]
    if movers:
        rows = [
            [
                text(m["country"]),
                _swatch(m["before"]),
                _swatch(m["after"]),
                _pct(m["market_share"]),
                text(m["confidence_before"]),
                text(m["confidence_after"]),
                _stability(m.get("stability_before")),
                _stability(m.get("stability_after")),
            ]
            for m in movers
        ]
        parts.append(
            table(
                [
                    "country",
                    "production segment",
                    "this version",
                    "market share",
                    "confidence before",
                    "confidence after",
                    "stability before",
                    "stability after",
                ],
                rows,
            )
        )
    shifts = comparison.get("centroid_shifts") or {}
    if shifts:
        names = list(shifts)
        rows = [[text(f)] + [text(shifts[n][f]) for n in names] for f in doc["feature_names"]]
        parts.append(
            "<p class='note'>How each segment's centroid moved (this version minus production, original units):</p>"
        )
        parts.append(table(["feature", *names], rows))
    return parts


def to_html(doc: Mapping[str, Any]) -> str:
    """The page, from the JSON document only."""
    version = doc.get("version") or "unregistered"
    segments = doc["segments"]
    seg_rows = [
        [
            _swatch(s["name"]),
            text(s["recommendation"]),
            text(s["size"]),
            _pct(s["market_share"]),
            text(s["countries"]),
            text(s["fits_profile"]),
        ]
        for s in segments
    ]
    country_rows = [
        [
            text(c["country"]),
            _swatch(c["segment"]),
            text(c["confidence"]),
            _stability(c.get("stability")),
            "borderline" if c["borderline"] else "",
            _pct(c["market_share"]),
        ]
        for c in sorted(doc["countries"], key=lambda c: c["confidence"])
    ]
    metrics = doc["metrics"]
    stability = (metrics.get("stability") or {}).get("mean_ari")
    lineage = doc["lineage"]
    meta = [
        ["silhouette", text(metrics.get("silhouette"))],
        ["Davies-Bouldin", text(metrics.get("davies_bouldin"))],
        ["Calinski-Harabasz", text(metrics.get("calinski_harabasz"))],
        ["inertia", text(metrics.get("inertia"))],
        ["stability (mean bootstrap ARI)", text(stability)],
        ["profile fit", text(metrics.get("profile_fit"))],
        ["data", f"{text(lineage.get('data_uri'))} (sha256 {text(lineage.get('data_sha256'))})"],
        ["rows read / countries", f"{text(lineage.get('rows_read'))} / {text(lineage.get('countries'))}"],
        ["excluded countries", text(sorted((lineage.get("excluded_countries") or {}).keys()))],
        ["parameters", text(json.dumps(lineage.get("params"), sort_keys=True))],
        ["libraries", text(json.dumps(lineage.get("libraries"), sort_keys=True))],
        ["git commit", text(lineage.get("git_commit"))],
        ["created", text(lineage.get("created_at"))],
        ["trigger", text(json.dumps(lineage.get("trigger"), sort_keys=True, default=str))],
    ]
    markets = doc.get("markets")
    market_note = (
        f"Market share = TOTAL_SPEND ({text(markets['unit'])}) in the window's last published year; "
        f"{markets['n_without_size']} countries without it carry no weight."
        if markets
        else "This artifact has no market sizes (written before they existed): shares are not shown."
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>pharmaseg model {text(version)} report</title>{pictures.NO_ICON}<style>{STYLE}{GRID_CSS}</style>"
        "</head><body>",
        f"<h1>Model {text(version)} <span class='note'>window {text(doc['window'])}</span></h1>",
        *_decision_section(doc),
        *_movers_section(doc),
        *shadow_section(doc.get("shadow")),
        "<h2>Segments</h2>",
        table(["segment", "recommendation", "countries", "market share", "members", "fits its profile"], seg_rows),
        f"<p class='note'>{market_note}</p>",
        "<h2>Segment profiles</h2>",
        img(profile_chart(doc), "segment centroids per feature"),
        "<h2>Segment map</h2>",
        img(map_chart(doc), "countries on the first two principal components"),
        "<h2>Countries and confidence</h2>",
        f"<p class='note'>Confidence is 1 at a segment's centre and 0 on the boundary with the next segment. "
        f"Borderline: below {doc['borderline_below']:g}. Stability is the share of the "
        f"{text((metrics.get('stability') or {}).get('n_bootstrap'))} bootstrap refits (countries resampled, "
        "k-means refitted, its clusters matched to these) that keep the country in its segment; n/a where the "
        "model has none.</p>",
        img(confidence_chart(doc), "confidence per country"),
        table(["country", "segment", "confidence", "stability", "", "market share"], country_rows),
        *history_section(doc),
        "<h2>Metrics and lineage</h2>",
        table(["", ""], meta),
        f"<p class='note'>report generated {text(doc['generated_at'])} ({text(doc['format'])})</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True, default=_plain, allow_nan=False).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


class ModelReportWriter:
    """Writes a version's report to the reports bucket; what retraining and the CLI call."""

    def __init__(self, storage_client, bucket: str, *, borderline_below: float):
        self.storage_client = storage_client
        self.bucket = bucket
        self.borderline_below = borderline_below

    def publish(
        self,
        candidate: ModelArtifact,
        production: ModelArtifact | None,
        decision: Mapping[str, Any] | None = None,
        *,
        history: HistoryInput | None = None,
    ) -> str:
        """Render and upload the report of ``candidate``; returns the HTML's gs:// URI."""
        doc = build_document(candidate, production, decision, borderline_below=self.borderline_below, history=history)
        html_name, json_name = model_report(candidate.version or "unregistered")
        bucket = self.storage_client.bucket(self.bucket)
        bucket.blob(json_name).upload_from_string(to_json(doc), content_type="application/json")
        bucket.blob(html_name).upload_from_string(to_html(doc), content_type="text/html; charset=utf-8")
        return model_report_uri(self.bucket, candidate.version or "unregistered")


def add_shadow_evidence(storage_client, bucket: str, shadow: Mapping[str, Any]) -> str | None:
    """Put a drift check's shadow record into the report of the version it is about, and re-render it.

    A version's report is written when it is registered, before any live evidence exists; each drift
    check that shadow scored it brings the newest. Returns the HTML's gs:// URI, or None when the
    version has no report to add to.
    """
    from google.api_core.exceptions import NotFound

    html_name, json_name = model_report(shadow["version"])
    blob = storage_client.bucket(bucket).blob(json_name)
    try:
        doc = json.loads(blob.download_as_bytes())
    except NotFound:
        return None
    doc["shadow"] = dict(shadow)
    storage_client.bucket(bucket).blob(json_name).upload_from_string(to_json(doc), content_type="application/json")
    storage_client.bucket(bucket).blob(html_name).upload_from_string(
        to_html(doc), content_type="text/html; charset=utf-8"
    )
    return model_report_uri(bucket, shadow["version"])
