"""The shadow evidence of a version under review, as the drift report and the version's model report show it.

The record itself (``check_drift.shadow``) is what the prediction function's shadow scoring saw
over one drift check's period; a reviewer reads it next to the gate's offline comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pharmaseg.reports.html import table, text


def shadow_section(shadow: Mapping[str, Any] | None) -> list[str]:
    """HTML: how often the version under review disagreed with production on live requests, and where."""
    if not shadow:
        return []
    period = (
        f" between {text(shadow['period_start'])} and {text(shadow['period_end'])}" if "period_start" in shadow else ""
    )
    parts = [
        "<h2 id='shadow'>In the shadow of production: live requests</h2>",
        f"<p>Version {text(shadow['version'])} scored the same {text(shadow['requests'])} requests "
        f"({text(shadow['countries'])} countries) as production {text(shadow['production_version'])}{period}: "
        f"it disagreed on {shadow['disagreement']:.1%} of them, {shadow['market_weighted_disagreement']:.1%} "
        f"of the market weighted by TOTAL_SPEND (the {text(shadow['weights'])} model's sizes).</p>",
    ]
    weighed, unsized = _split_flips(shadow["flips"])
    if weighed:
        rows = [[text(f["country"]), text(f["from"]), text(f["to"]), f"{f['market_share']:.1%}"] for f in weighed]
        parts.append(table(["country", "production answers", "under review it would answer", "market share"], rows))
    if unsized:
        names = ", ".join(text(f["country"]) for f in unsized[:10]) + (" and more" if len(unsized) > 10 else "")
        parts.append(f"<p>And {len(unsized)} flips of markets without a size in either model ({names}).</p>")
    if not shadow["flips"]:
        parts.append("<p>No country would change segment on the requests seen.</p>")
    return parts


def describe(shadow: Mapping[str, Any]) -> list[str]:
    """The same evidence as lines of text, for the terminal (``pharmaseg registry show/promote``)."""
    lines = [
        f"shadow evidence ({shadow.get('report_id', 'drift check')}, {shadow.get('period_start', '?')} to "
        f"{shadow.get('period_end', '?')}): {shadow['requests']} requests, {shadow['countries']} countries, "
        f"disagreement {shadow['disagreement']:.1%}, market-weighted {shadow['market_weighted_disagreement']:.1%}"
    ]
    weighed, unsized = _split_flips(shadow["flips"])
    lines += [f"  {f['country']} ({f['market_share']:.1%} of market): {f['from']} -> {f['to']}" for f in weighed]
    if unsized:
        shown = ", ".join(f["country"] for f in unsized[:5]) + (", ..." if len(unsized) > 5 else "")
        lines.append(f"  and {len(unsized)} flips of markets without a size in either model ({shown})")
    return lines


def _split_flips(flips: list[Mapping[str, Any]]) -> tuple[list, list]:
    """(flips of markets with a size, largest first as the record keeps them; the others): a reviewer
    reads the first, and only counts the second (live traffic can name hundreds of unknown markets)."""
    return [f for f in flips if f["market_share"] > 0], [f for f in flips if f["market_share"] <= 0]
