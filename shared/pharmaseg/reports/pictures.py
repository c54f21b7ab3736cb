"""What the HTML reports (model and drift) share: matplotlib without a display, each figure
inlined as a base64 PNG so that a report is one self-contained file, and no favicon request."""

from __future__ import annotations

import base64
import io

NO_ICON = "<link rel='icon' href='data:,'>"


def pyplot():
    """matplotlib's pyplot on the Agg backend (functions have no display); imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig, dpi: int) -> str:
    """The figure as base64 PNG text, for an ``<img src='data:image/png;base64,...'>``; closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode()
