"""Segment histories as one grid: a row per country, a column per window end, a cell per scored window.

The model report draws it, and the strategy page can too, so it depends on neither: the markup
uses its own ``sg-`` classes, styled by ``GRID_CSS``, which a page adds to its stylesheet.
Each cell carries its segment by colour *and* by letter, since a colour alone is lost on a
reader with a colour-vision deficiency and on a black-and-white printout; an upgrade or downgrade
from the window before is an arrow in the cell, and the cell's title names the window, the
segment and the confidence. Every string from data is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from pharmaseg.model.features import Window
from pharmaseg.model.history import DOWNGRADE, UPGRADE, CountryHistory, ScoredWindow, rank
from pharmaseg.model.segments import DECLINING, HIGH_VALUE, STABLE, segment_style
from pharmaseg.reports.html import text

ARROWS = {UPGRADE: "\u25b2", DOWNGRADE: "\u25bc"}

GRID_CSS = """
.sg-wrap{overflow-x:auto}.sg-legend{font-size:12px;color:#333;margin:.4em 0}
.sg-key{display:inline-block;min-width:1.6em;text-align:center;color:#fff;font-weight:bold;margin-right:.3em}
.sg-legend .sg-key{margin-left:.8em}
table.sg-grid{border-collapse:collapse;font-size:11px;line-height:1.2;margin:.4em 0}
.sg-grid th,.sg-grid td{border:1px solid #fff;padding:0;text-align:center;background:none}
.sg-grid td{min-width:1.8em;height:1.6em;color:#fff;font-weight:bold;white-space:nowrap}
.sg-grid td.sg-none{background:#eee}.sg-grid th.sg-year{writing-mode:vertical-rl;transform:rotate(180deg);
font-weight:normal;padding:3px 0}.sg-grid th.sg-country{text-align:left;padding:0 .5em 0 0;white-space:nowrap}
.sg-watch{font-weight:normal;font-size:10px;color:#8a5a00;margin-left:.3em}
"""


def segment_letter(name: str) -> str:
    """D, S (S1, S2... when k > 3 numbers the stable segments) or H: what a cell shows besides its colour."""
    if name == DECLINING:
        return "D"
    if name == HIGH_VALUE:
        return "H"
    if name.startswith(STABLE):
        return "S" + name.removeprefix(STABLE).strip()
    return name[:1].upper() or "?"


def _title(country: str, scored: ScoredWindow) -> str:
    title = f"{country} {scored.window}: {scored.segment}, confidence {scored.confidence:.2f}"
    if scored.borderline:
        title += f" (borderline, runner-up {scored.runner_up})"
    if scored.change:
        title += f", {scored.change} from the window before"
    return title


def _cell(country: str, scored: ScoredWindow | None, window: str) -> str:
    if scored is None:
        return f'<td class="sg-none" title="{text(f"{country} {window}: incomplete data", digits=None)}"></td>'
    colour = segment_style(scored.segment)[0]
    change = f" sg-{scored.change}" if scored.change else ""
    arrow = ARROWS.get(scored.change or "", "")
    return (
        f'<td class="sg-cell{change}" style="background:{colour}" title="{text(_title(country, scored), digits=None)}">'
        f"{arrow}{text(segment_letter(scored.segment), digits=None)}</td>"
    )


def segment_key(name: str) -> str:
    """A segment named as the grid shows it (its letter on its colour, then its name), for tables beside the grid."""
    letter = text(segment_letter(name), digits=None)
    return f'<span class="sg-key" style="background:{segment_style(name)[0]}">{letter}</span>{text(name, digits=None)}'


def legend(segments: Sequence[str]) -> str:
    """What the letters, colours and arrows mean, for the segments a grid shows."""
    keys = "".join(segment_key(name) for name in segments)
    return (
        f'<p class="sg-legend">{keys}<span class="sg-key" style="background:#eee"></span>incomplete window; '
        f"{ARROWS[UPGRADE]} upgrade, {ARROWS[DOWNGRADE]} downgrade from the window before; "
        f'<span class="sg-watch">watch</span> on watch</p>'
    )


def history_grid(histories: Sequence[CountryHistory]) -> str:
    """The grid of ``histories`` (rows in their order, windows all of one length), its legend above it;
    the columns span every window end the histories hold, so a gap in a country's data is a blank cell."""
    parsed = {h.country: {Window.parse(w.window).end: w for w in h.windows} for h in histories}
    ends = sorted({end for by_end in parsed.values() for end in by_end})
    if not ends:
        return '<p class="sg-legend">No complete window to show.</p>'
    years = len(Window.parse(next(w.window for h in histories for w in h.windows)).years)
    windows = {end: str(Window(end - years + 1, end)) for end in ends}
    head = "".join(f'<th class="sg-year" title="window {windows[end]}">{end}</th>' for end in ends)
    rows = []
    for h in histories:
        watch = f'<span class="sg-watch" title="{text(h.watch_reason, digits=None)}">watch</span>' if h.watch else ""
        cells = "".join(_cell(h.country, parsed[h.country].get(end), windows[end]) for end in ends)
        rows.append(f'<tr><th class="sg-country" scope="row">{text(h.country, digits=None)}{watch}</th>{cells}</tr>')
    shown = sorted({w.segment for h in histories for w in h.windows}, key=lambda s: (rank(s), s))
    return (
        f'{legend(shown)}<div class="sg-wrap"><table class="sg-grid"><tr><th></th>{head}</tr>'
        f"{''.join(rows)}</table></div>"
    )
