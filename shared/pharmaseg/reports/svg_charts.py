"""Time-series charts as inline SVG, for a page whose every point is a link.

Written here rather than drawn by matplotlib (as the model and drift reports' pictures are)
because a point in a PNG can be neither a link nor a tooltip, and on the monitoring page each
point is the way into the report it came from: a point is an ``<a>`` with a ``<title>``. The
markup needs no script and nothing from the network. A series is told apart by its marker's shape
and by its name in the legend beside the chart, not by its colour alone; a point can take another
shape than its series (a test that rejected, drawn as a triangle). Every string goes through
``html.text``. All charts of a page share one ``TimeAxis``, so that a day sits at the same x in
each of them and the panels can be read down the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pharmaseg.reports.html import text

# Marker outlines around (0, 0), about 8 px across; "o" is a circle.
_PATHS = {
    "s": "M-3.5,-3.5H3.5V3.5H-3.5Z",
    "^": "M0,-4.5L4.5,3.5H-4.5Z",
    "v": "M0,4.5L4.5,-3.5H-4.5Z",
    "d": "M0,-5L4.5,0L0,5L-4.5,0Z",
    "x": "M-4,-2.5L-2.5,-4L0,-1.5L2.5,-4L4,-2.5L1.5,0L4,2.5L2.5,4L0,1.5L-2.5,4L-4,2.5L-1.5,0Z",
}
MARKERS = ("o", *_PATHS)
_TICK_STEPS = tuple(
    [timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)]
    + [timedelta(hours=h) for h in (1, 2, 3, 6, 12)]
    + [timedelta(days=d) for d in (1, 2, 7, 14, 28, 56, 91, 182, 364)]
)

CHART_CSS = """
.ch{display:block;max-width:100%;height:auto;font-size:11px;font-family:inherit}
.ch .ax{fill:#555}.ch .grid{stroke:#e4e4e4}.ch .frame{fill:none;stroke:#bbb}
.ch .rule{stroke-width:1.5;stroke-dasharray:6 3}.ch .rule-label{font-weight:bold}
.ch a.pt:focus path,.ch a.pt:focus circle,.ch a.pt:hover path,.ch a.pt:hover circle{stroke:#000;stroke-width:2}
.ch a.pt:focus rect,.ch a.pt:hover rect{stroke:#000;stroke-width:2}
.ch .cell-text{fill:#fff;font-weight:bold;text-anchor:middle;pointer-events:none}
ul.lg{list-style:none;padding:0;margin:.2em 0 .8em;font-size:12px;display:flex;flex-wrap:wrap;gap:.2em 1.2em}
ul.lg svg{vertical-align:middle;margin-right:.3em}
"""


def _attr(value: object) -> str:
    return text(value, digits=None)


def marker(shape: str, colour: str) -> str:
    """One marker at (0, 0): ``o`` a circle, else one of the outlines in ``_PATHS``."""
    if shape == "o":
        return f'<circle r="4" fill="{_attr(colour)}"/>'
    return f'<path d="{_PATHS[shape]}" fill="{_attr(colour)}"/>'


def _point(x: float, y: float, body: str, title: str, href: str | None, scale: float = 1.0) -> str:
    """A point: a link to ``href`` when it has one, with its title as tooltip and accessible name."""
    inner = f"<title>{_attr(title)}</title>{body}"
    place = f'transform="translate({x:.1f},{y:.1f})' + (f' scale({scale:.2f})"' if scale != 1 else '"')
    if href:
        return f'<a class="pt" href="{_attr(href)}" aria-label="{_attr(title)}" {place}>{inner}</a>'
    return f'<g class="pt" {place}>{inner}</g>'


@dataclass(frozen=True)
class TimeAxis:
    """The x axis every chart of a page shares: [start, end] over the width between the margins."""

    start: datetime
    end: datetime
    width: int = 960
    left: int = 70
    right: int = 100  # room for the rules' labels

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        return self.left + (when - self.start).total_seconds() / span * (self.width - self.left - self.right)

    def ticks(self) -> list[tuple[datetime, str]]:
        """Round times (whole minutes, hours or UTC midnights) with their labels, one per 80 px at most
        (a label is about 40 px): a fresh deployment's minutes read as well as a quarter's days."""
        most = max(2, (self.width - self.left - self.right) // 80)
        span = self.end - self.start
        step = next((s for s in _TICK_STEPS if span / s <= most), _TICK_STEPS[-1])
        epoch = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: weekly ticks fall on Mondays
        first = epoch + math.ceil((self.start - epoch) / step) * step
        fmt = "%d %b" if step >= timedelta(days=1) else "%d %b %H:%M" if step >= timedelta(hours=6) else "%H:%M"
        count = int((self.end - first) / step) + 1
        return [(first + step * i, f"{first + step * i:{fmt}}") for i in range(max(count, 0))]

    def grid(self, top: float, bottom: float) -> str:
        """Vertical lines at the ticks, labelled under ``bottom``."""
        parts = []
        for tick, name in self.ticks():
            x = self.x(tick)
            parts.append(
                f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                f'<text class="ax" x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">{name}</text>'
            )
        return "".join(parts)


@dataclass(frozen=True)
class Point:
    """One value at one time."""

    when: datetime
    value: float
    title: str
    href: str | None = None
    shape: str | None = None  # another marker than the series'


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    marker: str
    points: Sequence[Point]
    dashed: bool = False


@dataclass(frozen=True)
class Rule:
    """A horizontal line at ``value``: a threshold, or a reference such as training's share."""

    value: float
    label: str
    colour: str = "#333"


@dataclass(frozen=True)
class Scale:
    """The y axis: [low, high], linear or log10; ``fmt`` writes a tick's value."""

    low: float
    high: float
    label: str
    fmt: Callable[[float], str] = "{:g}".format
    log: bool = False

    def fraction(self, value: float) -> float:
        """Where ``value`` sits from low (0) to high (1), clamped: a value off the scale sits on its edge."""
        if self.log:
            low, high = math.log10(self.low), math.log10(self.high)
            value = math.log10(max(value, self.low))
        else:
            low, high = self.low, self.high
        return min(max((value - low) / ((high - low) or 1.0), 0.0), 1.0)

    def ticks(self) -> list[float]:
        """Five even steps, or on a log scale every power of ten (every second or third past six of them)."""
        if self.log:
            top, bottom = math.floor(math.log10(self.high)), math.ceil(math.log10(self.low))
            step = math.ceil((top - bottom + 1) / 6)
            return [10.0**e for e in range(top, bottom - 1, -step)]
        return [self.low + (self.high - self.low) * i / 4 for i in range(5)]


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 4, 5 or 8 times a power of ten at or above ``value``: a linear scale's top
    whose quarters are round numbers."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 4, 5, 8, 10) if m * power >= value * (1 - 1e-9))


def line_chart(
    axis: TimeAxis,
    series: Sequence[Series],
    scale: Scale,
    *,
    label: str,
    rules: Sequence[Rule] = (),
    height: int = 190,
) -> str:
    """Lines through each series' points, a marker per point, the rules and the time grid (``legend`` names
    the series)."""
    top, bottom = 10, height - 22

    def y(value: float) -> float:
        return bottom - scale.fraction(value) * (bottom - top)

    parts = [
        f'<svg class="ch" viewBox="0 0 {axis.width} {height}" width="{axis.width}" height="{height}" role="group" '
        f'aria-label="{_attr(label)}">',
        axis.grid(top, bottom),
    ]
    for tick in scale.ticks():
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{axis.left}" x2="{axis.width - axis.right}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
            f'<text class="ax" x="{axis.left - 4}" y="{ty + 4:.1f}" text-anchor="end">{_attr(scale.fmt(tick))}</text>'
        )
    parts.append(
        f'<text class="ax" transform="translate(11,{(top + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"{_attr(scale.label)}</text>"
        f'<rect class="frame" x="{axis.left}" y="{top}" width="{axis.width - axis.left - axis.right}" '
        f'height="{bottom - top}"/>'
    )
    label_y = -math.inf
    for rule in sorted(rules, key=lambda r: -y(r.value)):  # labels in the right margin, bottom up, never overlapping
        ry = y(rule.value)
        label_y = min(ry + 4, label_y - 12) if label_y > -math.inf else ry + 4
        parts.append(
            f'<line class="rule" stroke="{_attr(rule.colour)}" x1="{axis.left}" x2="{axis.width - axis.right}" '
            f'y1="{ry:.1f}" y2="{ry:.1f}"><title>{_attr(rule.label)}</title></line>'
            f'<text class="rule-label" fill="{_attr(rule.colour)}" x="{axis.width - axis.right + 4}" '
            f'y="{label_y:.1f}">{_attr(rule.label)}</text>'
        )
    # markers shrink where a series has more points than room for them (a quarter of daily checks, say)
    crowded = max((len(s.points) for s in series), default=0) * 9 > axis.width - axis.left - axis.right
    size = 0.6 if crowded else 1.0
    for s in series:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        if len(s.points) > 1:
            coords = " ".join(f"{axis.x(p.when):.1f},{y(p.value):.1f}" for p in s.points)
            parts.append(
                f'<polyline fill="none" stroke="{_attr(s.colour)}" stroke-width="1.5"{dash} points="{coords}"/>'
            )
        for p in s.points:
            body = marker(p.shape or s.marker, s.colour)
            parts.append(_point(axis.x(p.when), y(p.value), body, p.title, p.href, size))
    parts.append("</svg>")
    return "".join(parts)


def legend(series: Sequence[Series]) -> str:
    """The series' names beside their line and marker, as a list under the chart: the names carry the meaning."""
    entries = []
    for s in series:
        line = ' stroke-dasharray="4 2"' if s.dashed else ""
        entries.append(
            f'<li><svg width="30" height="12" viewBox="-15 -6 30 12" aria-hidden="true">'
            f'<line x1="-14" x2="14" y1="0" y2="0" stroke="{_attr(s.colour)}" stroke-width="1.5"{line}/>'
            f"{marker(s.marker, s.colour)}</svg>{_attr(s.name)}</li>"
        )
    return f'<ul class="lg">{"".join(entries)}</ul>'


@dataclass(frozen=True)
class Cell:
    """One mark of a band: a coloured cell with a symbol on it, at a time."""

    when: datetime
    colour: str
    symbol: str
    title: str
    href: str | None = None


def band(axis: TimeAxis, cells: Sequence[Cell], *, label: str, height: int = 46) -> str:
    """One row of cells along the time axis (verdicts, say): colour and symbol together, a title each.

    A cell is as wide as the gap to its nearest neighbour allows (at most 22 px), so that cells of
    frequent events do not cover each other; its symbol is written when it fits.
    """
    top, bottom = 4, height - 18
    xs = [axis.x(c.when) for c in cells]
    parts = [
        f'<svg class="ch" viewBox="0 0 {axis.width} {height}" width="{axis.width}" height="{height}" role="group" '
        f'aria-label="{_attr(label)}">',
        axis.grid(top, bottom),
    ]
    for i, (cell, x) in enumerate(zip(cells, xs)):
        gaps = [abs(x - xs[j]) for j in (i - 1, i + 1) if 0 <= j < len(xs) and xs[j] != x]
        width = max(min([22.0, *gaps]) - 1, 3.0)
        body = (
            f'<rect x="{-width / 2:.1f}" y="0" width="{width:.1f}" height="{bottom - top}" '
            f'fill="{_attr(cell.colour)}"/>'
        )
        if width >= 7:
            body += f'<text class="cell-text" x="0" y="{(bottom - top) / 2 + 4:.1f}">{_attr(cell.symbol)}</text>'
        parts.append(_point(x, top, body, cell.title, cell.href))
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Span:
    """A stretch of time with one state (the version that served), labelled inside when it fits."""

    start: datetime
    end: datetime
    label: str
    colour: str
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Event:
    """Something that happened at one time (a decision): a marker with a short label under it."""

    when: datetime
    shape: str
    colour: str
    label: str
    title: str
    href: str | None = None


def timeline(axis: TimeAxis, spans: Sequence[Span], events: Sequence[Event], *, label: str) -> str:
    """Spans in a row, and under them the events as markers, each with its label.

    Labels take turns on three lines, so that events a few days apart stay readable.
    """
    span_top, span_bottom, event_y = 4, 30, 44
    height = event_y + 58
    parts = [
        f'<svg class="ch" viewBox="0 0 {axis.width} {height}" width="{axis.width}" height="{height}" role="group" '
        f'aria-label="{_attr(label)}">',
        axis.grid(span_top, height - 16),
    ]
    for span in spans:
        x0, x1 = axis.x(span.start), axis.x(span.end)
        body = (
            f'<rect x="0" y="0" width="{max(x1 - x0, 1):.1f}" height="{span_bottom - span_top}" '
            f'fill="{_attr(span.colour)}" stroke="#fff"/>'
        )
        if x1 - x0 > 8 * len(span.label):
            body += (
                f'<text class="cell-text" x="{(x1 - x0) / 2:.1f}" y="{(span_bottom - span_top) / 2 + 4:.1f}">'
                f"{_attr(span.label)}</text>"
            )
        parts.append(_point(x0, span_top, body, span.title, span.href))
    for i, event in enumerate(events):
        x = axis.x(event.when)
        body = (
            f"{marker(event.shape, event.colour)}"
            f'<text x="0" y="{16 + 12 * (i % 3)}" text-anchor="middle">{_attr(event.label)}</text>'
        )
        parts.append(_point(x, event_y, body, event.title, event.href))
    parts.append("</svg>")
    return "".join(parts)
