"""The one way data reaches the three HTML outputs (model report, drift report, strategy page).

Every value goes through ``text``, which escapes it (quotes included, so it is safe in an
attribute too) and formats numbers the same way in every output; tables and embedded pictures
are built here so that no page assembles markup around unescaped data on its own.
"""

from __future__ import annotations

import html
from typing import Any


def text(value: Any, *, digits: int | None = 4, tiny: float = 0.0) -> str:
    """Escaped text of any value: ``-`` for None, yes/no for booleans, floats to ``digits``
    significant digits (scientific below ``tiny``, for p-values), lists joined by commas.
    ``digits=None`` keeps the value's own ``str`` (a page that formats its numbers itself)."""
    if value is None:
        return "-"
    if digits is None:
        return html.escape(str(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits - 1}e}" if 0 < abs(value) < tiny else f"{value:.{digits}g}"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """A table of already escaped cells (``text``) under escaped headers; ``classes`` per row."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        (f'<tr class="{html.escape(c)}">' if c else "<tr>") + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
        for row, c in zip(rows, classes or [""] * len(rows), strict=True)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def img(png: str, alt: str) -> str:
    """A base64 PNG (``pictures.png``) inlined, so the page needs nothing from the network."""
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'>"
