"""The drift report: JSON for machines, one self-contained HTML page for people.

The HTML page has no external resources: CSS inline and one base64 PNG per feature (left: the
share of rows in each of the reference's decile bins, reference vs. recent, which is what
Jensen-Shannon and PSI compare; right: the two cumulative distributions, whose enclosed area is
the Wasserstein distance), one for the segment shares, and one for the joint test (the recent
rows' reconstruction errors against the training rows' out-of-sample ones, and the recent mean
against the band where it falls without drift). matplotlib is imported (by ``pictures``) only when a
page is drawn.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pharmaseg.check_drift.methods import FeatureReference
from pharmaseg.reports import pictures
from pharmaseg.reports.html import img, text
from pharmaseg.reports.shadow import shadow_section

DPI = 80
COLORS = {"reference": "#4c72b0", "recent": "#dd8452"}
VERDICT_COLORS = {"drift": "#c0392b", "no_drift": "#27ae60", "insufficient_data": "#7f8c8d"}


def to_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True, default=str, allow_nan=False).encode()


def _shares(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    return counts / counts.sum() if counts.sum() > 0 else counts


def feature_plot(ref: FeatureReference, recent_counts, positions, weights, title: str) -> str:
    """Base64 PNG: decile-bin shares and CDFs, reference vs. recent."""
    plt = pictures.pyplot()

    fig, (bars, cdf) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    k = len(ref.counts)
    x = np.arange(k)
    bars.bar(x - 0.2, _shares(ref.counts), 0.4, label="reference (training)", color=COLORS["reference"])
    bars.bar(x + 0.2, _shares(recent_counts), 0.4, label="recent", color=COLORS["recent"])
    edges = [f"{e:.3g}" for e in ref.edges]
    labels = [f"<{edges[0]}"] + [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f">={edges[-1]}"]
    bars.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    bars.set_ylabel("share of rows")
    bars.set_title("reference decile bins", fontsize=9)
    bars.legend(fontsize=7)
    xs = np.sort(ref.values)
    cdf.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", color=COLORS["reference"], label="reference")
    if positions is not None and len(positions):
        order = np.argsort(positions)
        p, w = np.asarray(positions)[order], np.asarray(weights, dtype=float)[order]
        cdf.step(p, np.cumsum(w) / w.sum(), where="post", color=COLORS["recent"], label="recent")
    cdf.set_title("cumulative distribution", fontsize=9)
    cdf.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return pictures.png(fig, dpi=DPI)


def segment_plot(names: Sequence[str], training: Sequence[float], recent: Sequence[float]) -> str:
    plt = pictures.pyplot()

    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    x = np.arange(len(names))
    ax.bar(x - 0.2, training, 0.4, label="training", color=COLORS["reference"])
    ax.bar(x + 0.2, recent, 0.4, label="recent (production version)", color=COLORS["recent"])
    ax.set_xticks(x, [textwrap.fill(n, 14) for n in names], fontsize=8)
    ax.set_ylabel("share")
    ax.legend(fontsize=7)
    ax.set_title("prediction drift: segment shares", fontsize=10)
    return pictures.png(fig, dpi=DPI)


def joint_plot(reference_errors, recent_errors, details: Mapping[str, Any], title: str) -> str:
    """Base64 PNG: the per-row error distributions, and the recent mean against the null band."""
    plt = pictures.pyplot()

    reference_errors, recent_errors = np.asarray(reference_errors, float), np.asarray(recent_errors, float)
    fig, (hist, mean) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained", width_ratios=(3, 2))
    top = float(np.quantile(np.concatenate([reference_errors, recent_errors]), 0.995))
    bins = np.linspace(0, max(top, 1e-9), 40)
    hist.hist(
        reference_errors,
        bins,
        density=True,
        alpha=0.6,
        color=COLORS["reference"],
        label="training rows (out-of-sample)",
    )
    hist.hist(recent_errors, bins, density=True, alpha=0.6, color=COLORS["recent"], label="recent rows")
    hist.set_xlabel("reconstruction error (standardized units)")
    hist.set_ylabel("density")
    hist.set_title("per-row errors", fontsize=9)
    hist.legend(fontsize=7)
    lo, hi = details["null_band95"]
    ref_mean, recent_mean = details["reference_error_mean"], details["recent_error_mean"]
    mean.axvspan(lo, hi, color=COLORS["reference"], alpha=0.25, label="95% band without drift")
    mean.axvline(ref_mean, color=COLORS["reference"], label=f"training mean {ref_mean:.3g}")
    mean.axvline(recent_mean, color=COLORS["recent"], linewidth=2.5, label=f"recent mean {recent_mean:.3g}")
    span = max(hi, recent_mean) - min(lo, recent_mean)
    mean.set_xlim(min(lo, recent_mean) - 0.3 * span, max(hi, recent_mean) + 0.3 * span)
    mean.set_yticks([])
    mean.set_xlabel("mean reconstruction error")
    mean.set_title("recent mean vs. the reference's null band", fontsize=9)
    mean.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    return pictures.png(fig, dpi=DPI)


def _number(value: Any) -> str:
    """Three significant digits, p-values below 0.001 in scientific notation."""
    return text(value, digits=3, tiny=1e-3)


# No favicon request: the page is self-contained (and a browser would log the 404).
STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1000px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.drift{background:#fbe3e0}
.badge{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
.meta td{text-align:left}img{max-width:100%}h2{margin-top:1.5em}
"""


def to_html(
    doc: Mapping[str, Any],
    refs: Sequence[FeatureReference],
    supports: Mapping[str, tuple[np.ndarray, np.ndarray]],
    segment_names: Sequence[str],
    joint_errors: np.ndarray | None = None,
) -> str:
    """The page: verdict, metadata, the statistics table, the joint test, and a plot per feature.

    ``joint_errors``: the recent rows' reconstruction errors (the JSON keeps only their quantiles).
    """
    result = doc["result"]
    verdict = result["verdict"]
    meta = [
        ("report id", doc["report_id"]),
        ("run at", doc["run_at"]),
        ("model version", doc["model_version"]),
        ("period", f"{doc['period']['start']} to {doc['period']['end']}"),
        ("rows (online / batch)", f"{doc['rows']['online']} / {doc['rows']['batch']}"),
        ("reason", result["reason"]),
        ("retraining", doc.get("retrain", {}).get("decision", "-")),
        ("policy", ", ".join(f"{k}={v}" for k, v in result["policy"].items())),
    ]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>pharmaseg drift report {text(doc['report_id'])}</title>",
        f"{pictures.NO_ICON}<style>{STYLE}</style></head><body>",
        "<h1>pharmaseg drift report</h1>",
        f"<p><span class='badge' style='background:{VERDICT_COLORS.get(verdict, '#555')}'>{text(verdict)}</span></p>",
        "<table class='meta'>" + "".join(f"<tr><th>{k}</th><td>{_number(v)}</td></tr>" for k, v in meta) + "</table>",
    ]
    features = result.get("features") or []
    if features:
        cols = ["feature", "method", "n", "statistic", "p_value", "p_adjusted", "wasserstein", "jensen_shannon", "psi"]
        parts.append("<h2>Per feature</h2><table><tr>")
        parts.append("".join(f"<th>{c}</th>" for c in cols) + "<th>drift</th></tr>")
        for f in features:
            cls = " class='drift'" if f["drift"] else ""
            cells = "".join(f"<td>{_number(f.get(c))}</td>" for c in cols)
            parts.append(f"<tr{cls}>{cells}<td>{_number(f['drift'])}</td></tr>")
        parts.append("</table>")
        parts.append(
            "<p>statistic: Kolmogorov-Smirnov D (method ks) or normalised Wasserstein (method wasserstein+js); "
            "wasserstein is divided by the reference's standard deviation; jensen_shannon is the base-2 distance "
            "on the reference's decile bins; p_adjusted is corrected across the features, the segment shares "
            "and the joint test.</p>"
        )
    prediction = result.get("prediction_drift") or {}
    if prediction.get("n"):
        parts.append("<h2>Prediction drift</h2><table><tr><th>segment</th><th>training share</th>")
        parts.append("<th>recent count</th><th>recent share</th></tr>")
        for i, name in enumerate(segment_names):
            parts.append(
                f"<tr><td>{text(name)}</td><td>{_number(prediction['training_shares'][i])}</td>"
                f"<td>{_number(prediction['recent_counts'][i])}</td><td>{_number(prediction['recent_shares'][i])}</td></tr>"
            )
        parts.append("</table>")
        parts.append(
            f"<p>chi-square homogeneity p = {_number(prediction.get('p_value'))}, adjusted "
            f"{_number(prediction.get('p_adjusted'))}, Jensen-Shannon {_number(prediction.get('jensen_shannon'))}, "
            f"drift: {_number(prediction.get('drift'))}</p>"
        )
        png = segment_plot(segment_names, prediction["training_shares"], prediction["recent_shares"])
        parts.append(img(png, "segment shares"))
    joint = result.get("joint")
    if joint:
        parts.extend(_joint_section(joint, joint_errors))
    parts.extend(shadow_section(doc.get("shadow")))
    if features:
        parts.append("<h2>Distributions: reference (training) vs. recent</h2>")
        by_name = {f["feature"]: f for f in features}
        for ref in refs:
            f = by_name.get(ref.name)
            if not f or not f.get("n"):
                continue
            positions, weights = supports.get(ref.name, (None, None))
            title = f"{ref.name}: {'DRIFT' if f['drift'] else 'no drift'} (p_adj={_number(f.get('p_adjusted'))})"
            png = feature_plot(ref, f["details"]["recent_decile_counts"], positions, weights, title)
            parts.append(f"<div>{img(png, ref.name)}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _joint_section(joint: Mapping[str, Any], errors: np.ndarray | None) -> list[str]:
    d = joint["details"]
    sampled = f" (random sample of {_number(d['sampled_from'])} rows)" if d.get("sampled_from") else ""
    rows = [
        (
            "method",
            f"{joint['method']}: {joint['components']} principal components, "
            f"{_number(d.get('variance_kept'))} of the training variance",
        ),
        (
            "recent rows tested",
            f"{_number(joint['n'])}{sampled}; incomplete rows left out: {_number(d.get('incomplete_rows'))}",
        ),
        ("recent mean error", d.get("recent_error_mean")),
        (
            "training mean error, out-of-sample (in-sample)",
            f"{_number(d.get('reference_error_mean'))} ({_number(d.get('reference_in_sample_error_mean'))})",
        ),
        ("statistic (recent - training)", joint.get("statistic")),
        ("p-value / adjusted", f"{_number(joint.get('p_value'))} / {_number(joint.get('p_adjusted'))}"),
        ("drift", joint.get("drift")),
    ]
    if d.get("not_tested"):
        rows.append(("not tested", d["not_tested"]))
    cls = "meta drift" if joint.get("drift") else "meta"
    parts = [
        "<h2 id='joint'>Joint structure</h2>",
        "<p>Whether the features still move together as in training: each row's distance from the "
        "training rows' principal components (standardized with the model's scaler). The training rows' "
        "errors are leave-one-out (each from a fit without it), so that they are what a new row gets.</p>",
        f"<table class='{cls}'>"
        + "".join(f"<tr><th>{_number(k)}</th><td>{_number(v)}</td></tr>" for k, v in rows)
        + "</table>",
    ]
    if errors is not None and len(errors) and d.get("null_band95"):
        verdict = "DRIFT" if joint.get("drift") else "no drift"
        title = f"joint structure: {verdict} (p_adj={_number(joint.get('p_adjusted'))})"
        png = joint_plot(d["reference_errors"], errors, d, title)
        parts.append(f"<div>{img(png, 'joint structure')}</div>")
    return parts
